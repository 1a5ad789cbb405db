/**
 * Byte codec of every message of docs/PROTOCOL.md §2–§3, both directions: the client encodes commands
 * and decodes notifications; the TypeScript device model (lib/sim/device) decodes commands and encodes
 * notifications with the same functions, so both ends agree by construction and the vectors check both.
 * Decoders check structure only (lengths, opcodes); meaning (flags, encodings, state) is the device's job.
 */
import { OtaError } from '../errors';
import {
  BEGIN_FIXED_LENGTH,
  BEGIN_TAG_OFFSET,
  BeginFlags,
  COMMAND_LENGTH,
  COMMAND_NAMES,
  CommandOp,
  ATT_INVALID_ATTRIBUTE_VALUE_LENGTH,
  DATA_HEADER_SIZE,
  MANIFEST_MAX_SIZE,
  MAX_CONTROL_VALUE,
  ErrorCode,
  NONCE_SIZE,
  Op,
  RESPONSE_BIT,
  RESPONSE_LENGTH,
  SESSION_KEY_SIZE,
  STAGING_OFFSET_FLAG,
  SHA256_SIZE,
  TAG_SIZE,
  TaggedOp,
  errorName,
} from './constants';

// ---------- commands (client → device, Control) ----------

export interface ChallengeCommand {
  op: typeof Op.CHALLENGE;
}
export interface BeginCommand {
  op: typeof Op.BEGIN;
  imageSize: number;
  transferSize: number;
  /** 0 raw, 1 deflate, 2 delta (other values are carried so the device can answer BAD_ENCODING). */
  encoding: number;
  /** bit0 resume, bit1 manifest follows (must agree with `manifest`). */
  flags: number;
  chunkSize: number;
  sha256: Buffer;
  /**
   * running_sha256 of the base a delta applies to; all zero for raw/deflate. The decoder always sets
   * it; the encoder writes zeros when it is missing.
   */
  baseSha256?: Buffer;
  tag: Buffer;
  /** The signed manifest (§12) after the fixed 93 bytes; present exactly when flags bit1 is set. */
  manifest?: Buffer;
}
/** PROVISION (§7): stores the session key while the provisioning window is open. */
export interface ProvisionCommand {
  op: typeof Op.PROVISION;
  key: Buffer;
}
export interface EndCommand {
  op: typeof Op.END;
  flags: number;
}
export interface TaggedCommand {
  op: TaggedOp;
  tag: Buffer;
}
/**
 * MANIFEST (§2.4, revision 2.2): the signed manifest alone, before BEGIN; untagged (it proves itself).
 * Without `manifest` it is the commit of revision 2.3: `0x09` alone means the bytes this connection staged
 * on Data (§3, caps bit12).
 */
export interface ManifestCommand {
  op: typeof Op.MANIFEST;
  manifest?: Buffer;
}
export type Command = ChallengeCommand | BeginCommand | EndCommand | TaggedCommand | ProvisionCommand | ManifestCommand;

// ---------- notifications (device → client, Control) ----------

export interface ChallengeResponse {
  op: 0x81;
  err: 0;
  nonce: Buffer;
  caps: number;
}
export interface BeginResponse {
  op: 0x82;
  err: 0;
  chunkSize: number;
  window: number;
  ackInterval: number;
  resumeOffset: number;
}
export interface EndResponse {
  op: 0x83;
  err: 0;
  imageSize: number;
}
/** ABORT/CONFIRM/ROLLBACK/REBOOT success, or any command's error response (2 bytes). */
export interface PlainResponse {
  op: number;
  err: number;
}
export interface UnknownOpcodeResponse {
  op: typeof Op.UNKNOWN_OPCODE_RESPONSE;
  err: typeof ErrorCode.UNKNOWN_OPCODE;
  unknownOp: number;
}
export interface DataAck {
  op: typeof Op.DATA_ACK;
  nextOffset: number;
}
export interface DataNak {
  op: typeof Op.DATA_NAK;
  err: number;
  expectedOffset: number;
}
export interface SessionAborted {
  op: typeof Op.SESSION_ABORTED;
  err: number;
}
export type Response = ChallengeResponse | BeginResponse | EndResponse | PlainResponse | UnknownOpcodeResponse;
export type ControlNotification = Response | DataAck | DataNak | SessionAborted;

