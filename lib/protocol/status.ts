/**
 * The Status characteristic (docs/PROTOCOL.md §5): format 2 (252 bytes) and format 1 (232 bytes, older
 * devices); encode (device model) and decode (client), with derived names so callers (verify, CLI,
 * Node-RED) never interpret raw codes themselves.
 */
import { OtaError } from '../errors';
import type { ChipName } from '../image/chips';
import type { OtaState } from './constants';
import {
  CONFIRM_POLICY_NAMES,
  Capabilities,
  ConfirmPolicy,
  DEVICE_ID_SIZE,
  LAST_RESULT_NONE,
  LastFlags,
  OTA_STATE_NAMES,
  SESSION_STATE_NAMES,
  RELEASE_KEY_SLOTS,
  STATUS_SIZE_BY_FORMAT,
  SessionState,
  chipNameFromId,
  decodeCaps,
  errorName,
} from './constants';

/**
 * The raw fields of §5 (what encodeStatus needs). Byte arrays are lower-case hex strings; `deviceId` is
 * written like a BLE address, "aa:bb:cc:dd:ee:ff" (the 6 bytes in wire order). The format-2 fields are
 * undefined in a decoded format-1 value; encodeStatus writes 0 (unknown / none) for a missing one.
 */
export interface StatusFields {
  format: number;
  protoVersion: number;
  caps: number;
  otaState: number;
  confirmPolicy: number;
  sessionState: number;
  resetReason: number;
  bootCount: number;
  chipId: number;
  secureVersion: number;
  sessionOffset: number;
  runningPartition: string;
  appVersion: string;
  projectName: string;
  idfVersion: string;
  runningSha256: string;
  lastResult: number;
  lastFlags: number;
  lastSha256: string;
  lastMessage: string;
  /** Format 2: bytes of the partition the next BEGIN would write (0 = unknown). */
  updatePartitionSize?: number;
  /** Format 2: lowest manifest release the device accepts (0 = none yet). */
  releaseFloor?: number;
  /** Format 2: the device's base MAC, "aa:bb:cc:dd:ee:ff"; the identity for device keys and allow-lists. */
  deviceId?: string;
  /** Format 2: bit i set = release public key key_id i is provisioned (i < 4). */
  releaseKeyIds?: number;
}

/** Decoded Status: the raw fields plus names and flags spelled out. */
export interface DeviceStatus extends StatusFields {
  otaStateName: OtaState;
  confirmPolicyName: ConfirmPolicy;
  sessionStateName: SessionState;
  chip: ChipName | null;
  /** §9 name of lastResult, or null when no update was recorded (0xFF). */
  lastResultName: string | null;
  capabilities: Capabilities;
  /** Format 2: the key_ids of the provisioned release keys, ascending (undefined for format 1). */
  releaseKeys?: number[];
  last: {
    rolledBack: boolean;
    diagnosticsRan: boolean;
    diagnosticsPassed: boolean;
    confirmed: boolean;
    recordValid: boolean;
  };
}

interface StringField {
  key: 'runningPartition' | 'appVersion' | 'projectName' | 'idfVersion' | 'lastMessage';
  offset: number;
  size: number;
}
interface HashField {
  key: 'runningSha256' | 'lastSha256';
  offset: number;
}

const STRINGS: readonly StringField[] = [
  { key: 'runningPartition', offset: 20, size: 16 },
  { key: 'appVersion', offset: 36, size: 32 },
  { key: 'projectName', offset: 68, size: 32 },
  { key: 'idfVersion', offset: 100, size: 32 },
  { key: 'lastMessage', offset: 198, size: 32 },
];
const HASHES: readonly HashField[] = [
  { key: 'runningSha256', offset: 132 },
  { key: 'lastSha256', offset: 166 },
];

/** Reads a NUL-padded UTF-8 string field (a string filling its field has no NUL). */
export function readFixedString(buf: Buffer, offset: number, size: number): string {
  const field = buf.subarray(offset, offset + size);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? size : end).toString('utf8');
}

/** Writes a string NUL-padded into its field; too long → BAD_PARAMETER (never cut in the middle of a character). */
export function writeFixedString(buf: Buffer, offset: number, size: number, value: string, name: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > size) throw new OtaError('BAD_PARAMETER', `${name} "${value}" is ${bytes.length} bytes; the field holds ${size}.`);
  buf.fill(0, offset, offset + size);
  bytes.copy(buf, offset);
}

/** "aa:bb:cc:dd:ee:ff" of the 6 device_id bytes, in wire order. */
export function formatDeviceId(id: Buffer): string {
  return [...id].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Parses a device id written "aa:bb:cc:dd:ee:ff" (or "-" separated, or 12 hex digits) into its 6 bytes. */
export function parseDeviceId(value: string): Buffer {
  const hex = typeof value === 'string' ? value.trim().replace(/[:-]/g, '') : '';
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) throw new OtaError('BAD_PARAMETER', `Device id "${String(value)}" is not 6 bytes written like aa:bb:cc:dd:ee:ff.`);
  return Buffer.from(hex, 'hex');
}

function checkStatusUint(name: string, value: number, bits: 8 | 32): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) throw new OtaError('BAD_PARAMETER', `${name} must be an integer from 0 to ${2 ** bits - 1} (got ${value}).`);
}

function hexField(value: string, name: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new OtaError('BAD_PARAMETER', `${name} must be 64 hex digits.`);
  return Buffer.from(value, 'hex');
}

