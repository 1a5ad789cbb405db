/** ESP application image checks and synthetic images (lib/image). */
export * from './types';
/** Byte layout constants (offsets, magics, sizes) of the image format. */
export * as imageFormat from './format';
export { CHIP_IDS, CHIP_NAMES, chipNameFromId, isChipName, isFlashMappedAddress } from './chips';
export type { ChipName } from './chips';
export { IMAGE_ERROR_CODES } from './error-codes';
export type { ImageErrorCode } from './error-codes';
export { readImageHeader, hasMaxChipRev, formatChipRev } from './header';
export { readAppDescription, encodeAppDescription } from './app-desc';
export type { AppDescriptionFields } from './app-desc';
export { computeChecksum, checksumOffsetAfter } from './checksum';
export { detectSignature } from './signature';
export { detectMergedImage, isAppImageAt } from './merged';
export { parseImage } from './parse';
export { validateAppImage } from './validate';
export { checkImageForTarget } from './target';
export type { TargetInfo } from './target';
export { inspectImage } from './inspect';
export type { InspectResult, InspectAppDesc, InspectSignature } from './inspect';
export { appHash, fileSha256 } from './hash';
export { parseVersion, compareVersions } from './version';
export type { ParsedVersion } from './version';
export { buildAppImage, MIN_SYNTHETIC_IMAGE_SIZE, MAX_SYNTHETIC_IMAGE_SIZE } from './builder';
export type { BuildAppImageOptions } from './builder';
