/**
 * Picks the protocol from the GATT table (lib/protocol/detect.ts: the v2 OTA service wins, else the seed's) and wraps
 * lib/protocol's clients as ProtocolSessions for flash.ts; reads a device's identity for status/verify.
 */
import type { BleConnection, GattServiceInfo } from '../ble/central';
import type { Clock } from '../clock';
import { OtaError } from '../errors';
import { DIS_SERVICE_UUID, FIRMWARE_REVISION_UUID, MANUFACTURER_NAME_UUID, MODEL_NUMBER_UUID, OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../protocol/constants';
import { detectProtocol } from '../protocol/detect';
import { decodeStatus, type DeviceStatus } from '../protocol/status';
import { LegacySession } from './legacy-session';
import type { ProtocolSession } from './protocol-session';
import { V2Session } from './v2-session';

export interface SessionContext {
  requested: 'auto' | 'v2' | 'legacy';
  fleetKey?: Buffer;
  clock: Clock;
  signal: AbortSignal;
  /** The seed's OTA partition size when it is not the default 1 MiB (FlashOptions.legacyPartitionSize). */
  legacyPartitionSize?: number;
  /** Called before each burst of Data writes (the adapter's set-ups go first: DeviceSession.yieldToSetups). */
  beforeBurst?: () => Promise<void>;
}

export async function openProtocolSession(link: BleConnection, ctx: SessionContext): Promise<ProtocolSession> {
  const { protocol, serviceUuid } = detectProtocol(await link.discover());
  if (ctx.requested !== 'auto' && ctx.requested !== protocol) {
    throw new OtaError('PROTOCOL_UNSUPPORTED', `the device speaks the ${protocol} protocol, but ${ctx.requested} was requested`, { detected: protocol, requested: ctx.requested });
  }
  return protocol === 'v2' ? new V2Session(link, ctx) : new LegacySession(link, ctx, serviceUuid);
}

export interface DeviceInfo {
  protocol: 'v2' | 'legacy';
  status: DeviceStatus | null;
  /** Device Information strings present on the device. */
  info: { manufacturer?: string; model?: string; firmwareRevision?: string };
}

async function readString(link: BleConnection, table: GattServiceInfo[], characteristic: string): Promise<string | undefined> {
  const dis = table.find((s) => s.uuid === DIS_SERVICE_UUID);
  if (!dis?.characteristics.some((c) => c.uuid === characteristic && c.properties.includes('read'))) return undefined;
  return (await link.read(DIS_SERVICE_UUID, characteristic)).toString('utf8').replace(/\0+$/, '');
}

export async function readDeviceInfo(link: BleConnection): Promise<DeviceInfo> {
  const table = await link.discover();
  const { protocol } = detectProtocol(table);
  const info: DeviceInfo['info'] = {};
  const manufacturer = await readString(link, table, MANUFACTURER_NAME_UUID);
  const model = await readString(link, table, MODEL_NUMBER_UUID);
  const firmwareRevision = await readString(link, table, FIRMWARE_REVISION_UUID);
  if (manufacturer !== undefined) info.manufacturer = manufacturer;
  if (model !== undefined) info.model = model;
  if (firmwareRevision !== undefined) info.firmwareRevision = firmwareRevision;
  const status = protocol === 'v2' ? decodeStatus(await link.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID)) : null;
  return { protocol, status, info };
}
