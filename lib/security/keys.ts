/**
 * Keys of the security scheme (docs/SECURITY.md):
 * - session keys (32 bytes, HMAC-SHA256 tags of PROTOCOL.md §7): per device, derived from the plant master
 *   key with HKDF-SHA256 (RFC 5869) and the device's id, or one shared fleet key (legacy);
 * - release keys (ECDSA P-256, FIPS 186-5): the private key signs manifests, devices hold the public keys as
 *   uncompressed SEC1 points (65 bytes; `release_keys.bin` = n × 65 bytes, key_id = index).
 * Secret keys come from a file or an environment variable, so they never appear in `ps` or shell history.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, type KeyObject } from 'crypto';
import { readFileSync, statSync } from 'fs';
import { OtaError } from '../errors';
import { SESSION_KEY_SIZE } from '../protocol/constants';
import { parseDeviceId } from './device-id';

export { SESSION_KEY_SIZE };
export const MASTER_KEY_SIZE = SESSION_KEY_SIZE;
/** HKDF salt of per-device keys (CONTRACT §E); the info is the 6-byte device id. */
export const DEVICE_KEY_SALT = Buffer.from('BLEOTA2-DEVICE-KEY', 'ascii');
export const SEC1_PUBLIC_KEY_SIZE = 65;
export const MAX_RELEASE_KEYS = 4;
/** Environment variables the CLI reads keys from (hex). */
export const MASTER_KEY_ENV = 'BLE_OTA_MASTER_KEY';
export const FLEET_KEY_ENV = 'BLE_OTA_FLEET_KEY';

function badKey(message: string, details?: Record<string, unknown>): OtaError {
  return new OtaError('BAD_KEY', message, details);
}

/** Per-device session key = HKDF-SHA256(IKM = master key, salt = "BLEOTA2-DEVICE-KEY", info = device id, L = 32). */
export function deriveDeviceKey(masterKey: Buffer, deviceId: Buffer | string): Buffer {
  if (!Buffer.isBuffer(masterKey) || masterKey.length !== MASTER_KEY_SIZE) {
    throw badKey(`the plant master key must be ${MASTER_KEY_SIZE} bytes (64 hex digits)`);
  }
  return Buffer.from(hkdfSync('sha256', masterKey, DEVICE_KEY_SALT, parseDeviceId(deviceId), SESSION_KEY_SIZE));
}

/**
 * The session key for one device from the host options: the derived key with a master key, the fleet key
 * as it is, or none. Both set is a configuration error (which one would the device hold?).
 */
export function sessionKeyFor(options: { masterKey?: Buffer; fleetKey?: Buffer }, deviceId: Buffer | string | null | undefined): Buffer | undefined {
  if (options.masterKey && options.fleetKey) {
    throw new OtaError('BAD_OPTION', 'masterKey and fleetKey are both set: give the plant master key (per-device keys, recommended) or the shared fleet key, not both');
  }
  if (options.fleetKey) return options.fleetKey;
  if (!options.masterKey) return undefined;
  if (deviceId === null || deviceId === undefined) {
    throw new OtaError('DEVICE_ID_UNKNOWN', 'a per-device key needs the device id, and the device does not report one (Status format 1: firmware older than protocol v2.1)');
  }
  return deriveDeviceKey(options.masterKey, deviceId);
}

export interface ReleaseKeyPair {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
  /** 0x04 ‖ X ‖ Y, what a device stores. */
  publicKeySec1: Buffer;
}

export function generateReleaseKeyPair(): ReleaseKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeySec1: publicKeyToSec1(publicKey),
  };
}

function requireP256(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const found = key.asymmetricKeyType === 'ec' ? `curve ${String(key.asymmetricKeyDetails?.namedCurve)}` : String(key.asymmetricKeyType);
    throw badKey(`${what} must be an ECDSA P-256 (prime256v1) key, got ${found}`);
  }
  return key;
}

/** Uncompressed SEC1 point of a P-256 public key (or of the public half of a private key). */
export function publicKeyToSec1(key: KeyObject): Buffer {
  const pub = requireP256(key.type === 'private' ? createPublicKey(key) : key, 'a release key');
  const jwk = pub.export({ format: 'jwk' });
  const x = Buffer.from(String(jwk.x), 'base64url');
  const y = Buffer.from(String(jwk.y), 'base64url');
  return Buffer.concat([Buffer.from([0x04]), x, y]);
}

