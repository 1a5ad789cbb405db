/**
 * Loads a campaign's image: a file name inside the coordinator's firmware directory (no other path is
 * read: IMAGE_UNKNOWN) or base64 in the spec; checks its SHA-256 and reads chip, version and project from
 * it (lib/image). The manifest is the spec's, else `<file>.manifest` beside the file when it exists.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { OtaError } from '../../errors';
import { appHash, validateAppImage } from '../../image';
import type { CampaignSpec, ImageRef } from '../messages';
import { sha256Hex } from '../image-transfer';

export interface LoadedImage {
  bytes: Buffer;
  ref: ImageRef;
  /** Hex SHA-256 of the app as esp_partition_get_sha256 reports it for the running app (lib/image appHash). */
  appSha256: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) {
    throw new OtaError('CAMPAIGN_INVALID', `campaign spec: ${what} is not valid base64`);
  }
  return Buffer.from(compact, 'base64');
}

/** The file inside firmwareDir, or IMAGE_UNKNOWN naming why not (no directory, not a plain file name). */
function resolveInside(firmwareDir: string | undefined, file: string): string {
  if (!firmwareDir) throw new OtaError('IMAGE_UNKNOWN', `the image file "${file}" cannot be read: this coordinator has no firmware directory`);
  const base = path.basename(file);
  if (base !== file || file === '.' || file === '..' || file.includes('\\') || file.includes('\0')) {
    throw new OtaError('IMAGE_UNKNOWN', `the image file must be a file name in the firmware directory, without a path: got ${JSON.stringify(file)}`);
  }
  const root = path.resolve(firmwareDir);
  const full = path.resolve(root, file);
  if (path.dirname(full) !== root) throw new OtaError('IMAGE_UNKNOWN', `the image file ${JSON.stringify(file)} is outside the firmware directory`);
  return full;
}

async function readOptional(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch {
    return null;
  }
}

/** A campaign image that names neither a file nor base64 bytes: nothing to load. */
export function noImageSource(sha256: unknown): OtaError {
  return new OtaError('IMAGE_UNKNOWN', `the campaign gives no source for image ${String(sha256)}: set image.file or image.base64`);
}

export async function loadCampaignImage(image: CampaignSpec['image'], firmwareDir: string | undefined): Promise<LoadedImage> {
  let bytes: Buffer;
  let manifest: string | undefined = image.manifest === undefined ? undefined : decodeBase64(image.manifest, 'image.manifest').toString('base64');
  if (image.base64 !== undefined) {
    bytes = decodeBase64(image.base64, 'image.base64');
  } else if (image.file !== undefined) {
    const full = resolveInside(firmwareDir, image.file);
    const read = await readOptional(full);
    if (!read) throw new OtaError('IMAGE_UNKNOWN', `the image file "${image.file}" does not exist in the firmware directory (or cannot be read)`);
    bytes = read;
    if (manifest === undefined) {
      const side = await readOptional(`${full}.manifest`);
      if (side) manifest = side.toString('base64');
    }
  } else {
    throw noImageSource(image.sha256);
  }
  const sha256 = sha256Hex(bytes);
  if (sha256 !== image.sha256.toLowerCase()) {
    throw new OtaError('IMAGE_HASH_MISMATCH', `the image's SHA-256 is ${sha256}, not the ${image.sha256} the campaign names`);
  }
  const parsed = validateAppImage(bytes);
  if (!parsed.chip || !parsed.appDesc) {
    throw new OtaError('CAMPAIGN_INVALID', 'the image names no known chip or has no application description: it cannot be checked against devices');
  }
  return {
    bytes,
    appSha256: appHash(bytes).toString('hex'),
    ref: {
      sha256,
      size: bytes.length,
      ...(manifest !== undefined ? { manifest } : {}),
      version: parsed.appDesc.version,
      chip: parsed.chip,
      ...(parsed.appDesc.projectName ? { project: parsed.appDesc.projectName } : {}),
    },
  };
}