// ---------- data (client → device, Data) ----------

export interface DataChunk {
  offset: number;
  payload: Buffer;
}

function malformed(what: string, buf: Buffer, details: Record<string, unknown> = {}): OtaError {
  return new OtaError('PROTOCOL_MALFORMED', `Malformed ${what}: ${buf.length} bytes (${buf.toString('hex').slice(0, 64)}).`, {
    hex: buf.toString('hex'),
    ...details,
  });
}

function checkBytes(name: string, value: Buffer, size: number): void {
  if (!Buffer.isBuffer(value) || value.length !== size) {
    throw new OtaError('BAD_PARAMETER', `${name} must be a Buffer of ${size} bytes.`);
  }
}

function checkUint(name: string, value: number, bits: 8 | 16 | 32): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new OtaError('BAD_PARAMETER', `${name} must be an integer from 0 to ${2 ** bits - 1} (got ${value}).`);
  }
}

function isCommandOp(op: number): op is CommandOp {
  return op >= Op.CHALLENGE && op <= Op.MANIFEST;
}

/** The manifest's own `length` field (u16 at manifest offset 6). */
function manifestLengthField(manifest: Buffer): number {
  return manifest.readUInt16LE(6);
}

function isTaggedOp(op: number): op is TaggedOp {
  return op >= Op.ABORT && op <= Op.REBOOT;
}

export function encodeCommand(cmd: Command): Buffer {
  switch (cmd.op) {
    case Op.CHALLENGE:
      return Buffer.from([Op.CHALLENGE]);
    case Op.BEGIN: {
      checkUint('imageSize', cmd.imageSize, 32);
      checkUint('transferSize', cmd.transferSize, 32);
      checkUint('encoding', cmd.encoding, 8);
      checkUint('flags', cmd.flags, 8);
      checkUint('chunkSize', cmd.chunkSize, 16);
      checkBytes('sha256', cmd.sha256, SHA256_SIZE);
      const baseSha256 = cmd.baseSha256 ?? Buffer.alloc(SHA256_SIZE);
      checkBytes('baseSha256', baseSha256, SHA256_SIZE);
      checkBytes('tag', cmd.tag, TAG_SIZE);
      const manifest = checkBeginManifest(cmd);
      const buf = Buffer.alloc(BEGIN_FIXED_LENGTH + manifest.length);
      buf[0] = Op.BEGIN;
      buf.writeUInt32LE(cmd.imageSize, 1);
      buf.writeUInt32LE(cmd.transferSize, 5);
      buf[9] = cmd.encoding;
      buf[10] = cmd.flags;
      buf.writeUInt16LE(cmd.chunkSize, 11);
      cmd.sha256.copy(buf, 13);
      baseSha256.copy(buf, 45);
      cmd.tag.copy(buf, BEGIN_TAG_OFFSET);
      manifest.copy(buf, BEGIN_FIXED_LENGTH);
      return buf;
    }
    case Op.PROVISION:
      checkBytes('key', cmd.key, SESSION_KEY_SIZE);
      return Buffer.concat([Buffer.from([Op.PROVISION]), cmd.key]);
    case Op.MANIFEST:
      if (cmd.manifest === undefined) return Buffer.from([Op.MANIFEST]); // commit the staged bytes
      return Buffer.concat([Buffer.from([Op.MANIFEST]), checkManifestBytes(cmd.manifest, 1, 'MANIFEST')]);
    case Op.END:
      checkUint('flags', cmd.flags, 8);
      return Buffer.from([Op.END, cmd.flags]);
    default: {
      const tagged = cmd as TaggedCommand;
      if (!isTaggedOp(tagged.op)) throw new OtaError('BAD_PARAMETER', `Unknown command opcode ${String(tagged.op)}.`);
      checkBytes('tag', tagged.tag, TAG_SIZE);
      return Buffer.concat([Buffer.from([tagged.op]), tagged.tag]);
    }
  }
}

