/** GATT tables of the two firmwares (PROTOCOL.md §1; shared/seed/seed-protocol.md). */
import {
  CONTROL_CHAR_UUID,
  DATA_CHAR_UUID,
  DIS_SERVICE_UUID,
  FIRMWARE_REVISION_UUID,
  LEGACY_CONTROL_UUID,
  LEGACY_DATA_UUID,
  LEGACY_SERVICE_UUIDS,
  MANUFACTURER_NAME_UUID,
  MODEL_NUMBER_UUID,
  OTA_SERVICE_UUID,
  STATUS_CHAR_UUID,
} from '../../protocol/constants';
import type { VirtualService } from '../types';

/** The UUID the seed firmware actually registers (…-144a…, see seed-protocol.md). */
export const LEGACY_SERVICE_UUID = LEGACY_SERVICE_UUIDS[0];

/** ATT error codes the model returns. */
export const AttCode = {
  READ_NOT_PERMITTED: 0x02,
  WRITE_NOT_PERMITTED: 0x03,
  ATTRIBUTE_NOT_FOUND: 0x0a,
  INVALID_ATTRIBUTE_VALUE_LENGTH: 0x0d,
} as const;

export function v2Gatt(): VirtualService[] {
  return [
    {
      uuid: DIS_SERVICE_UUID,
      characteristics: [
        { uuid: MANUFACTURER_NAME_UUID, properties: ['read'] },
        { uuid: MODEL_NUMBER_UUID, properties: ['read'] },
        { uuid: FIRMWARE_REVISION_UUID, properties: ['read'] },
      ],
    },
    {
      uuid: OTA_SERVICE_UUID,
      characteristics: [
        { uuid: CONTROL_CHAR_UUID, properties: ['write', 'notify'] },
        { uuid: DATA_CHAR_UUID, properties: ['writeWithoutResponse'] },
        { uuid: STATUS_CHAR_UUID, properties: ['read', 'notify'] },
      ],
    },
  ];
}

export function legacyGatt(): VirtualService[] {
  return [
    {
      uuid: DIS_SERVICE_UUID,
      characteristics: [
        { uuid: MANUFACTURER_NAME_UUID, properties: ['read'] },
        { uuid: MODEL_NUMBER_UUID, properties: ['read'] },
      ],
    },
    {
      uuid: LEGACY_SERVICE_UUID,
      characteristics: [
        { uuid: LEGACY_CONTROL_UUID, properties: ['read', 'write', 'notify'] },
        { uuid: LEGACY_DATA_UUID, properties: ['write'] },
      ],
    },
  ];
}

/** Complete Local Name is at most 26 bytes (PROTOCOL.md §8). */
export function advertisedName(name: string): string {
  let out = name;
  while (Buffer.byteLength(out, 'utf8') > 26) out = out.slice(0, -1);
  return out;
}
