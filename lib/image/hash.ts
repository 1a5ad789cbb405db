/** The two image hashes a client needs: of the whole file, and of the app as ESP-IDF reports it. */
import { problemToError } from './error-codes';
import { sha256 } from './digest';
import { parseImage } from './parse';

/** SHA-256 of every byte of the file (what protocol v2 BEGIN announces). */
export function fileSha256(buf: Buffer): Buffer {
  if (!Buffer.isBuffer(buf)) throw problemToError(parseImage(buf).problems[0]);
  return sha256(buf);
}

/**
 * SHA-256 from offset 0 through the checksum byte: what esp_partition_get_sha256 reports for a running
 * app partition, and equal to the appended hash when the image carries one.
 * Throws the structural OtaError when the checksum byte cannot be located.
 */
export function appHash(buf: Buffer): Buffer {
  const parsed = parseImage(buf);
  if (parsed.checksumOffset === null) throw problemToError(parsed.problems[0]);
  return sha256(buf.subarray(0, parsed.checksumOffset + 1));
}
