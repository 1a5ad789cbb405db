/** Stable error codes of lib/image (documented in docs/ERRORS.md). */
import { OtaError } from '../errors';
import type { ImageProblem } from './types';

export const IMAGE_ERROR_CODES = [
  'NOT_A_BUFFER',
  'EMPTY_IMAGE',
  'TRUNCATED_IMAGE',
  'NOT_ESP_IMAGE',
  'MERGED_FLASH_IMAGE',
  'BAD_SEGMENT',
  'BAD_CHECKSUM',
  'BAD_SHA256',
  'BAD_SIGNATURE_BLOCK',
  'UNKNOWN_CHIP',
  'BOOTLOADER_IMAGE',
  'NO_APP_DESC',
  'WRONG_CHIP',
  'IMAGE_TOO_LARGE',
  'DOWNGRADE',
  'CHIP_REVISION_UNSUPPORTED',
  'BAD_TARGET',
  'BAD_BUILD_OPTIONS',
] as const;

export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

export function problem(code: ImageErrorCode, message: string, details?: Record<string, unknown>): ImageProblem {
  return details ? { code, message, details } : { code, message };
}

export function problemToError(p: ImageProblem): OtaError {
  return new OtaError(p.code, p.message, p.details);
}
