/**
 * The device's check of a signed update manifest ("BOM1", PROTOCOL.md §12), in two steps. At BEGIN (or at
 * MANIFEST, §2.4, for what needs no BEGIN), before anything is erased, the cheap checks in the contract's
 * order: structure and key_id (MANIFEST_INVALID), what it binds (MANIFEST_MISMATCH), the release floor
 * (RELEASE_TOO_OLD). The ECDSA P-256 signature is verified by the writer (manifestSignatureValid; Node's
 * crypto verifies, as the firmware does with mbedTLS), before anything is erased or written. The layout is
 * the shared codec's (lib/security decodeManifest); which field must match what is the device's policy, here.
 */
import { verify, type KeyObject } from 'crypto';
import { OtaError } from '../../errors';
import { ErrorCode } from '../../protocol/constants';
import { publicKeyFromSec1 } from '../../security/keys';
import { decodeManifest, type Manifest } from '../../security/manifest';

export type { Manifest };

/** What the device is: what a manifest is checked against without a BEGIN (MANIFEST, §2.4). */
export interface DeviceManifestContext {
  chipId: number;
  deviceId: Buffer;
  releaseFloor: number;
  /** Index = key_id; undefined: no key in that slot. */
  releaseKeys: ReadonlyArray<Buffer | undefined>;
}

/** What a BEGIN announces that a manifest binds. */
export interface BeginBinding {
  imageSha256: Buffer;
  imageSize: number;
  baseSha256: Buffer;
}

/** What the BEGIN announced and what the device is. */
export type ManifestContext = DeviceManifestContext & BeginBinding;

/** A manifest that passed the BEGIN checks; its signature is still to be verified with `key`. */
export interface AcceptedManifest {
  manifest: Manifest;
  key: KeyObject;
}

export type ManifestVerdict = { err: 0; accepted: AcceptedManifest } | { err: number; message: string };

function publicKey(point: Buffer | undefined): KeyObject | null {
  if (!point) return null;
  try {
    return publicKeyFromSec1(point);
  } catch {
    return null;
  }
}

/** Structure and key_id: the decoded manifest and its key, or MANIFEST_INVALID. */
function decodeWithKey(raw: Buffer, ctx: DeviceManifestContext): ManifestVerdict {
  let m: Manifest;
  try {
    m = decodeManifest(raw);
  } catch (err) {
    return { err: ErrorCode.MANIFEST_INVALID, message: err instanceof OtaError ? err.message : String(err) };
  }
  const key = publicKey(ctx.releaseKeys[m.keyId]);
  if (!key) return { err: ErrorCode.MANIFEST_INVALID, message: `no release key ${m.keyId}` };
  return { err: ErrorCode.OK, accepted: { manifest: m, key } };
}

/** Why the manifest does not describe the BEGIN (MANIFEST_MISMATCH), or null. */
export function beginMismatch(m: Manifest, b: BeginBinding): string | null {
  if (!m.imageSha256.equals(b.imageSha256)) return 'manifest image_sha256 differs from BEGIN';
  if (m.imageSize !== b.imageSize) return `manifest image_size ${m.imageSize} differs from BEGIN`;
  if (!isZero(m.baseSha256) && !m.baseSha256.equals(b.baseSha256)) return 'manifest base_sha256 differs from BEGIN';
  return null;
}

/** Why the manifest is not for this device (MANIFEST_MISMATCH), or null. */
function deviceMismatch(m: Manifest, ctx: DeviceManifestContext): string | null {
  if (m.chipId !== ctx.chipId) return `manifest chip id ${m.chipId}`;
  if (m.deviceIds.length > 0 && !m.deviceIds.some((id) => id.equals(ctx.deviceId))) return 'device not in the manifest allow-list';
  return null;
}

/** RELEASE_TOO_OLD, or null. */
export function releaseTooOld(m: Manifest, floor: number): ManifestVerdict | null {
  return m.release < floor ? { err: ErrorCode.RELEASE_TOO_OLD, message: `release ${m.release} < floor ${floor}` } : null;
}

/** The BEGIN checks of a manifest BEGIN carries (everything but the signature). */
export function checkManifestAtBegin(raw: Buffer, ctx: ManifestContext): ManifestVerdict {
  const decoded = decodeWithKey(raw, ctx);
  if (!('accepted' in decoded)) return decoded;
  const m = decoded.accepted.manifest;
  const mismatch = beginMismatch(m, ctx) ?? deviceMismatch(m, ctx);
  if (mismatch) return { err: ErrorCode.MANIFEST_MISMATCH, message: mismatch };
  return releaseTooOld(m, ctx.releaseFloor) ?? decoded;
}

/** MANIFEST's checks (§2.4): the BEGIN checks that need no BEGIN, with the same codes. */
export function checkManifestAlone(raw: Buffer, ctx: DeviceManifestContext): ManifestVerdict {
  const decoded = decodeWithKey(raw, ctx);
  if (!('accepted' in decoded)) return decoded;
  const mismatch = deviceMismatch(decoded.accepted.manifest, ctx);
  if (mismatch) return { err: ErrorCode.MANIFEST_MISMATCH, message: mismatch };
  return releaseTooOld(decoded.accepted.manifest, ctx.releaseFloor) ?? decoded;
}

/** The writer's first job: the ECDSA P-256 signature over SHA-256 of the signed bytes. */
export function manifestSignatureValid(accepted: AcceptedManifest): boolean {
  try {
    return verify('sha256', accepted.manifest.body, { key: accepted.key, dsaEncoding: 'ieee-p1363' }, accepted.manifest.signature);
  } catch {
    return false;
  }
}

export function isZero(buf: Buffer): boolean {
  return buf.every((b) => b === 0);
}
