/**
 * Signed update manifest "BOM1" (docs/PROTOCOL.md §12): layout, ECDSA P-256 signature (SHA-256, r ‖ s),
 * release public keys as uncompressed SEC1 points. Structure only: which fields must match which image,
 * device or floor is the caller's policy (host checks §12.4, device checks §12.2).
 */
import { KeyObject, createPrivateKey, createPublicKey, sign, verify } from 'crypto';
import { OtaError } from '../errors';
import {
  DEVICE_ID_SIZE,
  MANIFEST_FORMAT,
  MANIFEST_HEADER_SIZE,
  MANIFEST_MAGIC,
  MANIFEST_MAX_DEVICES,
  MANIFEST_MIN_SIZE,
  MANIFEST_SIGNATURE_SIZE,
  RELEASE_KEY_SLOTS,
  RELEASE_PUBLIC_KEY_SIZE,
  SHA256_SIZE,
} from './constants';
import { formatDeviceId, parseDeviceId, readFixedString, writeFixedString } from './status';

/** The signed fields of §12.1 (what a release writes). Device ids are written "aa:bb:cc:dd:ee:ff". */
export interface ManifestFields {
  keyId: number;
  imageSha256: Buffer;
  imageSize: number;
  /** All zero: any transfer; else only a delta from this base. */
  baseSha256: Buffer;
  release: number;
  secureVersion: number;
  chipId: number;
  projectName: string;
  appVersion: string;
  /** Unix seconds, 0 = none (host check only). */
  notAfter: number;
  /** Empty: any device. */
  deviceIds: string[];
}

export interface Manifest extends ManifestFields {
  format: number;
  length: number;
  signature: Buffer;
  /** Bytes [0, 160 + 6n): what the signature covers. */
  signedBytes: Buffer;
  /** The whole manifest as received. */
  bytes: Buffer;
}

function invalid(why: string): OtaError {
  return new OtaError('MANIFEST_INVALID', `The manifest is invalid: ${why}.`);
}

/** Size of a manifest listing `deviceCount` devices. */
export function manifestLength(deviceCount: number): number {
  return MANIFEST_MIN_SIZE + DEVICE_ID_SIZE * deviceCount;
}

/** Decodes a manifest; bad magic, format, length, device_count or key_id → MANIFEST_INVALID (the signature is not checked here). */
export function decodeManifest(buf: Buffer): Manifest {
  if (!Buffer.isBuffer(buf) || buf.length < MANIFEST_MIN_SIZE) throw invalid(`${buf?.length ?? 0} bytes, at least ${MANIFEST_MIN_SIZE} are needed`);
  if (buf.subarray(0, 4).toString('latin1') !== MANIFEST_MAGIC) throw invalid(`magic ${buf.subarray(0, 4).toString('hex')} is not "${MANIFEST_MAGIC}"`);
  if (buf[4] !== MANIFEST_FORMAT) throw invalid(`format ${buf[4]} (this client reads format ${MANIFEST_FORMAT})`);
  const keyId = buf[5];
  if (keyId >= RELEASE_KEY_SLOTS) throw invalid(`key_id ${keyId} is not 0..${RELEASE_KEY_SLOTS - 1}`);
  const n = buf.readUInt16LE(86);
  if (n > MANIFEST_MAX_DEVICES) throw invalid(`device_count ${n} is above ${MANIFEST_MAX_DEVICES}`);
  const length = buf.readUInt16LE(6);
  if (length !== manifestLength(n) || buf.length !== length) {
    throw invalid(`length field ${length}, ${buf.length} bytes, ${n} devices need ${manifestLength(n)}`);
  }
  const signedEnd = MANIFEST_HEADER_SIZE + DEVICE_ID_SIZE * n;
  return {
    format: buf[4],
    keyId,
    length,
    imageSha256: Buffer.from(buf.subarray(8, 40)),
    imageSize: buf.readUInt32LE(40),
    baseSha256: Buffer.from(buf.subarray(44, 76)),
    release: buf.readUInt32LE(76),
    secureVersion: buf.readUInt32LE(80),
    chipId: buf.readUInt16LE(84),
    projectName: readFixedString(buf, 88, 32),
    appVersion: readFixedString(buf, 120, 32),
    notAfter: buf.readUInt32LE(152),
    deviceIds: Array.from({ length: n }, (_x, i) => formatDeviceId(buf.subarray(MANIFEST_HEADER_SIZE + DEVICE_ID_SIZE * i, MANIFEST_HEADER_SIZE + DEVICE_ID_SIZE * (i + 1)))),
    signature: Buffer.from(buf.subarray(signedEnd)),
    signedBytes: Buffer.from(buf.subarray(0, signedEnd)),
    bytes: Buffer.from(buf),
  };
}

