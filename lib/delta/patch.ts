/**
 * What the host sends for encoding 2 (PROTOCOL contract §F): the patch that turns the image the device runs
 * into the new image, as one zlib stream; and the choice between that and a full deflated image.
 */
import { deflateSync } from 'zlib';
import { OtaError } from '../errors';
import { appHash, validateAppImage } from '../image';
import { applyPatch } from './apply';
import { createPatch } from './diff';

/** zlib level of patches and full images alike (the device inflates any level). */
export const DELTA_ZLIB_LEVEL = 9;
/** A delta is worth it when its transfer is below this fraction of the deflated full image. */
export const DELTA_WORTH_RATIO = 0.9;

export interface DeltaTransfer {
  /** running_sha256 of the base: SHA-256 from offset 0 through its checksum byte (BEGIN base_sha256). */
  baseSha256: Buffer;
  /** Base bytes the patch may read: the base image as ESP-IDF measures it. */
  baseLength: number;
  /** The uncompressed record stream. */
  patch: Buffer;
  /** What goes on air: the zlib stream of the patch (BEGIN transfer_size = its length). */
  transfer: Buffer;
}

/**
 * The bytes of `base` the device can read as the base: header through the checksum, plus the appended
 * SHA-256 when the header says so (esp_image_verify's image length); a signature block after it is not
 * part of it (ESP-IDF v5.3.2 components/bootloader_support/src/esp_image_format.c:907-928 pads to the
 * checksum byte, :861-866 adds the hash; the signature length :870-893 only checks the partition size). Throws the image's OtaError (lib/image codes) when `base` is no valid app image.
 */
export function baseImageBytes(base: Buffer): Buffer {
  const parsed = validateAppImage(base);
  return base.subarray(0, parsed.imageLength ?? base.length);
}

/** Patch and zlib transfer from `base` (the image the device runs) to `image`, checked by applying it. */
export function makeDeltaTransfer(base: Buffer, image: Buffer): DeltaTransfer {
  const baseBytes = baseImageBytes(base);
  const patch = createPatch(baseBytes, image);
  if (!applyPatch(baseBytes, patch, image.length).equals(image)) {
    throw new OtaError('INTERNAL', 'The generated delta patch does not reproduce the image.');
  }
  return { baseSha256: appHash(base), baseLength: baseBytes.length, patch, transfer: deflateSync(patch, { level: DELTA_ZLIB_LEVEL }) };
}

export type ChosenEncoding = 'delta' | 'deflate';

/**
 * Delta when a patch exists and its zlib transfer is smaller than 0.9 × the deflated full image (below that
 * margin the full image is as fast and needs no base), else full deflate.
 */
export function chooseEncoding(sizes: { deflatedSize: number; patchSize?: number | null }): ChosenEncoding {
  const { deflatedSize, patchSize } = sizes;
  if (patchSize === undefined || patchSize === null) return 'deflate';
  return patchSize < DELTA_WORTH_RATIO * deflatedSize ? 'delta' : 'deflate';
}
