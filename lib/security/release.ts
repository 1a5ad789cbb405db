/**
 * Making the manifest for a built image (CLI `sign`): every image field comes from the file itself, so a
 * manifest cannot claim another digest, chip, project or version than the image it is signed for.
 */
import type { KeyObject } from 'crypto';
import { OtaError } from '../errors';
import { fileSha256, parseVersion, validateAppImage } from '../image';
import { parseDeviceId } from './device-id';
import { signManifest, type Manifest } from './manifest';

const RELEASE_MAX = 0xffffffff;

/**
 * The default release number of a version: major × 1,000,000 + minor × 1,000 + patch ("v2.4.1" → 2004001).
 * null when the version does not parse, a part is ≥ 1000 (it would overlap the next part) or the result is 0.
 * A pre-release or a git describe build gets its release's number ("1.2.0-rc1" and "v1.2.0-3-gabc" → 1002000).
 */
export function releaseFromVersion(version: string): number | null {
  const v = parseVersion(version);
  if (!v || v.minor >= 1000 || v.patch >= 1000) return null;
  const release = v.major * 1_000_000 + v.minor * 1_000 + v.patch;
  return release >= 1 && release <= RELEASE_MAX ? release : null;
}

export interface ManifestOptions {
  /** Release number (default: releaseFromVersion of the image's version; required when that is null). */
  release?: number;
  /** Which release key signs (default 0). */
  keyId?: number;
  /** Allowed devices (`aa:bb:cc:dd:ee:ff` or 6-byte Buffers); empty or absent: any device. */
  devices?: ReadonlyArray<string | Buffer>;
  /** After this the host refuses the manifest (a Date, or Unix seconds). */
  notAfter?: Date | number;
  /** Only a delta from this base (running_sha256 of the base image, 32 bytes or 64 hex digits). */
  baseSha256?: Buffer | string;
}

function baseOf(value: Buffer | string | undefined): Buffer {
  if (value === undefined) return Buffer.alloc(32);
  const buf = typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value.trim()) ? Buffer.from(value.trim(), 'hex') : value;
  if (!Buffer.isBuffer(buf) || buf.length !== 32) throw new OtaError('BAD_OPTION', 'the delta base must be a SHA-256: 64 hex digits');
  return buf;
}

function notAfterOf(value: Date | number | undefined): number {
  if (value === undefined) return 0;
  const seconds = value instanceof Date ? Math.floor(value.getTime() / 1000) : value;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > RELEASE_MAX) throw new OtaError('BAD_OPTION', `the manifest expiry must be a date between 1970 and 2106, got ${String(value)}`);
  return seconds;
}

/** Validates the image (image check codes) and signs a manifest for it. */
export function manifestForImage(image: Buffer, options: ManifestOptions, privateKey: KeyObject): Manifest {
  const parsed = validateAppImage(image);
  if (!parsed.appDesc || parsed.chipId === null) throw new OtaError('NO_APP_DESC', 'the image has no application description to take version and project from');
  const release = options.release ?? releaseFromVersion(parsed.appDesc.version);
  if (release === null) {
    throw new OtaError('BAD_OPTION', `the image's version "${parsed.appDesc.version}" gives no release number (it is not major.minor.patch): give the release number explicitly`);
  }
  return signManifest(
    {
      keyId: options.keyId ?? 0,
      imageSha256: fileSha256(image),
      imageSize: image.length,
      baseSha256: baseOf(options.baseSha256),
      release,
      secureVersion: parsed.appDesc.secureVersion,
      chipId: parsed.chipId,
      deviceIds: (options.devices ?? []).map(parseDeviceId),
      projectName: parsed.appDesc.projectName,
      appVersion: parsed.appDesc.version,
      notAfter: notAfterOf(options.notAfter),
    },
    privateKey,
  );
}
