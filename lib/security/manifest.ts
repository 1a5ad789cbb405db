/**
 * The signed update manifest "BOM1" (docs/PROTOCOL.md, CONTRACT §D): what the release process vouches for
 * (image digest and size, release number, secure_version, chip, project, version, optional device
 * allow-list, expiry, delta base), signed with ECDSA P-256 over SHA-256 (FIPS 186-5), signature r ‖ s
 * (IEEE P1363, 32 bytes each, big-endian). A gateway relays it; only the release key can make one.
 *
 * | off | size | field |  0 magic "BOM1" · 4 format 1 · 5 key_id · 6 u16 length · 8 image_sha256[32] ·
 * 40 u32 image_size · 44 base_sha256[32] · 76 u32 release · 80 u32 secure_version · 84 u16 chip_id ·
 * 86 u16 device_count · 88 project_name[32] · 120 app_version[32] · 152 u32 not_after · 156 u32 reserved ·
 * 160 device_ids[6·n] · 160+6n signature[64]. Little-endian.
 */
import { sign, verify, type KeyObject } from 'crypto';
import { OtaError } from '../errors';
import {
  MANIFEST_FORMAT,
  MANIFEST_HEADER_SIZE,
  MANIFEST_MAGIC as MANIFEST_MAGIC_TEXT,
  MANIFEST_MAX_DEVICES,
  MANIFEST_MIN_SIZE,
  MANIFEST_SIGNATURE_SIZE,
  SHA256_SIZE,
} from '../protocol/constants';
import { DEVICE_ID_SIZE, formatDeviceId } from './device-id';
import { MAX_RELEASE_KEYS } from './keys';

// The wire sizes are lib/protocol's (PROTOCOL.md §12.1); this module is the one manifest codec.
export { MANIFEST_FORMAT, MANIFEST_SIGNATURE_SIZE };
export const MANIFEST_MAGIC = Buffer.from(MANIFEST_MAGIC_TEXT, 'ascii');
export const MANIFEST_BODY_HEADER_SIZE = MANIFEST_HEADER_SIZE;
/** The smallest manifest: no device list. */
export const MIN_MANIFEST_SIZE = MANIFEST_MIN_SIZE;
export const MAX_MANIFEST_DEVICES = MANIFEST_MAX_DEVICES;
export const MANIFEST_STRING_SIZE = 32;
const U32_MAX = 0xffffffff;

const Offset = {
  FORMAT: 4,
  KEY_ID: 5,
  LENGTH: 6,
  IMAGE_SHA256: 8,
  IMAGE_SIZE: 40,
  BASE_SHA256: 44,
  RELEASE: 76,
  SECURE_VERSION: 80,
  CHIP_ID: 84,
  DEVICE_COUNT: 86,
  PROJECT_NAME: 88,
  APP_VERSION: 120,
  NOT_AFTER: 152,
  RESERVED: 156,
  DEVICE_IDS: 160,
} as const;

export interface ManifestFields {
  /** Which release public key signs it (0..3). */
  keyId: number;
  imageSha256: Buffer;
  imageSize: number;
  /** 32 zero bytes: any transfer; else only a delta from the image with this running_sha256. */
  baseSha256: Buffer;
  /** Monotonic release number, ≥ 1; a device refuses one below its release floor. */
  release: number;
  secureVersion: number;
  /** ESP image header chip id. */
  chipId: number;
  /** 6-byte device ids allowed; empty: any device. */
  deviceIds: Buffer[];
  projectName: string;
  appVersion: string;
  /** Unix seconds after which the host refuses it; 0 = never. */
  notAfter: number;
}

export interface Manifest extends ManifestFields {
  /** The signed bytes [0, 160 + 6n). */
  body: Buffer;
  signature: Buffer;
  /** The whole manifest as sent after BEGIN. */
  bytes: Buffer;
}

function invalid(message: string, details?: Record<string, unknown>): OtaError {
  return new OtaError('MANIFEST_INVALID', message, details);
}

export function manifestLength(deviceCount: number): number {
  return MIN_MANIFEST_SIZE + DEVICE_ID_SIZE * deviceCount;
}

function checkU32(value: number, name: string, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > U32_MAX) throw new OtaError('BAD_OPTION', `manifest ${name} must be an integer ${min}..${U32_MAX}, got ${value}`);
}

function writeString(buf: Buffer, offset: number, text: string, name: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MANIFEST_STRING_SIZE) throw new OtaError('BAD_OPTION', `manifest ${name} is longer than ${MANIFEST_STRING_SIZE} bytes: "${text}"`);
  bytes.copy(buf, offset);
}

