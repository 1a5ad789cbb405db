/**
 * What a v2 transfer sends: the image as is (raw) or as a zlib stream (deflate, §2.1 encoding 1), with
 * the SHA-256 of the decoded image the device checks at END. Prepared once per image so that retries
 * and resumes on later connections send byte-identical transfer streams.
 */
import { createHash } from 'crypto';
import { deflateSync } from 'zlib';
import { OtaError } from '../errors';
import { Caps, Encoding } from './constants';

export type EncodingChoice = 'auto' | 'raw' | 'deflate';

export interface TransferPayload {
  encoding: 'raw' | 'deflate';
  /** The decoded image (what lands in the partition). */
  image: Buffer;
  /** The bytes written to Data: the image (raw) or its zlib stream (deflate). */
  transfer: Buffer;
  /** SHA-256 of the decoded image. */
  sha256: Buffer;
}

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

export function encodingByte(encoding: 'raw' | 'deflate'): number {
  return encoding === 'deflate' ? Encoding.DEFLATE : Encoding.RAW;
}

/**
 * Chooses the encoding: 'deflate' needs the device's caps bit0 (DEVICE_BAD_ENCODING-like failure is
 * reported here as DEFLATE_UNSUPPORTED before anything is sent); 'auto' deflates when the device
 * supports it and it saves at least 5 %.
 */
export function prepareTransferPayload(image: Buffer, choice: EncodingChoice, deviceCaps: number): TransferPayload {
  if (!Buffer.isBuffer(image)) throw new OtaError('NOT_A_BUFFER', 'The image must be a Buffer.');
  if (image.length === 0) throw new OtaError('EMPTY_IMAGE', 'The image is empty.');
  const sha256 = createHash('sha256').update(image).digest();
  const deviceDeflates = (deviceCaps & Caps.DEFLATE) !== 0;
  if (choice === 'deflate' && !deviceDeflates) {
    throw new OtaError('DEFLATE_UNSUPPORTED', 'The device does not support deflate-compressed transfers; use encoding "raw" or "auto".');
  }
  if (choice === 'raw' || (choice === 'auto' && !deviceDeflates)) return { encoding: 'raw', image, transfer: image, sha256 };
  const compressed = deflateOnce(image);
  if (choice === 'auto' && compressed.length > image.length * (1 - AUTO_DEFLATE_MIN_SAVING)) {
    return { encoding: 'raw', image, transfer: image, sha256 };
  }
  return { encoding: 'deflate', image, transfer: compressed, sha256 };
}
