/** checkImageForTarget: may this (valid) image go to this device? Chip, revision, partition size, downgrade policy. */
import { OtaError } from '../errors';
import type { ChipName } from './chips';
import { isChipName } from './chips';
import { problemToError } from './error-codes';
import { formatChipRev, hasMaxChipRev } from './header';
import type { ParsedImage } from './types';
import { validateAppImage } from './validate';
import { compareVersions } from './version';

export interface TargetInfo {
  chip: ChipName;
  /** Chip revision of the device as major * 100 + minor (unknown: not checked). */
  chipRevision?: number;
  /** Size of the OTA partition the image goes to, in bytes. */
  partitionSize: number;
  /** secure_version of the running app (anti-rollback); an image with a lower one is always refused. */
  runningSecureVersion?: number;
  /** Version string of the running app. */
  runningVersion?: string;
  /** Also refuse an image whose version is semantically lower than the running one (when both parse). */
  preventDowngrade?: boolean;
}

/** Throws OtaError (WRONG_CHIP, CHIP_REVISION_UNSUPPORTED, IMAGE_TOO_LARGE, DOWNGRADE, BAD_TARGET); returns the parsed image. */
export function checkImageForTarget(image: ParsedImage | Buffer, target: TargetInfo): ParsedImage {
  const img = Buffer.isBuffer(image) ? validateAppImage(image) : image;
  if (img.problems.length > 0) throw problemToError(img.problems[0]);
  checkTargetInfo(target);
  if (img.chip !== target.chip) {
    throw new OtaError('WRONG_CHIP',
      `The image is built for ${img.chip ?? `an unknown chip (id ${img.chipId})`}, but the device is an ${target.chip}: it would not boot.`,
      { imageChip: img.chip, deviceChip: target.chip });
  }
  const header = img.header;
  if (target.chipRevision !== undefined && header) {
    const rev = target.chipRevision;
    const tooOld = rev < header.minChipRevFull;
    const tooNew = hasMaxChipRev(header.maxChipRevFull) && rev > header.maxChipRevFull;
    if (tooOld || tooNew) {
      const range = `${formatChipRev(header.minChipRevFull)}${hasMaxChipRev(header.maxChipRevFull) ? ` to ${formatChipRev(header.maxChipRevFull)}` : ' or newer'}`;
      throw new OtaError('CHIP_REVISION_UNSUPPORTED',
        `The device's chip revision ${formatChipRev(rev)} is outside the range this image supports (${range}): the bootloader would refuse it.`,
        { chipRevision: rev, minChipRevFull: header.minChipRevFull, maxChipRevFull: header.maxChipRevFull });
    }
  }
  if (img.fileLength > target.partitionSize) {
    throw new OtaError('IMAGE_TOO_LARGE',
      `The image has ${img.fileLength} bytes but the device's OTA partition holds only ${target.partitionSize} bytes (${img.fileLength - target.partitionSize} bytes too many).`,
      { imageSize: img.fileLength, partitionSize: target.partitionSize });
  }
  const desc = img.appDesc;
  if (desc && target.runningSecureVersion !== undefined && desc.secureVersion < target.runningSecureVersion) {
    throw new OtaError('DOWNGRADE',
      `The image's security version is ${desc.secureVersion}, lower than the device's ${target.runningSecureVersion}: anti-rollback would refuse it.`,
      { imageSecureVersion: desc.secureVersion, runningSecureVersion: target.runningSecureVersion });
  }
  if (desc && target.preventDowngrade && target.runningVersion !== undefined
    && compareVersions(desc.version, target.runningVersion) === -1) {
    throw new OtaError('DOWNGRADE',
      `The image's version ${desc.version} is older than the running version ${target.runningVersion}, and downgrades are not allowed.`,
      { imageVersion: desc.version, runningVersion: target.runningVersion });
  }
  return img;
}

function checkTargetInfo(target: TargetInfo): void {
  if (!target || !isChipName(target.chip)) {
    throw new OtaError('BAD_TARGET', `The device's chip must be one of esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4; got ${JSON.stringify(target?.chip)}.`);
  }
  if (!Number.isInteger(target.partitionSize) || target.partitionSize <= 0) {
    throw new OtaError('BAD_TARGET', `The OTA partition size must be a positive whole number of bytes; got ${JSON.stringify(target.partitionSize)}.`);
  }
}
