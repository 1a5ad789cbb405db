/** Test helpers: reading the shared vectors, and independent re-sealing of edited images. */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { OtaError } from '../../lib/errors';
import { vectorsDir } from '../helpers/paths';

export function readVector(name: string): Buffer {
  return fs.readFileSync(path.join(vectorsDir(), name));
}

/**
 * Recomputes checksum and appended SHA-256 after a test edited an image, written from the format
 * description (not with the library) so a library bug cannot cancel itself out.
 */
export function reseal(image: Buffer): Buffer {
  const out = Buffer.from(image);
  let offset = 24;
  let sum = 0xef;
  for (let s = 0; s < out[1]; s++) {
    const len = out.readUInt32LE(offset + 4);
    if (offset + 8 + len > out.length) throw new RangeError(`segment ${s} runs past the end of the file`);
    for (let i = 0; i < len; i++) sum ^= out[offset + 8 + i];
    offset += 8 + len;
  }
  while ((offset + 1) % 16 !== 0) offset++;
  out[offset] = sum;
  if (out[23] === 1) createHash('sha256').update(out.subarray(0, offset + 1)).digest().copy(out, offset + 1);
  return out;
}

/** Runs fn, expects an OtaError with `code`, returns it for more checks. */
export function expectOtaError(fn: () => unknown, code: string): OtaError {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof OtaError)) throw new Error(`expected OtaError ${code}, got ${String(err)}`, { cause: err });
    if (err.code !== code) throw new Error(`expected OtaError ${code}, got ${err.code}: ${err.message}`, { cause: err });
    return err;
  }
  throw new Error(`expected OtaError ${code}, nothing was thrown`);
}
