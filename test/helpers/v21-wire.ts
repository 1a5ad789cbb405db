/**
 * Test-side helpers for protocol v2.1 (PROTOCOL.md §2.1, §5, §7, §12) over the shared codec (lib/protocol):
 * BEGIN with its tag, signed manifests, PROVISION, Status notifications cut to MTU - 3 bytes. The device
 * model decodes on its own side (lib/sim/device/control-decode.ts), strictly, as the firmware does.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'crypto';
import { beginTag, commandTag } from '../../lib/protocol/auth';
import { encodeCommand } from '../../lib/protocol/codec';
import { BEGIN_TAG_OFFSET, BeginFlags, Op, STATUS_FORMAT_1, STATUS_FORMAT_1_SIZE, STATUS_SIZE, TAG_SIZE, type TaggedOp } from '../../lib/protocol/constants';
import { signManifest } from '../../lib/security/manifest';
import { decodeStatus, type DeviceStatus } from '../../lib/protocol/status';

export interface BeginV21 {
  imageSize: number;
  transferSize: number;
  encoding: number;
  flags: number;
  chunkSize: number;
  sha256: Buffer;
  baseSha256?: Buffer;
  manifest?: Buffer;
}

/** BEGIN with a zero tag (set it with withTag). Flags bit1 is set when a manifest is given. */
export function encodeBeginV21(b: BeginV21): Buffer {
  const flags = b.flags | (b.manifest ? BeginFlags.MANIFEST : 0);
  return encodeCommand({ op: Op.BEGIN, ...b, flags, tag: Buffer.alloc(TAG_SIZE) });
}

/** The BEGIN tag of a session key over begin[1..76] (§7). */
export function beginTagV21(key: Buffer, nonce: Buffer, begin: Buffer): Buffer {
  return beginTag(key, nonce, begin);
}

export function withTag(begin: Buffer, tag: Buffer): Buffer {
  const out = Buffer.from(begin);
  tag.copy(out, BEGIN_TAG_OFFSET);
  return out;
}

export function commandTagV21(key: Buffer, nonce: Buffer, op: number): Buffer {
  return commandTag(key, nonce, op as TaggedOp);
}

export function encodeProvision(key: Buffer): Buffer {
  return encodeCommand({ op: Op.PROVISION, key });
}

export interface ReleaseKey {
  privateKey: KeyObject;
  /** 65-byte uncompressed SEC1 point. */
  publicPoint: Buffer;
}

export function generateReleaseKey(): ReleaseKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
  return { privateKey: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), publicPoint: point };
}

/** Manifest fields with test defaults (key 0, any base, no expiry, any device); device ids as bytes. */
export interface ManifestFields {
  keyId?: number;
  imageSha256: Buffer;
  imageSize: number;
  baseSha256?: Buffer;
  release: number;
  secureVersion: number;
  chipId: number;
  deviceIds?: Buffer[];
  projectName: string;
  appVersion: string;
  notAfter?: number;
}

/** A "BOM1" manifest signed with the shared codec (ECDSA P-256 over SHA-256, r ‖ s). */
export function buildManifest(f: ManifestFields, key: KeyObject): Buffer {
  return signManifest(
    {
      ...f,
      keyId: f.keyId ?? 0,
      baseSha256: f.baseSha256 ?? Buffer.alloc(32),
      notAfter: f.notAfter ?? 0,
      deviceIds: f.deviceIds ?? [],
    },
    key,
  ).bytes;
}

export type StatusV2 = DeviceStatus;

/**
 * A Status value: whole (format 2, 252 bytes) as the shared decoder reads it; a notification cut to
 * MTU - 3 bytes (232..251) is read as its format-1 part, the format-2 fields then undefined.
 */
export function decodeStatusV2(buf: Buffer): StatusV2 {
  if (buf.length >= STATUS_SIZE || buf.length < STATUS_FORMAT_1_SIZE) return decodeStatus(buf);
  const v1 = Buffer.from(buf.subarray(0, STATUS_FORMAT_1_SIZE));
  v1[0] = STATUS_FORMAT_1;
  return { ...decodeStatus(v1), format: buf[0] };
}