/** Encodes a Status value of the size its `format` has (1: 232 bytes, 2: 252 bytes). */
export function encodeStatus(s: StatusFields): Buffer {
  const size = STATUS_SIZE_BY_FORMAT[s.format];
  if (!size) throw new OtaError('BAD_PARAMETER', `Status format ${s.format} is not 1 or 2.`);
  const buf = Buffer.alloc(size);
  buf[0] = s.format;
  buf[1] = s.protoVersion;
  buf.writeUInt16LE(s.caps, 2);
  buf[4] = s.otaState;
  buf[5] = s.confirmPolicy;
  buf[6] = s.sessionState;
  buf[7] = s.resetReason;
  buf.writeUInt16LE(s.bootCount, 8);
  buf.writeUInt16LE(s.chipId, 10);
  buf.writeUInt32LE(s.secureVersion, 12);
  buf.writeUInt32LE(s.sessionOffset, 16);
  for (const f of STRINGS) writeFixedString(buf, f.offset, f.size, s[f.key], f.key);
  for (const h of HASHES) hexField(s[h.key], h.key).copy(buf, h.offset);
  buf[164] = s.lastResult;
  buf[165] = s.lastFlags;
  if (s.format >= 2) {
    const partition = s.updatePartitionSize ?? 0;
    const floor = s.releaseFloor ?? 0;
    const keyIds = s.releaseKeyIds ?? 0;
    checkStatusUint('updatePartitionSize', partition, 32);
    checkStatusUint('releaseFloor', floor, 32);
    checkStatusUint('releaseKeyIds', keyIds, 8);
    buf.writeUInt32LE(partition, 232);
    buf.writeUInt32LE(floor, 236);
    if (s.deviceId !== undefined) parseDeviceId(s.deviceId).copy(buf, 240);
    buf[246] = keyIds;
  }
  return buf;
}

function malformed(reason: string, buf: Buffer): OtaError {
  return new OtaError('PROTOCOL_MALFORMED', `Malformed Status value: ${reason}.`, { hex: buf.toString('hex') });
}

/**
 * Decodes a Status read (format 2, or format 1 from older devices: the format-2 fields are then
 * undefined); wrong size for its format, unknown format or out-of-range enums → PROTOCOL_MALFORMED.
 */
export function decodeStatus(buf: Buffer): DeviceStatus {
  if (!Buffer.isBuffer(buf) || buf.length === 0) throw malformed('empty', Buffer.from(Buffer.isBuffer(buf) ? buf : []));
  const size = STATUS_SIZE_BY_FORMAT[buf[0]];
  if (!size) throw malformed(`format ${buf[0]} (this client reads formats 1 and 2)`, buf);
  if (buf.length !== size) throw malformed(`${buf.length} bytes instead of ${size} for format ${buf[0]}`, buf);
  const otaStateName = OTA_STATE_NAMES[buf[4]];
  const confirmPolicyName = CONFIRM_POLICY_NAMES[buf[5]];
  const sessionStateName = SESSION_STATE_NAMES[buf[6]];
  if (!otaStateName) throw malformed(`ota_state ${buf[4]}`, buf);
  if (!confirmPolicyName) throw malformed(`confirm_policy ${buf[5]}`, buf);
  if (!sessionStateName) throw malformed(`session_state ${buf[6]}`, buf);
  const caps = buf.readUInt16LE(2);
  const chipId = buf.readUInt16LE(10);
  const lastResult = buf[164];
  const lastFlags = buf[165];
  const fields: StatusFields = {
    format: buf[0],
    protoVersion: buf[1],
    caps,
    otaState: buf[4],
    confirmPolicy: buf[5],
    sessionState: buf[6],
    resetReason: buf[7],
    bootCount: buf.readUInt16LE(8),
    chipId,
    secureVersion: buf.readUInt32LE(12),
    sessionOffset: buf.readUInt32LE(16),
    runningPartition: '',
    appVersion: '',
    projectName: '',
    idfVersion: '',
    runningSha256: '',
    lastResult,
    lastFlags,
    lastSha256: '',
    lastMessage: '',
  };
  for (const f of STRINGS) fields[f.key] = readFixedString(buf, f.offset, f.size);
  for (const h of HASHES) fields[h.key] = buf.subarray(h.offset, h.offset + 32).toString('hex');
  let releaseKeys: number[] | undefined;
  if (buf[0] >= 2) {
    fields.updatePartitionSize = buf.readUInt32LE(232);
    fields.releaseFloor = buf.readUInt32LE(236);
    fields.deviceId = formatDeviceId(buf.subarray(240, 240 + DEVICE_ID_SIZE));
    fields.releaseKeyIds = buf[246];
    releaseKeys = [];
    for (let i = 0; i < RELEASE_KEY_SLOTS; i++) if (buf[246] & (1 << i)) releaseKeys.push(i);
  }
  return {
    ...fields,
    otaStateName,
    confirmPolicyName,
    sessionStateName,
    chip: chipNameFromId(chipId),
    lastResultName: lastResult === LAST_RESULT_NONE ? null : errorName(lastResult),
    capabilities: decodeCaps(caps),
    ...(releaseKeys ? { releaseKeys } : {}),
    last: {
      rolledBack: (lastFlags & LastFlags.ROLLED_BACK) !== 0,
      diagnosticsRan: (lastFlags & LastFlags.DIAGNOSTICS_RAN) !== 0,
      diagnosticsPassed: (lastFlags & LastFlags.DIAGNOSTICS_PASSED) !== 0,
      confirmed: (lastFlags & LastFlags.CONFIRMED) !== 0,
      recordValid: (lastFlags & LastFlags.RECORD_VALID) !== 0,
    },
  };
}
