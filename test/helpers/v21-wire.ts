/**
 * Test-side encoders of protocol v2.1 (PROTOCOL.md §B-§E), written from the contract independently of
 * the device model: the 93-byte BEGIN and its tag, signed manifests, PROVISION, Status format 2. Used to
 * drive devices at the GATT level.
 */
import { createHmac, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'crypto';
import { decodeStatus, type DeviceStatus } from '../../lib/protocol/status';

export const BEGIN_V21_LENGTH = 93;

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

/** BEGIN with a zero tag (the tag goes to bytes 77..92: beginTagV21). Flags bit1 is set when a manifest is given. */
export function encodeBeginV21(b: BeginV21): Buffer {
  const buf = Buffer.alloc(BEGIN_V21_LENGTH);
  buf[0] = 0x02;
  buf.writeUInt32LE(b.imageSize, 1);
  buf.writeUInt32LE(b.transferSize, 5);
  buf[9] = b.encoding;
  buf[10] = b.flags | (b.manifest ? 0x02 : 0);
  buf.writeUInt16LE(b.chunkSize, 11);
  b.sha256.copy(buf, 13);
  (b.baseSha256 ?? Buffer.alloc(32)).copy(buf, 45);
  return b.manifest ? Buffer.concat([buf, b.manifest]) : buf;
}

/** HMAC-SHA256(key, "BLEOTA2-BEGIN" ‖ nonce ‖ begin[1..76]) cut to 16 bytes. */
export function beginTagV21(key: Buffer, nonce: Buffer, begin: Buffer): Buffer {
  return createHmac('sha256', key).update('BLEOTA2-BEGIN').update(nonce).update(begin.subarray(1, 77)).digest().subarray(0, 16);
}

export function withTag(begin: Buffer, tag: Buffer): Buffer {
  const out = Buffer.from(begin);
  tag.copy(out, 77);
  return out;
}

export function commandTagV21(key: Buffer, nonce: Buffer, op: number): Buffer {
  return createHmac('sha256', key).update('BLEOTA2-CMD').update(nonce).update(Buffer.from([op])).digest().subarray(0, 16);
}

export function encodeProvision(key: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x08]), key]);
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

function padded(value: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  Buffer.from(value, 'utf8').copy(out, 0, 0, size);
  return out;
}

/** A "BOM1" manifest signed with ECDSA P-256 over SHA-256 of bytes [0, 160+6n), signature r ‖ s. */
export function buildManifest(f: ManifestFields, key: KeyObject): Buffer {
  const ids = f.deviceIds ?? [];
  const body = Buffer.alloc(160 + 6 * ids.length);
  body.write('BOM1', 0, 'ascii');
  body[4] = 1;
  body[5] = f.keyId ?? 0;
  body.writeUInt16LE(224 + 6 * ids.length, 6);
  f.imageSha256.copy(body, 8);
  body.writeUInt32LE(f.imageSize, 40);
  (f.baseSha256 ?? Buffer.alloc(32)).copy(body, 44);
  body.writeUInt32LE(f.release, 76);
  body.writeUInt32LE(f.secureVersion, 80);
  body.writeUInt16LE(f.chipId, 84);
  body.writeUInt16LE(ids.length, 86);
  padded(f.projectName, 32).copy(body, 88);
  padded(f.appVersion, 32).copy(body, 120);
  body.writeUInt32LE(f.notAfter ?? 0, 152);
  ids.forEach((id, i) => id.copy(body, 160 + 6 * i));
  const signature = sign('sha256', body, { key, dsaEncoding: 'ieee-p1363' });
  return Buffer.concat([body, signature]);
}

export interface StatusV2 extends DeviceStatus {
  updatePartitionSize: number;
  releaseFloor: number;
  deviceId: string;
  releaseKeyIds: number;
}

/**
 * Status format 2 (252 bytes, or the first min(MTU-3, 252) of a notification): bytes 0..231 decoded as
 * format 1, then the v2.1 fields (undefined-free only when the whole value is there).
 */
export function decodeStatusV2(buf: Buffer): StatusV2 {
  if (buf.length < 232 || buf[0] !== 2) throw new Error(`not a format-2 Status: ${buf.length} bytes, format ${buf[0]}`);
  const v1 = Buffer.from(buf.subarray(0, 232));
  v1[0] = 1;
  const base = decodeStatus(v1);
  const full = buf.length >= 252;
  return {
    ...base,
    format: 2,
    updatePartitionSize: full ? buf.readUInt32LE(232) : NaN,
    releaseFloor: full ? buf.readUInt32LE(236) : NaN,
    deviceId: full ? [...buf.subarray(240, 246)].map((b) => b.toString(16).padStart(2, '0')).join(':') : '',
    releaseKeyIds: full ? buf[246] : NaN,
  };
}