/**
 * The manifest a BEGIN carries, checked against flags bit1 and its own length field, so that the
 * encoder never writes a BEGIN the device must refuse with BAD_LENGTH.
 */
function checkBeginManifest(cmd: BeginCommand): Buffer {
  const announced = (cmd.flags & BeginFlags.MANIFEST) !== 0;
  if (cmd.manifest === undefined) {
    if (announced) throw new OtaError('BAD_PARAMETER', 'BEGIN flags bit1 (manifest follows) is set but no manifest was given.');
    return Buffer.alloc(0);
  }
  if (!Buffer.isBuffer(cmd.manifest)) throw new OtaError('BAD_PARAMETER', 'The manifest must be a Buffer.');
  if (!announced) throw new OtaError('BAD_PARAMETER', 'A manifest was given but BEGIN flags bit1 (manifest follows) is clear.');
  return checkManifestBytes(cmd.manifest, BEGIN_FIXED_LENGTH, 'BEGIN');
}

/** A manifest carried `before` bytes into a Control value: its head, its length field, the 512-byte limit. */
function checkManifestBytes(manifest: Buffer, before: number, command: string): Buffer {
  if (!Buffer.isBuffer(manifest)) throw new OtaError('BAD_PARAMETER', 'The manifest must be a Buffer.');
  if (manifest.length < 8) throw new OtaError('BAD_PARAMETER', `The manifest is ${manifest.length} bytes; it needs at least its 8-byte head (magic, format, key_id, length).`);
  const field = manifestLengthField(manifest);
  if (field !== manifest.length) {
    throw new OtaError('BAD_PARAMETER', `The manifest is ${manifest.length} bytes but its length field says ${field}.`);
  }
  if (before + field > MAX_CONTROL_VALUE) {
    throw new OtaError('BAD_PARAMETER', `A ${command} with this ${field}-byte manifest would be ${before + field} bytes; Control values are at most ${MAX_CONTROL_VALUE}.`);
  }
  return manifest;
}

/**
 * The expected length of a Control write by its first bytes (§2, §2.1): BEGIN with flags bit1 is
 * 93 + the manifest's length field, or null when the write is too short to say (then BAD_LENGTH).
 */
function expectedCommandLength(op: CommandOp, buf: Buffer): number | null {
  if (op === Op.MANIFEST) {
    if (buf.length === 1) return 1; // the commit of the staged bytes (revision 2.3)
    if (buf.length < COMMAND_LENGTH[Op.MANIFEST]) return null;
    const field = buf.readUInt16LE(1 + 6);
    return field >= 8 ? 1 + field : null;
  }
  if (op !== Op.BEGIN) return COMMAND_LENGTH[op];
  if (buf.length < BEGIN_FIXED_LENGTH) return BEGIN_FIXED_LENGTH;
  if ((buf[10] & BeginFlags.MANIFEST) === 0) return BEGIN_FIXED_LENGTH;
  if (buf.length < BEGIN_FIXED_LENGTH + 8) return null;
  const field = buf.readUInt16LE(BEGIN_FIXED_LENGTH + 6);
  return field >= 8 ? BEGIN_FIXED_LENGTH + field : null;
}

/** The part of a BEGIN request the BEGIN tag covers (§7: `begin[1..76]`, image_size through base_sha256). */
export function beginTagInput(begin: Buffer): Buffer {
  if (begin.length < BEGIN_FIXED_LENGTH || begin[0] !== Op.BEGIN) throw malformed('BEGIN request', begin);
  return begin.subarray(1, BEGIN_TAG_OFFSET);
}

