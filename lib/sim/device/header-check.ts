/**
 * The checks our firmware makes on the first 288 decoded bytes (image header + first segment header +
 * esp_app_desc_t) before it writes anything to flash (PROTOCOL.md §4.1), in the documented order.
 * The chip revision check is the one esp_image_verify would make at esp_ota_end
 * (bootloader_common_check_chip_validity, bootloader_common_loader.c:97-114), done up front so a
 * refused image costs no transfer and no erase.
 */
import { hasMaxChipRev } from '../../image/header';
import { ErrorCode } from '../../protocol/constants';
import { readFixedString } from '../../protocol/status';

/** Image header (24) + segment header (8) + esp_app_desc_t (256). */
export const EARLY_HEADER_SIZE = 288;
const IMAGE_MAGIC = 0xe9;
const APP_DESC_MAGIC = 0xabcd5432;
const CHIP_ID_OFFSET = 12;
const MIN_CHIP_REV_FULL_OFFSET = 15;
const MAX_CHIP_REV_FULL_OFFSET = 17;
const APP_DESC_OFFSET = 32;
/** esp_app_desc_t: magic, secure_version, reserv1[2], version[32], project_name[32]. */
const APP_VERSION_OFFSET = APP_DESC_OFFSET + 16;
const PROJECT_NAME_OFFSET = APP_DESC_OFFSET + 48;
const DESC_STRING_SIZE = 32;

export interface RunningFacts {
  chipId: number;
  /** major * 100 + minor */
  chipRevision: number;
  secureVersion: number;
  allowDowngrade: boolean;
  /** The verified manifest of this session (PROTOCOL.md §D): the app descriptor must match it. */
  manifest?: { secureVersion: number; projectName: string; appVersion: string };
}

export interface HeaderVerdict {
  err: number;
  message: string;
}

export function checkEarlyHeader(head: Buffer, running: RunningFacts): HeaderVerdict {
  if (head.length === 0 || head[0] !== IMAGE_MAGIC) {
    return { err: ErrorCode.NOT_APP_IMAGE, message: 'no ESP image magic 0xE9' };
  }
  if (head.length < EARLY_HEADER_SIZE) return { err: ErrorCode.NOT_APP_IMAGE, message: 'image shorter than its headers' };
  const chipId = head.readUInt16LE(CHIP_ID_OFFSET);
  if (chipId !== running.chipId) return { err: ErrorCode.WRONG_CHIP, message: `image chip id ${chipId}` };
  const minRev = head.readUInt16LE(MIN_CHIP_REV_FULL_OFFSET);
  const maxRev = head.readUInt16LE(MAX_CHIP_REV_FULL_OFFSET);
  if (running.chipRevision < minRev || (hasMaxChipRev(maxRev) && running.chipRevision > maxRev)) {
    return { err: ErrorCode.WRONG_CHIP_REVISION, message: `chip rev ${running.chipRevision} outside ${minRev}..${maxRev}` };
  }
  if (head.readUInt32LE(APP_DESC_OFFSET) !== APP_DESC_MAGIC) return { err: ErrorCode.NOT_APP_IMAGE, message: 'no app descriptor' };
  const secureVersion = head.readUInt32LE(APP_DESC_OFFSET + 4);
  if (secureVersion < running.secureVersion && !running.allowDowngrade) {
    return { err: ErrorCode.DOWNGRADE, message: `secure_version ${secureVersion} < ${running.secureVersion}` };
  }
  const m = running.manifest;
  if (m) {
    const version = readFixedString(head, APP_VERSION_OFFSET, DESC_STRING_SIZE);
    const project = readFixedString(head, PROJECT_NAME_OFFSET, DESC_STRING_SIZE);
    if (secureVersion !== m.secureVersion) return { err: ErrorCode.MANIFEST_MISMATCH, message: `image secure_version ${secureVersion}, manifest ${m.secureVersion}` };
    if (project !== m.projectName) return { err: ErrorCode.MANIFEST_MISMATCH, message: `image project ${project}, manifest ${m.projectName}` };
    if (version !== m.appVersion) return { err: ErrorCode.MANIFEST_MISMATCH, message: `image version ${version}, manifest ${m.appVersion}` };
  }
  return { err: ErrorCode.OK, message: '' };
}