/** A P-256 public key from its 65-byte uncompressed SEC1 point; a point not on the curve is refused. */
export function publicKeyFromSec1(point: Buffer): KeyObject {
  if (!Buffer.isBuffer(point) || point.length !== SEC1_PUBLIC_KEY_SIZE || point[0] !== 0x04) {
    throw badKey(`a release public key is ${SEC1_PUBLIC_KEY_SIZE} bytes 0x04 ‖ X ‖ Y (uncompressed SEC1), got ${Buffer.isBuffer(point) ? `${point.length} bytes starting 0x${(point[0] ?? 0).toString(16)}` : typeof point}`);
  }
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
      format: 'jwk',
    });
  } catch (err) {
    throw badKey(`the release public key is not a point on P-256: ${(err as Error).message}`);
  }
}

/** `release_keys.bin`: the public keys back to back, key_id = index (what the firmware embeds). */
export function encodeReleaseKeysFile(keys: readonly KeyObject[]): Buffer {
  if (keys.length < 1 || keys.length > MAX_RELEASE_KEYS) throw badKey(`a release key file holds 1..${MAX_RELEASE_KEYS} keys, got ${keys.length}`);
  return Buffer.concat(keys.map(publicKeyToSec1));
}

export function decodeReleaseKeysFile(file: Buffer): KeyObject[] {
  const n = file.length / SEC1_PUBLIC_KEY_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_RELEASE_KEYS) {
    throw badKey(`a release key file is 1..${MAX_RELEASE_KEYS} × ${SEC1_PUBLIC_KEY_SIZE} bytes, got ${file.length} bytes`);
  }
  return Array.from({ length: n }, (_v, i) => publicKeyFromSec1(file.subarray(i * SEC1_PUBLIC_KEY_SIZE, (i + 1) * SEC1_PUBLIC_KEY_SIZE)));
}

function readKeyFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badKey(`cannot read the ${what} file ${file}: ${code === 'ENOENT' ? 'it does not exist' : code ?? (err as Error).message}`, { file });
  }
}

/** 32 bytes from a file holding them raw or as 64 hex digits (whitespace around allowed), or from hex text. */
export function parseSecretKey(content: Buffer | string, what: string): Buffer {
  if (Buffer.isBuffer(content) && content.length === SESSION_KEY_SIZE) return Buffer.from(content);
  const text = content.toString().trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const length = Buffer.isBuffer(content) ? `${content.length} bytes` : `${text.length} characters`;
  throw badKey(`the ${what} must be 32 bytes: a file of 32 raw bytes or 64 hex digits (got ${length}; the value is not shown)`);
}

export interface LoadedSecret {
  key: Buffer;
  /** "file <path>" or "environment BLE_OTA_…", for messages (never the key). */
  source: string;
  /** E.g. a key file others may read. */
  warnings: string[];
}

/**
 * A secret (session, fleet or master) key from a file or an environment variable; undefined when neither
 * is given. A file wins over the environment; a file readable by group or others gets a warning.
 */
export function loadSecretKey(source: { file?: string; envName?: string; env?: NodeJS.ProcessEnv }, what: string): LoadedSecret | undefined {
  if (source.file) {
    const key = parseSecretKey(readKeyFile(source.file, what), `${what} in ${source.file}`);
    const warnings: string[] = [];
    if (process.platform !== 'win32' && (statSync(source.file).mode & 0o077) !== 0) {
      warnings.push(`the ${what} file ${source.file} can be read by other users: chmod 600 it`);
    }
    return { key, source: `file ${source.file}`, warnings };
  }
  const value = source.envName ? (source.env ?? process.env)[source.envName] : undefined;
  if (value !== undefined && value !== '') {
    return { key: parseSecretKey(value, `${what} in ${source.envName}`), source: `environment ${source.envName}`, warnings: [] };
  }
  return undefined;
}

/** A release private key (PKCS#8 or SEC1 PEM, P-256) from a file. */
export function loadReleasePrivateKey(file: string): KeyObject {
  const pem = readKeyFile(file, 'release private key');
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw badKey(`${file} is not a PEM private key: ${(err as Error).message}`, { file });
  }
  return requireP256(key, `the release private key in ${file}`);
}

/**
 * Release public keys from a file: a PEM key (public, or a private key whose public half is taken) gives one
 * key; binary `release_keys.bin` gives its 1..4 keys in key_id order.
 */
export function loadReleasePublicKeys(file: string): KeyObject[] {
  const content = readKeyFile(file, 'release public key');
  if (content.subarray(0, 11).toString('latin1') === '-----BEGIN ') {
    let key: KeyObject;
    try {
      key = createPublicKey(content);
    } catch (err) {
      throw badKey(`${file} is not a PEM key: ${(err as Error).message}`, { file });
    }
    return [requireP256(key, `the release public key in ${file}`)];
  }
  return decodeReleaseKeysFile(content);
}
