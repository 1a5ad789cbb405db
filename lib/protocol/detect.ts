/**
 * Which protocol a device speaks, from its GATT table (docs/PROTOCOL.md §4.6): the v2 OTA service wins;
 * else the seed firmware, recognised by either of its service UUIDs (the registered …144a… and the
 * …244a… of its source comment) or, failing that, by its Control and Data characteristics anywhere.
 */
import type { BleConnection, GattServiceInfo } from '../ble/central';
import { OtaError } from '../errors';
import { LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LEGACY_SERVICE_UUIDS, OTA_SERVICE_UUID } from './constants';

export type ProtocolKind = 'v2' | 'legacy';

export interface DetectedProtocol {
  protocol: ProtocolKind;
  /** The service to address the protocol's characteristics in. */
  serviceUuid: string;
}

/** lib/ble reports lower-case hex without dashes; accept other spellings too. */
export function normalizeUuid(uuid: string): string {
  return uuid.toLowerCase().replace(/-/g, '');
}

function hasCharacteristic(service: GattServiceInfo, uuid: string): boolean {
  return service.characteristics.some((c) => normalizeUuid(c.uuid) === uuid);
}

export function detectProtocol(services: GattServiceInfo[]): DetectedProtocol {
  const v2 = services.find((s) => normalizeUuid(s.uuid) === OTA_SERVICE_UUID);
  if (v2) return { protocol: 'v2', serviceUuid: v2.uuid };
  const seedService = services.find((s) => LEGACY_SERVICE_UUIDS.includes(normalizeUuid(s.uuid)));
  if (seedService) return { protocol: 'legacy', serviceUuid: seedService.uuid };
  const seedChars = services.find((s) => hasCharacteristic(s, LEGACY_CONTROL_UUID) && hasCharacteristic(s, LEGACY_DATA_UUID));
  if (seedChars) return { protocol: 'legacy', serviceUuid: seedChars.uuid };
  throw new OtaError('NOT_OTA_DEVICE', 'The device offers neither the BLE OTA v2 service nor the seed firmware\'s OTA service.', {
    services: services.map((s) => s.uuid),
  });
}

export async function detectConnectionProtocol(connection: BleConnection): Promise<DetectedProtocol> {
  return detectProtocol(await connection.discover());
}