/** The bytes the signature covers; throws BAD_OPTION naming a field that does not fit. */
export function encodeManifestBody(fields: ManifestFields): Buffer {
  const n = fields.deviceIds.length;
  if (!Number.isInteger(fields.keyId) || fields.keyId < 0 || fields.keyId >= MAX_RELEASE_KEYS) throw new OtaError('BAD_OPTION', `manifest key_id must be 0..${MAX_RELEASE_KEYS - 1}, got ${fields.keyId}`);
  if (n > MAX_MANIFEST_DEVICES) throw new OtaError('BAD_OPTION', `a manifest allows at most ${MAX_MANIFEST_DEVICES} devices, got ${n}`);
  for (const [name, hash] of [['image_sha256', fields.imageSha256], ['base_sha256', fields.baseSha256]] as const) {
    if (!Buffer.isBuffer(hash) || hash.length !== SHA256_SIZE) throw new OtaError('BAD_OPTION', `manifest ${name} must be ${SHA256_SIZE} bytes`);
  }
  checkU32(fields.imageSize, 'image_size', 1);
  checkU32(fields.release, 'release', 1);
  checkU32(fields.secureVersion, 'secure_version');
  checkU32(fields.notAfter, 'not_after');
  if (!Number.isInteger(fields.chipId) || fields.chipId < 0 || fields.chipId > 0xffff) throw new OtaError('BAD_OPTION', `manifest chip_id must be 0..65535, got ${fields.chipId}`);
  const body = Buffer.alloc(Offset.DEVICE_IDS + DEVICE_ID_SIZE * n);
  MANIFEST_MAGIC.copy(body, 0);
  body[Offset.FORMAT] = MANIFEST_FORMAT;
  body[Offset.KEY_ID] = fields.keyId;
  body.writeUInt16LE(manifestLength(n), Offset.LENGTH);
  fields.imageSha256.copy(body, Offset.IMAGE_SHA256);
  body.writeUInt32LE(fields.imageSize, Offset.IMAGE_SIZE);
  fields.baseSha256.copy(body, Offset.BASE_SHA256);
  body.writeUInt32LE(fields.release, Offset.RELEASE);
  body.writeUInt32LE(fields.secureVersion, Offset.SECURE_VERSION);
  body.writeUInt16LE(fields.chipId, Offset.CHIP_ID);
  body.writeUInt16LE(n, Offset.DEVICE_COUNT);
  writeString(body, Offset.PROJECT_NAME, fields.projectName, 'project_name');
  writeString(body, Offset.APP_VERSION, fields.appVersion, 'app_version');
  body.writeUInt32LE(fields.notAfter, Offset.NOT_AFTER);
  fields.deviceIds.forEach((id, i) => {
    if (!Buffer.isBuffer(id) || id.length !== DEVICE_ID_SIZE) throw new OtaError('BAD_OPTION', `manifest device id ${i + 1} must be ${DEVICE_ID_SIZE} bytes`);
    id.copy(body, Offset.DEVICE_IDS + DEVICE_ID_SIZE * i);
  });
  return body;
}

