/**
 * What a v2 transfer sends: the image as is (raw), as a zlib stream (deflate, §2.1 encoding 1), or a
 * zlib stream of a delta patch against the running image (delta, encoding 2, §13), with the SHA-256 of
 * the decoded image the device checks at END. Prepared once per image so that retries and resumes on
 * later connections send byte-identical transfer streams. Two deflate encoders: zlib level 9 here,
 * synchronous (prepareTransferPayload, what V2Client uses when it is given no payload), and the smaller
 * zopfli stream in a worker (prepareWholeImagePayload, what lib/ota's flash path sends: best-deflate.ts).
 */
import { createHash } from 'crypto';
import { deflateSync } from 'zlib';
import { OtaError } from '../errors';
import { bestDeflate } from './best-deflate';
import { Caps, Encoding, SHA256_SIZE } from './constants';

export type EncodingChoice = 'auto' | 'raw' | 'deflate';
export type TransferEncoding = 'raw' | 'deflate' | 'delta';

export interface TransferPayload {
  encoding: TransferEncoding;
  /** The decoded image (what lands in the partition). */
  image: Buffer;
  /** The bytes written to Data: the image (raw), its zlib stream (deflate) or the patch's zlib stream (delta). */
  transfer: Buffer;
  /** SHA-256 of the decoded image. */
  sha256: Buffer;
  /** delta only: running_sha256 of the image the patch applies to (BEGIN base_sha256). */
  baseSha256?: Buffer;
}
/** A payload of the whole image (raw or deflate): what prepareTransferPayload makes. */
export type WholeImagePayload = TransferPayload & { encoding: 'raw' | 'deflate' };

/** Deflate must save at least this share of the bytes for 'auto' to choose it. */
export const AUTO_DEFLATE_MIN_SAVING = 0.05;

const deflated = new WeakMap<Buffer, Buffer>();

function deflateOnce(image: Buffer): Buffer {
  let out = deflated.get(image);
  if (!out) {
    out = deflateSync(image, { level: 9 });
    deflated.set(image, out);
  }
  return out;
}

export function encodingByte(encoding: TransferEncoding): number {
  if (encoding === 'delta') return Encoding.DELTA;
  return encoding === 'deflate' ? Encoding.DEFLATE : Encoding.RAW;
}

/**
 * A delta transfer (§13): `transfer` is the zlib stream of the patch that turns the base (whose
 * running_sha256 is `baseSha256`) into `image`, as lib/delta's generator makes it (makeDeltaTransfer /
 * ImageStore): the patch is generated and compressed there only, this just frames it for BEGIN.
 * Needs caps bit7.
 */
export function prepareDeltaPayload(image: Buffer, transfer: Buffer, baseSha256: Buffer, deviceCaps: number): TransferPayload {
  if (!Buffer.isBuffer(image) || !Buffer.isBuffer(transfer)) throw new OtaError('NOT_A_BUFFER', 'The image and the patch transfer must be Buffers.');
  if (image.length === 0) throw new OtaError('EMPTY_IMAGE', 'The image is empty.');
  if (transfer.length === 0) throw new OtaError('BAD_PARAMETER', 'The patch transfer (zlib stream of the patch) is empty.');
  if (!Buffer.isBuffer(baseSha256) || baseSha256.length !== SHA256_SIZE || baseSha256.every((b) => b === 0)) {
    throw new OtaError('BAD_PARAMETER', `The base SHA-256 of a delta must be ${SHA256_SIZE} bytes and not all zero.`);
  }
  if ((deviceCaps & Caps.DELTA) === 0) {
    throw new OtaError('DELTA_UNSUPPORTED', 'The device does not support delta transfers (caps bit7); send the whole image.');
  }
  const sha256 = createHash('sha256').update(image).digest();
  return { encoding: 'delta', image, transfer, sha256, baseSha256 };
}

/**
 * Chooses the encoding: 'deflate' needs the device's caps bit0 (DEVICE_BAD_ENCODING-like failure is
 * reported here as DEFLATE_UNSUPPORTED before anything is sent); 'auto' deflates when the device
 * supports it and it saves at least 5 %.
 */
export function prepareTransferPayload(image: Buffer, choice: EncodingChoice, deviceCaps: number): WholeImagePayload {
  const raw = rawPayload(image);
  if (!wantsDeflate(choice, deviceCaps)) return raw;
  return deflatedOrRaw(raw, choice, deflateOnce(image));
}

/** The deflated payload, or the raw one when 'auto' finds the saving too small. */
function deflatedOrRaw(raw: WholeImagePayload, choice: EncodingChoice, compressed: Buffer): WholeImagePayload {
  if (choice === 'auto' && compressed.length > raw.image.length * (1 - AUTO_DEFLATE_MIN_SAVING)) return raw;
  return { encoding: 'deflate', image: raw.image, transfer: compressed, sha256: raw.sha256 };
}

function rawPayload(image: Buffer): WholeImagePayload {
  if (!Buffer.isBuffer(image)) throw new OtaError('NOT_A_BUFFER', 'The image must be a Buffer.');
  if (image.length === 0) throw new OtaError('EMPTY_IMAGE', 'The image is empty.');
  return { encoding: 'raw', image, transfer: image, sha256: createHash('sha256').update(image).digest() };
}

/** Whether the choice deflates on this device; DEFLATE_UNSUPPORTED when it asks for deflate and the device has no caps bit0. */
function wantsDeflate(choice: EncodingChoice, deviceCaps: number): boolean {
  const deviceDeflates = (deviceCaps & Caps.DEFLATE) !== 0;
  if (choice === 'deflate' && !deviceDeflates) {
    throw new OtaError('DEFLATE_UNSUPPORTED', 'The device does not support deflate-compressed transfers; use encoding "raw" or "auto".');
  }
  return choice === 'deflate' || (choice === 'auto' && deviceDeflates);
}

/**
 * prepareTransferPayload with the smallest deflate stream (best-deflate.ts: zopfli in a worker thread,
 * once per image content); 'auto' deflates when that saves at least 5 %. Same errors as prepareTransferPayload.
 */
export async function prepareWholeImagePayload(image: Buffer, choice: EncodingChoice, deviceCaps: number): Promise<WholeImagePayload> {
  const raw = rawPayload(image);
  if (!wantsDeflate(choice, deviceCaps)) return raw;
  return deflatedOrRaw(raw, choice, await bestDeflate(image));
}
