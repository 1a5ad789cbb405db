/**
 * Manufacturer-specific data of the scan response (docs/PROTOCOL.md §8): the compact status a scan shows
 * without connecting. `decodeAdvertisement` is strict; `tryDecodeAdvertisement` returns null for other
 * vendors' data, which a scan sees all the time.
 */
import { OtaError } from '../errors';
import type { OtaState } from './constants';
import { ADV_MARKER_V2, AdvFlags, ESPRESSIF_COMPANY_ID, MANUFACTURER_DATA_SIZE, OTA_STATE_NAMES, PROTO_VERSION } from './constants';

export interface AdvertisedStatus {
  protoVersion: number;
  otaState: OtaState;
  otaStateCode: number;
  rolledBack: boolean;
  diagnosticsFailed: boolean;
  /** A session is in progress or kept for resume. */
  sessionActive: boolean;
  /** Host confirm policy (else auto). */
  hostPolicy: boolean;
  /** Session key required (caps bit1: device key or fleet key). */
  authRequired: boolean;
  /** First 4 bytes of running_sha256, hex. */
  shaPrefix: string;
  /** "major.minor.patch", or null when the device's version string does not parse (0xFF 0xFF 0xFF). */
  version: string | null;
}

/** Raw numbers as the firmware writes them (what encodeAdvertisement needs): the flags as decoded. */
export interface AdvertisementFields extends Omit<AdvertisedStatus, 'protoVersion' | 'otaState' | 'otaStateCode' | 'version'> {
  /** The ota_state code (0..7). */
  otaState: number;
  /** An app version string ("v1.2.3", "1.2.3-rc1" parse; others become 0xFF 0xFF 0xFF). */
  version: string | null;
}

const VERSION_UNPARSED = 0xff;

/**
 * §8 version bytes: optional "v"/"V", three decimal numbers 0..254 separated by dots, then the end or
 * "-"/"+" and anything. Anything else → [0xFF, 0xFF, 0xFF].
 */
export function versionBytes(version: string | null): [number, number, number] {
  const m = version === null ? null : /^[vV]?(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[-+].*)?$/s.exec(version);
  if (!m) return [VERSION_UNPARSED, VERSION_UNPARSED, VERSION_UNPARSED];
  const parts = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (parts.some((p) => p >= VERSION_UNPARSED)) return [VERSION_UNPARSED, VERSION_UNPARSED, VERSION_UNPARSED];
  return parts as [number, number, number];
}

export function encodeAdvertisement(f: AdvertisementFields): Buffer {
  if (!Number.isInteger(f.otaState) || f.otaState < 0 || f.otaState > AdvFlags.OTA_STATE_MASK) {
    throw new OtaError('BAD_PARAMETER', `otaState must be 0..7 (got ${f.otaState}).`);
  }
  if (!/^[0-9a-fA-F]{8}$/.test(f.shaPrefix)) throw new OtaError('BAD_PARAMETER', 'shaPrefix must be 8 hex digits.');
  const buf = Buffer.alloc(MANUFACTURER_DATA_SIZE);
  buf.writeUInt16LE(ESPRESSIF_COMPANY_ID, 0);
  buf[2] = ADV_MARKER_V2;
  buf[3] =
    f.otaState |
    (f.rolledBack ? AdvFlags.ROLLED_BACK : 0) |
    (f.diagnosticsFailed ? AdvFlags.DIAGNOSTICS_FAILED : 0) |
    (f.sessionActive ? AdvFlags.SESSION_ACTIVE : 0) |
    (f.hostPolicy ? AdvFlags.HOST_POLICY : 0) |
    (f.authRequired ? AdvFlags.FLEET_KEY_REQUIRED : 0);
  Buffer.from(f.shaPrefix, 'hex').copy(buf, 4);
  const [major, minor, patch] = versionBytes(f.version);
  buf[8] = major;
  buf[9] = minor;
  buf[10] = patch;
  return buf;
}

/** True when the data is ours (company id and marker), whatever its length. */
export function isOtaManufacturerData(data: Buffer | undefined): data is Buffer {
  return !!data && data.length >= 3 && data.readUInt16LE(0) === ESPRESSIF_COMPANY_ID && data[2] === ADV_MARKER_V2;
}

export function decodeAdvertisement(data: Buffer): AdvertisedStatus {
  if (!isOtaManufacturerData(data)) {
    throw new OtaError('PROTOCOL_MALFORMED', 'Manufacturer data is not a BLE OTA v2 status (company id 0x02E5, marker 0xB2 expected).', {
      hex: Buffer.isBuffer(data) ? (data as Buffer).toString('hex') : null,
    });
  }
  if (data.length !== MANUFACTURER_DATA_SIZE) {
    throw new OtaError('PROTOCOL_MALFORMED', `BLE OTA manufacturer data has ${data.length} bytes instead of ${MANUFACTURER_DATA_SIZE}.`, {
      hex: data.toString('hex'),
    });
  }
  const flags = data[3];
  const otaStateCode = flags & AdvFlags.OTA_STATE_MASK;
  const otaState = OTA_STATE_NAMES[otaStateCode];
  if (!otaState) throw new OtaError('PROTOCOL_MALFORMED', `Advertised ota_state ${otaStateCode} is not defined.`, { hex: data.toString('hex') });
  const unparsed = data[8] === VERSION_UNPARSED && data[9] === VERSION_UNPARSED && data[10] === VERSION_UNPARSED;
  return {
    protoVersion: PROTO_VERSION,
    otaState,
    otaStateCode,
    rolledBack: (flags & AdvFlags.ROLLED_BACK) !== 0,
    diagnosticsFailed: (flags & AdvFlags.DIAGNOSTICS_FAILED) !== 0,
    sessionActive: (flags & AdvFlags.SESSION_ACTIVE) !== 0,
    hostPolicy: (flags & AdvFlags.HOST_POLICY) !== 0,
    authRequired: (flags & AdvFlags.FLEET_KEY_REQUIRED) !== 0,
    shaPrefix: data.subarray(4, 8).toString('hex'),
    version: unparsed ? null : `${data[8]}.${data[9]}.${data[10]}`,
  };
}

export function tryDecodeAdvertisement(data: Buffer | undefined): AdvertisedStatus | null {
  if (!isOtaManufacturerData(data)) return null;
  try {
    return decodeAdvertisement(data);
  } catch {
    return null;
  }
}