function checkUint(name: string, value: number, bits: 16 | 32, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > 2 ** bits - 1) throw new OtaError('BAD_PARAMETER', `Manifest ${name} must be an integer from ${min} to ${2 ** bits - 1} (got ${value}).`);
}

/** The bytes a release signs: [0, 160 + 6n) of §12.1. */
export function manifestSignedBytes(f: ManifestFields): Buffer {
  if (!Number.isInteger(f.keyId) || f.keyId < 0 || f.keyId >= RELEASE_KEY_SLOTS) throw new OtaError('BAD_PARAMETER', `Manifest keyId must be 0..${RELEASE_KEY_SLOTS - 1}.`);
  for (const [name, b] of [['imageSha256', f.imageSha256], ['baseSha256', f.baseSha256]] as const) {
    if (!Buffer.isBuffer(b) || b.length !== SHA256_SIZE) throw new OtaError('BAD_PARAMETER', `Manifest ${name} must be ${SHA256_SIZE} bytes.`);
  }
  checkUint('imageSize', f.imageSize, 32);
  checkUint('release', f.release, 32, 1);
  checkUint('secureVersion', f.secureVersion, 32);
  checkUint('chipId', f.chipId, 16);
  checkUint('notAfter', f.notAfter, 32);
  const n = f.deviceIds.length;
  if (n > MANIFEST_MAX_DEVICES) throw new OtaError('BAD_PARAMETER', `A manifest lists at most ${MANIFEST_MAX_DEVICES} devices (got ${n}).`);
  const buf = Buffer.alloc(MANIFEST_HEADER_SIZE + DEVICE_ID_SIZE * n);
  buf.write(MANIFEST_MAGIC, 0, 'latin1');
  buf[4] = MANIFEST_FORMAT;
  buf[5] = f.keyId;
  buf.writeUInt16LE(manifestLength(n), 6);
  f.imageSha256.copy(buf, 8);
  buf.writeUInt32LE(f.imageSize, 40);
  f.baseSha256.copy(buf, 44);
  buf.writeUInt32LE(f.release, 76);
  buf.writeUInt32LE(f.secureVersion, 80);
  buf.writeUInt16LE(f.chipId, 84);
  buf.writeUInt16LE(n, 86);
  writeFixedString(buf, 88, 32, f.projectName, 'projectName');
  writeFixedString(buf, 120, 32, f.appVersion, 'appVersion');
  buf.writeUInt32LE(f.notAfter, 152);
  f.deviceIds.forEach((id, i) => parseDeviceId(id).copy(buf, MANIFEST_HEADER_SIZE + DEVICE_ID_SIZE * i));
  return buf;
}

/** Signs a manifest with a P-256 private key (KeyObject or PEM): ECDSA over SHA-256, r ‖ s. */
export function signManifest(f: ManifestFields, privateKey: KeyObject | string): Buffer {
  const body = manifestSignedBytes(f);
  let key: KeyObject;
  try {
    key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  } catch {
    throw new OtaError('BAD_PARAMETER', 'The release private key is not a readable PEM key.');
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new OtaError('BAD_PARAMETER', 'The release private key must be a P-256 (prime256v1) private key.');
  }
  const signature = sign('sha256', body, { key, dsaEncoding: 'ieee-p1363' });
  if (signature.length !== MANIFEST_SIGNATURE_SIZE) throw new OtaError('INTERNAL', `ECDSA P-256 gave a ${signature.length}-byte signature.`);
  return Buffer.concat([body, signature]);
}

/** A release public key (65-byte uncompressed SEC1 point) as a Node key; anything else → BAD_PARAMETER. */
export function releasePublicKey(point: Buffer): KeyObject {
  if (!Buffer.isBuffer(point) || point.length !== RELEASE_PUBLIC_KEY_SIZE || point[0] !== 0x04) {
    throw new OtaError('BAD_PARAMETER', `A release public key is ${RELEASE_PUBLIC_KEY_SIZE} bytes: 04 || X || Y.`);
  }
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
  } catch {
    throw new OtaError('BAD_PARAMETER', 'The release public key is not a point of P-256.');
  }
}

/** Whether the manifest's signature verifies under `publicKey` (a SEC1 point or a KeyObject). */
export function verifyManifestSignature(manifest: Manifest, publicKey: Buffer | KeyObject): boolean {
  const key = Buffer.isBuffer(publicKey) ? releasePublicKey(publicKey) : publicKey;
  return verify('sha256', manifest.signedBytes, { key, dsaEncoding: 'ieee-p1363' }, manifest.signature);
}