/**
 * Decodes a Control write. Throws OtaError PROTOCOL_MALFORMED whose details.err is the §9 code the
 * device answers with (BAD_LENGTH or UNKNOWN_OPCODE) and details.op the opcode (undefined when empty).
 */
export function decodeCommand(buf: Buffer): Command {
  if (buf.length === 0) throw malformed('command (empty)', buf, { err: ErrorCode.BAD_LENGTH, op: undefined });
  const op = buf[0];
  if (!isCommandOp(op)) throw malformed(`command (unknown opcode 0x${op.toString(16)})`, buf, { err: ErrorCode.UNKNOWN_OPCODE, op });
  const expected = expectedCommandLength(op, buf);
  if (buf.length !== expected) {
    const why =
      expected === null
        ? `${COMMAND_NAMES[op]} command (${op === Op.MANIFEST ? '' : 'flags bit1: '}the manifest is too short to carry its length field, or the field is below 8)`
        : op === Op.BEGIN && buf.length >= BEGIN_FIXED_LENGTH && (buf[10] & BeginFlags.MANIFEST) !== 0
          ? `BEGIN command (flags bit1: expected ${BEGIN_FIXED_LENGTH} + the manifest's length field ${expected - BEGIN_FIXED_LENGTH} = ${expected} bytes)`
          : `${COMMAND_NAMES[op]} command (expected ${expected} bytes)`;
    throw malformed(why, buf, { err: ErrorCode.BAD_LENGTH, op });
  }
  switch (op) {
    case Op.CHALLENGE:
      return { op };
    case Op.BEGIN:
      return {
        op,
        imageSize: buf.readUInt32LE(1),
        transferSize: buf.readUInt32LE(5),
        encoding: buf[9],
        flags: buf[10],
        chunkSize: buf.readUInt16LE(11),
        sha256: Buffer.from(buf.subarray(13, 45)),
        baseSha256: Buffer.from(buf.subarray(45, BEGIN_TAG_OFFSET)),
        tag: Buffer.from(buf.subarray(BEGIN_TAG_OFFSET, BEGIN_FIXED_LENGTH)),
        ...(buf.length > BEGIN_FIXED_LENGTH ? { manifest: Buffer.from(buf.subarray(BEGIN_FIXED_LENGTH)) } : {}),
      };
    case Op.END:
      return { op, flags: buf[1] };
    case Op.PROVISION:
      return { op, key: Buffer.from(buf.subarray(1, 1 + SESSION_KEY_SIZE)) };
    case Op.MANIFEST:
      return buf.length === 1 ? { op } : { op, manifest: Buffer.from(buf.subarray(1)) };
    default:
      return { op, tag: Buffer.from(buf.subarray(1, 17)) };
  }
}

/**
 * Device side: the ATT error code for a Control write that never reaches the command decoder (§2: empty,
 * or longer than the MAX_CONTROL_VALUE (512) bytes a device accepts), or null when the value is acceptable at ATT level.
 */
export function controlWriteAttError(buf: Buffer): number | null {
  return buf.length === 0 || buf.length > MAX_CONTROL_VALUE ? ATT_INVALID_ATTRIBUTE_VALUE_LENGTH : null;
}

/** Device side: the response a malformed command gets (§2), or null when it decodes. */
export function malformedCommandResponse(buf: Buffer): Buffer | null {
  if (buf.length === 0) throw new OtaError('BAD_PARAMETER', 'An empty Control write is rejected at ATT level (controlWriteAttError).');
  try {
    decodeCommand(buf);
    return null;
  } catch (e) {
    const details = (e as OtaError).details ?? {};
    const op = buf[0];
    if (details.err === ErrorCode.UNKNOWN_OPCODE) return encodeNotification({ op: Op.UNKNOWN_OPCODE_RESPONSE, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: op });
    return encodeNotification({ op: op | RESPONSE_BIT, err: ErrorCode.BAD_LENGTH });
  }
}

