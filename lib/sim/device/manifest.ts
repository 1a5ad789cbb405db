/**
 * The device's check of a signed update manifest ("BOM1", PROTOCOL.md §12), in two steps. At BEGIN, before
 * anything is erased, the cheap checks in the contract's order: structure and key_id (MANIFEST_INVALID),
 * what it binds (MANIFEST_MISMATCH), the release floor (RELEASE_TOO_OLD). The ECDSA P-256 signature is
 * verified by the writer as the session's first job, before anything is erased or written
 * (manifestSignatureValid; Node's crypto verifies, as the firmware does with mbedTLS). The layout is the
 * shared codec's (lib/security decodeManifest); which field must match what is the device's policy, here.
 */
import { verify, type KeyObject } from 'crypto';
import { OtaError } from '../../errors';
import { ErrorCode } from '../../protocol/constants';
import { publicKeyFromSec1 } from '../../security/keys';
import { decodeManifest, type Manifest } from '../../security/manifest';

export type { Manifest };

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

/** The BEGIN checks of a manifest (everything but the signature). */
export function checkManifestAtBegin(raw: Buffer, ctx: ManifestContext): ManifestVerdict {
  let m: Manifest;
  try {
    m = decodeManifest(raw);
  } catch (err) {
    return { err: ErrorCode.MANIFEST_INVALID, message: err instanceof OtaError ? err.message : String(err) };
  }
  const key = publicKey(ctx.releaseKeys[m.keyId]);
  if (!key) return { err: ErrorCode.MANIFEST_INVALID, message: `no release key ${m.keyId}` };
  const mismatch = (message: string): ManifestVerdict => ({ err: ErrorCode.MANIFEST_MISMATCH, message });
  if (!m.imageSha256.equals(ctx.imageSha256)) return mismatch('manifest image_sha256 differs from BEGIN');
  if (m.imageSize !== ctx.imageSize) return mismatch(`manifest image_size ${m.imageSize} differs from BEGIN`);
  if (!isZero(m.baseSha256) && !m.baseSha256.equals(ctx.baseSha256)) return mismatch('manifest base_sha256 differs from BEGIN');
  if (m.chipId !== ctx.chipId) return mismatch(`manifest chip id ${m.chipId}`);
  if (m.deviceIds.length > 0 && !m.deviceIds.some((id) => id.equals(ctx.deviceId))) return mismatch('device not in the manifest allow-list');
  if (m.release < ctx.releaseFloor) return { err: ErrorCode.RELEASE_TOO_OLD, message: `release ${m.release} < floor ${ctx.releaseFloor}` };
  return { err: ErrorCode.OK, accepted: { manifest: m, key } };
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