/** Encodes and signs; the private key must be the release key `fields.keyId` names. */
export function signManifest(fields: ManifestFields, privateKey: KeyObject): Manifest {
  const body = encodeManifestBody(fields);
  const signature = sign('sha256', body, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return decodeManifest(Buffer.concat([body, signature]));
}

function readString(buf: Buffer, offset: number, name: string): string {
  const field = buf.subarray(offset, offset + MANIFEST_STRING_SIZE);
  const end = field.indexOf(0);
  if (end >= 0 && field.subarray(end).some((b) => b !== 0)) throw invalid(`the manifest's ${name} is not NUL-padded`);
  return field.subarray(0, end < 0 ? MANIFEST_STRING_SIZE : end).toString('utf8');
}

/** Parses a manifest (signature not checked: verifyManifest); MANIFEST_INVALID names what is wrong. */
export function decodeManifest(buf: Buffer): Manifest {
  if (!Buffer.isBuffer(buf)) throw invalid(`a manifest must be a Buffer, got ${buf === null ? 'null' : typeof buf}`);
  if (buf.length < MIN_MANIFEST_SIZE) throw invalid(`a manifest is at least ${MIN_MANIFEST_SIZE} bytes, got ${buf.length}`);
  if (!buf.subarray(0, 4).equals(MANIFEST_MAGIC)) throw invalid(`not a manifest: magic ${buf.subarray(0, 4).toString('hex')} instead of "BOM1" (424f4d31)`);
  if (buf[Offset.FORMAT] !== MANIFEST_FORMAT) throw invalid(`manifest format ${buf[Offset.FORMAT]} is not supported (this client reads format ${MANIFEST_FORMAT})`);
  const keyId = buf[Offset.KEY_ID];
  if (keyId >= MAX_RELEASE_KEYS) throw invalid(`manifest key_id ${keyId} is outside 0..${MAX_RELEASE_KEYS - 1}`);
  const n = buf.readUInt16LE(Offset.DEVICE_COUNT);
  if (n > MAX_MANIFEST_DEVICES) throw invalid(`the manifest lists ${n} devices, more than ${MAX_MANIFEST_DEVICES}`);
  const length = buf.readUInt16LE(Offset.LENGTH);
  if (length !== manifestLength(n)) throw invalid(`manifest length field ${length} does not match ${n} device(s) (${manifestLength(n)} bytes)`);
  if (buf.length !== length) throw invalid(`the manifest is ${buf.length} bytes, its length field says ${length}`);
  if (buf.readUInt32LE(Offset.RESERVED) !== 0) throw invalid('the manifest\'s reserved field is not zero');
  const bodyEnd = Offset.DEVICE_IDS + DEVICE_ID_SIZE * n;
  return {
    keyId,
    imageSha256: Buffer.from(buf.subarray(Offset.IMAGE_SHA256, Offset.IMAGE_SHA256 + SHA256_SIZE)),
    imageSize: buf.readUInt32LE(Offset.IMAGE_SIZE),
    baseSha256: Buffer.from(buf.subarray(Offset.BASE_SHA256, Offset.BASE_SHA256 + SHA256_SIZE)),
    release: buf.readUInt32LE(Offset.RELEASE),
    secureVersion: buf.readUInt32LE(Offset.SECURE_VERSION),
    chipId: buf.readUInt16LE(Offset.CHIP_ID),
    deviceIds: Array.from({ length: n }, (_v, i) => Buffer.from(buf.subarray(Offset.DEVICE_IDS + DEVICE_ID_SIZE * i, Offset.DEVICE_IDS + DEVICE_ID_SIZE * (i + 1)))),
    projectName: readString(buf, Offset.PROJECT_NAME, 'project_name'),
    appVersion: readString(buf, Offset.APP_VERSION, 'app_version'),
    notAfter: buf.readUInt32LE(Offset.NOT_AFTER),
    body: Buffer.from(buf.subarray(0, bodyEnd)),
    signature: Buffer.from(buf.subarray(bodyEnd)),
    bytes: Buffer.from(buf),
  };
}

/**
 * Checks the signature with the release public key the manifest names (`publicKeys[keyId]`, as a device
 * indexes its keys). MANIFEST_INVALID when that key is missing or the signature does not verify.
 */
export function verifyManifest(manifest: Manifest, publicKeys: ReadonlyArray<KeyObject | undefined>): void {
  const key = publicKeys[manifest.keyId];
  if (!key) {
    const have = publicKeys.map((k, i) => (k ? i : -1)).filter((i) => i >= 0);
    throw invalid(`the manifest is signed with release key_id ${manifest.keyId}, and no public key with that id was given (have: ${have.length ? have.join(', ') : 'none'})`, { keyId: manifest.keyId });
  }
  let ok: boolean;
  try {
    ok = verify('sha256', manifest.body, { key, dsaEncoding: 'ieee-p1363' }, manifest.signature);
  } catch (err) {
    throw invalid(`the manifest signature cannot be checked with release key ${manifest.keyId}: ${(err as Error).message}`, { keyId: manifest.keyId });
  }
  if (!ok) throw invalid(`the manifest signature does not verify with release key ${manifest.keyId}: it was not made with that key, or the manifest was changed`, { keyId: manifest.keyId });
}

/** The manifest as people read it (CLI inspect, logs): hex digests, device ids as addresses, dates. */
export function describeManifest(m: ManifestFields): Record<string, unknown> {
  return {
    keyId: m.keyId,
    imageSha256: m.imageSha256.toString('hex'),
    imageSize: m.imageSize,
    baseSha256: m.baseSha256.every((b) => b === 0) ? null : m.baseSha256.toString('hex'),
    release: m.release,
    secureVersion: m.secureVersion,
    chipId: m.chipId,
    projectName: m.projectName,
    appVersion: m.appVersion,
    devices: m.deviceIds.map(formatDeviceId),
    notAfter: m.notAfter === 0 ? null : new Date(m.notAfter * 1000).toISOString(),
  };
}