function isOk(msg: { err?: number }): boolean {
  return msg.err === ErrorCode.OK;
}

export function encodeNotification(msg: ControlNotification): Buffer {
  switch (msg.op) {
    case Op.DATA_ACK: {
      const m = msg as DataAck;
      checkUint('nextOffset', m.nextOffset, 32);
      const buf = Buffer.alloc(5);
      buf[0] = Op.DATA_ACK;
      buf.writeUInt32LE(m.nextOffset, 1);
      return buf;
    }
    case Op.DATA_NAK: {
      const m = msg as DataNak;
      checkUint('err', m.err, 8);
      checkUint('expectedOffset', m.expectedOffset, 32);
      const buf = Buffer.alloc(6);
      buf[0] = Op.DATA_NAK;
      buf[1] = m.err;
      buf.writeUInt32LE(m.expectedOffset, 2);
      return buf;
    }
    case Op.SESSION_ABORTED: {
      const m = msg as SessionAborted;
      checkUint('err', m.err, 8);
      return Buffer.from([Op.SESSION_ABORTED, m.err]);
    }
    case Op.UNKNOWN_OPCODE_RESPONSE: {
      const m = msg as UnknownOpcodeResponse;
      checkUint('unknownOp', m.unknownOp, 8);
      return Buffer.from([Op.UNKNOWN_OPCODE_RESPONSE, ErrorCode.UNKNOWN_OPCODE, m.unknownOp]);
    }
  }
  const commandOp = msg.op & ~RESPONSE_BIT;
  if ((msg.op & RESPONSE_BIT) === 0 || !isCommandOp(commandOp)) {
    throw new OtaError('BAD_PARAMETER', `0x${msg.op.toString(16)} is not a Control notification opcode.`);
  }
  const err = (msg as PlainResponse).err;
  checkUint('err', err, 8);
  if (!isOk(msg as PlainResponse)) return Buffer.from([msg.op, err]);
  switch (commandOp) {
    case Op.CHALLENGE: {
      const m = msg as ChallengeResponse;
      checkBytes('nonce', m.nonce, NONCE_SIZE);
      checkUint('caps', m.caps, 16);
      const buf = Buffer.alloc(RESPONSE_LENGTH[Op.CHALLENGE]);
      buf[0] = msg.op;
      m.nonce.copy(buf, 2);
      buf.writeUInt16LE(m.caps, 18);
      return buf;
    }
    case Op.BEGIN: {
      const m = msg as BeginResponse;
      checkUint('chunkSize', m.chunkSize, 16);
      checkUint('window', m.window, 32);
      checkUint('ackInterval', m.ackInterval, 32);
      checkUint('resumeOffset', m.resumeOffset, 32);
      const buf = Buffer.alloc(16);
      buf[0] = msg.op;
      buf.writeUInt16LE(m.chunkSize, 2);
      buf.writeUInt32LE(m.window, 4);
      buf.writeUInt32LE(m.ackInterval, 8);
      buf.writeUInt32LE(m.resumeOffset, 12);
      return buf;
    }
    case Op.END: {
      const m = msg as EndResponse;
      checkUint('imageSize', m.imageSize, 32);
      const buf = Buffer.alloc(6);
      buf[0] = msg.op;
      buf.writeUInt32LE(m.imageSize, 2);
      return buf;
    }
    default:
      return Buffer.from([msg.op, 0]);
  }
}


