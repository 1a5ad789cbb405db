/**
 * The 232-byte Status characteristic (docs/PROTOCOL.md §5): encode (device model) and decode (client),
 * with derived names so callers (verify, CLI, Node-RED) never interpret raw codes themselves.
 */
import { OtaError } from '../errors';
import type { ChipName } from '../image/chips';
import type { OtaState } from './constants';
import {
  CONFIRM_POLICY_NAMES,
  Caps,
  ConfirmPolicy,
  LAST_RESULT_NONE,
  LastFlags,
  OTA_STATE_NAMES,
  SESSION_STATE_NAMES,
  STATUS_FORMAT,
  STATUS_SIZE,
  SessionState,
  chipNameFromId,
  errorName,
} from './constants';

/** The raw fields of §5 (what encodeStatus needs). Byte arrays are lower-case hex strings. */
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
}

/** Decoded Status: the raw fields plus names and flags spelled out. */
export interface DeviceStatus extends StatusFields {
  otaStateName: OtaState;
  confirmPolicyName: ConfirmPolicy;
  sessionStateName: SessionState;
  chip: ChipName | null;
  /** §9 name of lastResult, or null when no update was recorded (0xFF). */
  lastResultName: string | null;
  capabilities: {
    deflate: boolean;
    fleetKeyRequired: boolean;
    resume: boolean;
    hostConfirm: boolean;
    antiDowngrade: boolean;
    signedImages: boolean;
  };
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

function hexField(value: string, name: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new OtaError('BAD_PARAMETER', `${name} must be 64 hex digits.`);
  return Buffer.from(value, 'hex');
}

export function encodeStatus(s: StatusFields): Buffer {
  const buf = Buffer.alloc(STATUS_SIZE);
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
  return buf;
}

function malformed(reason: string, buf: Buffer): OtaError {
  return new OtaError('PROTOCOL_MALFORMED', `Malformed Status value: ${reason}.`, { hex: buf.toString('hex') });
}

/** Decodes a Status read/notification; wrong size, format or out-of-range enums → PROTOCOL_MALFORMED. */
export function decodeStatus(buf: Buffer): DeviceStatus {
  if (!Buffer.isBuffer(buf) || buf.length !== STATUS_SIZE) throw malformed(`${buf?.length ?? 0} bytes instead of ${STATUS_SIZE}`, Buffer.from(buf ?? []));
  if (buf[0] !== STATUS_FORMAT) throw malformed(`format ${buf[0]} (this client reads format ${STATUS_FORMAT})`, buf);
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
  return {
    ...fields,
    otaStateName,
    confirmPolicyName,
    sessionStateName,
    chip: chipNameFromId(chipId),
    lastResultName: lastResult === LAST_RESULT_NONE ? null : errorName(lastResult),
    capabilities: {
      deflate: (caps & Caps.DEFLATE) !== 0,
      fleetKeyRequired: (caps & Caps.FLEET_KEY_REQUIRED) !== 0,
      resume: (caps & Caps.RESUME) !== 0,
      hostConfirm: (caps & Caps.HOST_CONFIRM) !== 0,
      antiDowngrade: (caps & Caps.ANTI_DOWNGRADE) !== 0,
      signedImages: (caps & Caps.SIGNED_IMAGES) !== 0,
    },
    last: {
      rolledBack: (lastFlags & LastFlags.ROLLED_BACK) !== 0,
      diagnosticsRan: (lastFlags & LastFlags.DIAGNOSTICS_RAN) !== 0,
      diagnosticsPassed: (lastFlags & LastFlags.DIAGNOSTICS_PASSED) !== 0,
      confirmed: (lastFlags & LastFlags.CONFIRMED) !== 0,
      recordValid: (lastFlags & LastFlags.RECORD_VALID) !== 0,
    },
  };
}
