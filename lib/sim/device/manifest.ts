/**
 * The device's check of a signed update manifest ("BOM1", PROTOCOL.md §D) at BEGIN, before anything is
 * erased, in the contract's order: structure and signature (MANIFEST_INVALID), then what it binds
 * (MANIFEST_MISMATCH), then the release floor (RELEASE_TOO_OLD). ECDSA P-256 with Node's crypto, as
 * the firmware does with mbedTLS; the device holds only public keys.
 */
import { createPublicKey, verify, type KeyObject } from 'crypto';
import { DEVICE_ID_SIZE, RELEASE_KEY_SIZE, SecurityError } from './contract-v21';

export const MANIFEST_MAGIC = Buffer.from('BOM1', 'ascii');
export const MANIFEST_FORMAT = 1;
/** Bytes before the device list. */
export const MANIFEST_FIXED = 160;
export const MANIFEST_SIGNATURE = 64;
export const MANIFEST_MIN_LENGTH = MANIFEST_FIXED + MANIFEST_SIGNATURE;
export const MANIFEST_MAX_DEVICES = 32;

export interface Manifest {
  keyId: number;
  imageSha256: Buffer;
  imageSize: number;
  baseSha256: Buffer;
  release: number;
  secureVersion: number;
  chipId: number;
  deviceIds: Buffer[];
  projectName: string;
  appVersion: string;
}

/** What the BEGIN announced and what the device is. */
export interface ManifestContext {
  imageSha256: Buffer;
  imageSize: number;
  baseSha256: Buffer;
  chipId: number;
  deviceId: Buffer;
  releaseFloor: number;
  /** Index = key_id; undefined: no key in that slot. */
  releaseKeys: ReadonlyArray<Buffer | undefined>;
}

export type ManifestVerdict =
  | { err: 0; manifest: Manifest; verified: true }
  | { err: number; message: string; verified: boolean };

/** A NUL-padded string field up to its first NUL. */
export function paddedString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** SubjectPublicKeyInfo DER prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function publicKey(point: Buffer): KeyObject | null {
  if (point.length !== RELEASE_KEY_SIZE || point[0] !== 0x04) return null;
  try {
    return createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, point]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/**
 * Checks a manifest against the BEGIN and the device. `verified` tells whether the signature check ran
 * (the device spends the ECDSA time only then: manifest-timing.ts).
 */
export function checkManifest(raw: Buffer, ctx: ManifestContext): ManifestVerdict {
  const invalid = (message: string, verified = false): ManifestVerdict => ({ err: SecurityError.MANIFEST_INVALID, message, verified });
  if (raw.length < MANIFEST_MIN_LENGTH) return invalid('manifest shorter than 224 bytes');
  if (!raw.subarray(0, 4).equals(MANIFEST_MAGIC)) return invalid('manifest magic is not BOM1');
  if (raw[4] !== MANIFEST_FORMAT) return invalid(`manifest format ${raw[4]}`);
  const keyId = raw[5];
  const length = raw.readUInt16LE(6);
  const count = raw.readUInt16LE(86);
  if (count > MANIFEST_MAX_DEVICES) return invalid(`manifest lists ${count} devices (at most 32)`);
  if (length !== MANIFEST_MIN_LENGTH + DEVICE_ID_SIZE * count || length !== raw.length) return invalid(`manifest length ${length}`);
  const point = ctx.releaseKeys[keyId];
  const key = point ? publicKey(point) : null;
  if (!key) return invalid(`no release key ${keyId}`);
  const signed = MANIFEST_FIXED + DEVICE_ID_SIZE * count;
  const signature = raw.subarray(signed, signed + MANIFEST_SIGNATURE);
  if (!signatureValid(key, raw.subarray(0, signed), signature)) return invalid('manifest signature does not verify', true);
  const deviceIds: Buffer[] = [];
  for (let i = 0; i < count; i++) deviceIds.push(Buffer.from(raw.subarray(MANIFEST_FIXED + DEVICE_ID_SIZE * i, MANIFEST_FIXED + DEVICE_ID_SIZE * (i + 1))));
  const m: Manifest = {
    keyId,
    imageSha256: Buffer.from(raw.subarray(8, 40)),
    imageSize: raw.readUInt32LE(40),
    baseSha256: Buffer.from(raw.subarray(44, 76)),
    release: raw.readUInt32LE(76),
    secureVersion: raw.readUInt32LE(80),
    chipId: raw.readUInt16LE(84),
    deviceIds,
    projectName: paddedString(raw.subarray(88, 120)),
    appVersion: paddedString(raw.subarray(120, 152)),
  };
  const mismatch = (message: string): ManifestVerdict => ({ err: SecurityError.MANIFEST_MISMATCH, message, verified: true });
  if (!m.imageSha256.equals(ctx.imageSha256)) return mismatch('manifest image_sha256 differs from BEGIN');
  if (m.imageSize !== ctx.imageSize) return mismatch(`manifest image_size ${m.imageSize} differs from BEGIN`);
  if (!isZero(m.baseSha256) && !m.baseSha256.equals(ctx.baseSha256)) return mismatch('manifest base_sha256 differs from BEGIN');
  if (m.chipId !== ctx.chipId) return mismatch(`manifest chip id ${m.chipId}`);
  if (count > 0 && !deviceIds.some((id) => id.equals(ctx.deviceId))) return mismatch('device not in the manifest allow-list');
  if (m.release < ctx.releaseFloor) return { err: SecurityError.RELEASE_TOO_OLD, message: `release ${m.release} < floor ${ctx.releaseFloor}`, verified: true };
  return { err: 0, manifest: m, verified: true };
}

function signatureValid(key: KeyObject, body: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', body, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

export function isZero(buf: Buffer): boolean {
  return buf.every((b) => b === 0);
}