/** Decodes a Control notification; throws OtaError PROTOCOL_MALFORMED for anything not exactly §2. */
export function decodeNotification(buf: Buffer): ControlNotification {
  if (buf.length === 0) throw malformed('notification (empty)', buf);
  const op = buf[0];
  switch (op) {
    case Op.DATA_ACK:
      if (buf.length !== 5) throw malformed('DATA_ACK', buf);
      return { op, nextOffset: buf.readUInt32LE(1) };
    case Op.DATA_NAK:
      if (buf.length !== 6) throw malformed('DATA_NAK', buf);
      return { op, err: buf[1], expectedOffset: buf.readUInt32LE(2) };
    case Op.SESSION_ABORTED:
      if (buf.length !== 2) throw malformed('SESSION_ABORTED', buf);
      return { op, err: buf[1] };
    case Op.UNKNOWN_OPCODE_RESPONSE:
      if (buf.length !== 3 || buf[1] !== ErrorCode.UNKNOWN_OPCODE) throw malformed('unknown-opcode response', buf);
      return { op, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: buf[2] };
  }
  const commandOp = op & ~RESPONSE_BIT;
  if ((op & RESPONSE_BIT) === 0 || !isCommandOp(commandOp)) throw malformed(`notification (unknown opcode 0x${op.toString(16)})`, buf);
  const name = COMMAND_NAMES[commandOp];
  if (buf.length < 2) throw malformed(`${name} response`, buf);
  const err = buf[1];
  if (err !== ErrorCode.OK) {
    if (buf.length !== 2) throw malformed(`${name} error response (${errorName(err)}) longer than 2 bytes`, buf);
    return { op, err };
  }
  if (buf.length !== RESPONSE_LENGTH[commandOp]) throw malformed(`${name} response (expected ${RESPONSE_LENGTH[commandOp]} bytes)`, buf);
  switch (commandOp) {
    case Op.CHALLENGE:
      return { op: 0x81, err: 0, nonce: Buffer.from(buf.subarray(2, 18)), caps: buf.readUInt16LE(18) };
    case Op.BEGIN:
      return {
        op: 0x82,
        err: 0,
        chunkSize: buf.readUInt16LE(2),
        window: buf.readUInt32LE(4),
        ackInterval: buf.readUInt32LE(8),
        resumeOffset: buf.readUInt32LE(12),
      };
    case Op.END:
      return { op: 0x83, err: 0, imageSize: buf.readUInt32LE(2) };
    default:
      return { op, err: 0 };
  }
}

export function encodeDataChunk(chunk: DataChunk): Buffer {
  checkUint('offset', chunk.offset, 32);
  // Every byte is written below, so the buffer may come from Node's pool: one ArrayBuffer per chunk
  // would be the largest allocation cost of a transfer.
  const buf = Buffer.allocUnsafe(DATA_HEADER_SIZE + chunk.payload.length);
  buf.writeUInt32LE(chunk.offset, 0);
  chunk.payload.copy(buf, DATA_HEADER_SIZE);
  return buf;
}

/**
 * A manifest staging write (revision 2.3, §3): `0x80000000 | manifestOffset`, then the manifest's bytes
 * from manifestOffset on.
 */
export function encodeStagingChunk(manifestOffset: number, payload: Buffer): Buffer {
  if (!Number.isInteger(manifestOffset) || manifestOffset < 0 || manifestOffset + payload.length > MANIFEST_MAX_SIZE) {
    throw new OtaError('BAD_PARAMETER', `A staging write covers manifest bytes ${manifestOffset}..${manifestOffset + payload.length}; a manifest has at most ${MANIFEST_MAX_SIZE}.`);
  }
  return encodeDataChunk({ offset: (STAGING_OFFSET_FLAG | manifestOffset) >>> 0, payload });
}

/** Decodes a Data write; a write without payload throws PROTOCOL_MALFORMED with details.err EMPTY_WRITE. */
export function decodeDataChunk(buf: Buffer): DataChunk {
  if (buf.length <= DATA_HEADER_SIZE) throw malformed('data write (no payload)', buf, { err: ErrorCode.EMPTY_WRITE });
  return { offset: buf.readUInt32LE(0), payload: Buffer.from(buf.subarray(DATA_HEADER_SIZE)) };
}

/** The response opcode of a command. */
export function responseOp(op: CommandOp): number {
  return op | RESPONSE_BIT;
}
