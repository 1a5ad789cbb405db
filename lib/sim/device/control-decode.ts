/**
 * The firmware's decoding of a Control value (PROTOCOL.md §2, §2.1): structure only (opcode and exact
 * length, the BEGIN manifest length rule), with the shared codec's decoder; meaning (flags, encodings,
 * state) is v2-firmware.ts's job. A malformed value gets its response bytes here, as the firmware answers:
 * BAD_LENGTH for a known opcode, UNKNOWN_OPCODE otherwise.
 */
import { OtaError } from '../../errors';
import { decodeCommand, encodeNotification, type BeginCommand, type EndCommand, type ManifestCommand, type ProvisionCommand, type TaggedCommand } from '../../protocol/codec';
import { ErrorCode, Op, RESPONSE_BIT, SHA256_SIZE } from '../../protocol/constants';

export interface BeginRequest extends BeginCommand {
  baseSha256: Buffer;
  /** Present when flags bit1. */
  manifest: Buffer | undefined;
  /** The whole value (the tag covers bytes 1..76). */
  raw: Buffer;
}

export type ControlRequest =
  | { op: typeof Op.CHALLENGE }
  | BeginRequest
  | EndCommand
  | TaggedCommand
  | ProvisionCommand
  | ManifestCommand
  | { op: 'malformed'; response: Buffer };

export function decodeControl(buf: Buffer): ControlRequest {
  let cmd;
  try {
    cmd = decodeCommand(buf);
  } catch (err) {
    if (!(err instanceof OtaError) || err.code !== 'PROTOCOL_MALFORMED') throw err;
    const op = buf[0];
    const response =
      err.details?.err === ErrorCode.UNKNOWN_OPCODE
        ? encodeNotification({ op: Op.UNKNOWN_OPCODE_RESPONSE, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: op })
        : Buffer.from([op | RESPONSE_BIT, ErrorCode.BAD_LENGTH]);
    return { op: 'malformed', response };
  }
  if (cmd.op !== Op.BEGIN) return cmd;
  return { ...cmd, baseSha256: cmd.baseSha256 ?? Buffer.alloc(SHA256_SIZE), manifest: cmd.manifest, raw: Buffer.from(buf) };
}
