/**
 * The fetched image against its task's reference, before anything is sent to a device: the SHA-256 and
 * size the coordinator named (IMAGE_HASH_MISMATCH), a valid app image (lib/image's codes), and built for the
 * chip and with the version the reference claims (WRONG_CHIP, VERSION_MISMATCH).
 */
import { OtaError } from '../../errors';
import { appHash, checkImageForTarget, isChipName, validateAppImage } from '../../image';
import type { ImageRef } from '../messages';
import { sha256Hex } from '../image-transfer';

export interface CheckedImage {
  /** What the device reports as running once it runs this image (esp_partition_get_sha256). */
  appSha256: string;
}

export function checkTaskImage(image: Buffer, ref: ImageRef): CheckedImage {
  const sha256 = sha256Hex(image);
  if (sha256 !== ref.sha256.toLowerCase() || image.length !== ref.size) {
    throw new OtaError('IMAGE_HASH_MISMATCH', `the image fetched for ${ref.sha256.slice(0, 16)}… (${ref.size} bytes) is ${sha256.slice(0, 16)}… (${image.length} bytes)`, {
      expected: ref.sha256,
      actual: sha256,
      expectedSize: ref.size,
      actualSize: image.length,
    });
  }
  const parsed = validateAppImage(image);
  if (!isChipName(ref.chip)) throw new OtaError('WRONG_CHIP', `the task names chip ${JSON.stringify(ref.chip)}, which is not a chip this package knows`);
  checkImageForTarget(parsed, { chip: ref.chip, partitionSize: Number.MAX_SAFE_INTEGER });
  const version = parsed.appDesc?.version ?? null;
  if (version !== ref.version) {
    throw new OtaError('VERSION_MISMATCH', `the task says version ${ref.version}, the image is ${version ?? 'without a version'}`, { imageVersion: version, expectedVersion: ref.version });
  }
  return { appSha256: appHash(image).toString('hex') };
}
