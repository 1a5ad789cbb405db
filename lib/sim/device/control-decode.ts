/**
 * The firmware's decoding of a Control value (PROTOCOL.md §2, §B, §E): structure only (opcode and
 * length); meaning (flags, encodings, state) is v2-firmware.ts's job. A malformed value gets its
 * response bytes here: BAD_LENGTH for a known opcode, UNKNOWN_OPCODE otherwise.
 */
import { encodeNotification } from '../../protocol/codec';
import { ErrorCode, Op, TAG_SIZE, type TaggedOp } from '../../protocol/constants';
import { BEGIN_LENGTH, BEGIN_TAG_OFFSET, BeginFlagsV21, OP_PROVISION, PROVISION_LENGTH } from './contract-v21';

export interface BeginRequest {
  op: typeof Op.BEGIN;
  imageSize: number;
  transferSize: number;
  encoding: number;
  flags: number;
  chunkSize: number;
  sha256: Buffer;
  baseSha256: Buffer;
  tag: Buffer;
  /** Present when flags bit1. */
  manifest: Buffer | null;
  /** The whole value (the tag covers bytes 1..76). */
  raw: Buffer;
}

export type ControlRequest =
  | { op: typeof Op.CHALLENGE }
  | BeginRequest
  | { op: typeof Op.END; flags: number }
  | { op: TaggedOp; tag: Buffer }
  | { op: typeof OP_PROVISION; key: Buffer }
  | { op: 'malformed'; response: Buffer };

/** Offset of the manifest's own length field inside a BEGIN value. */
const MANIFEST_LENGTH_AT = BEGIN_LENGTH + 6;
const MANIFEST_MIN_PRESENT = 8;

function badLength(op: number): ControlRequest {
  return { op: 'malformed', response: Buffer.from([op | 0x80, ErrorCode.BAD_LENGTH]) };
}

/** The BEGIN length rule (§B): 93 bytes, or with flags bit1 ≥ 101 and exactly 93 + manifest.length. */
function beginLengthOk(buf: Buffer): boolean {
  if (buf.length < BEGIN_LENGTH) return false;
  if ((buf[10] & BeginFlagsV21.MANIFEST) === 0) return buf.length === BEGIN_LENGTH;
  if (buf.length < BEGIN_LENGTH + MANIFEST_MIN_PRESENT) return false;
  return buf.length === BEGIN_LENGTH + buf.readUInt16LE(MANIFEST_LENGTH_AT);
}

export function decodeControl(buf: Buffer): ControlRequest {
  const op = buf[0];
  switch (op) {
    case Op.CHALLENGE:
      return buf.length === 1 ? { op } : badLength(op);
    case Op.BEGIN:
      if (!beginLengthOk(buf)) return badLength(op);
      return {
        op,
        imageSize: buf.readUInt32LE(1),
        transferSize: buf.readUInt32LE(5),
        encoding: buf[9],
        flags: buf[10],
        chunkSize: buf.readUInt16LE(11),
        sha256: Buffer.from(buf.subarray(13, 45)),
        baseSha256: Buffer.from(buf.subarray(45, 77)),
        tag: Buffer.from(buf.subarray(BEGIN_TAG_OFFSET, BEGIN_TAG_OFFSET + TAG_SIZE)),
        manifest: buf.length > BEGIN_LENGTH ? Buffer.from(buf.subarray(BEGIN_LENGTH)) : null,
        raw: Buffer.from(buf),
      };
    case Op.END:
      return buf.length === 2 ? { op, flags: buf[1] } : badLength(op);
    case Op.ABORT:
    case Op.CONFIRM:
    case Op.ROLLBACK:
    case Op.REBOOT:
      return buf.length === 1 + TAG_SIZE ? { op, tag: Buffer.from(buf.subarray(1)) } : badLength(op);
    case OP_PROVISION:
      return buf.length === PROVISION_LENGTH ? { op, key: Buffer.from(buf.subarray(1)) } : badLength(op);
    default:
      return { op: 'malformed', response: encodeNotification({ op: Op.UNKNOWN_OPCODE_RESPONSE, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: op }) };
  }
}
