/**
 * Release and factory commands (docs/SECURITY.md): `keygen` makes the release key pair and the plant master
 * key, `sign` writes the manifest next to an image, `derive-key` gives a device's session key for factory
 * provisioning, and the manifest part of `inspect`. Secrets are written with mode 0600 and printed only
 * when asked (`--print`, or `derive-key`, whose output is the key).
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { OtaError } from '../../lib/errors';
import { MASTER_KEY_ENV, loadReleasePrivateKey, loadReleasePublicKeys, loadSecretKey, decodeReleaseKeysFile, encodeReleaseKeysFile, deriveDeviceKey, generateReleaseKeyPair, MAX_RELEASE_KEYS } from '../../lib/security/keys';
import { decodeManifest, describeManifest, verifyManifest, MANIFEST_MAGIC, type Manifest } from '../../lib/security/manifest';
import { checkBeforeBegin } from '../../lib/security/check';
import { manifestForImage } from '../../lib/security/release';
import { formatDeviceId, parseDeviceId } from '../../lib/security/device-id';
import { createPublicKey } from 'crypto';
import { flag, numberOption, repeatedOption, stringOption, type ParsedArgs } from './args';
import type { Output } from './commands';

export const MANIFEST_SUFFIX = '.manifest';

/** File names keygen writes into --out. */
export const KeygenFiles = {
  PRIVATE: 'release-key.pem',
  PUBLIC: 'release-key.pub.pem',
  RELEASE_KEYS: 'release_keys.bin',
  MASTER: 'master.key',
} as const;

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** Writes a new file; never replaces one (a lost key cannot be recovered). */
function writeNew(file: string, data: string | Buffer, mode: number): void {
  try {
    fs.writeFileSync(file, data, { flag: 'wx', mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new OtaError('BAD_ARGUMENT', `${file} exists; keygen never overwrites a key (choose another --out directory)`);
    throw new OtaError('FILE_NOT_READABLE', `cannot write ${file}: ${code ?? (err as Error).message}`);
  }
}

function readOptional(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OtaError('FILE_NOT_READABLE', `the file ${file} cannot be read: ${(err as Error).message}`);
  }
}

function readRequired(file: string | undefined, what: string): Buffer {
  if (!file) throw new OtaError('BAD_ARGUMENT', `no ${what} given`);
  const content = readOptional(file);
  if (!content) throw new OtaError('FILE_NOT_FOUND', `the file ${file} does not exist`);
  return content;
}

/**
 * keygen --out DIR [--release-keys FILE] [--print]: a release key pair (PEM), release_keys.bin (the public
 * keys the firmware embeds; with --release-keys the existing keys first, the new one appended = rotation)
 * and a random plant master key (64 hex digits). Private files are 0600.
 */
export async function keygenCommand(args: ParsedArgs, io: Output): Promise<number> {
  const out = stringOption(args, 'out');
  if (!out) throw new OtaError('BAD_ARGUMENT', 'keygen needs --out <directory> for the key files');
  const existing = stringOption(args, 'release-keys');
  const previous = existing ? decodeReleaseKeysFile(readRequired(existing, 'release key file')) : [];
  if (previous.length >= MAX_RELEASE_KEYS) throw new OtaError('BAD_ARGUMENT', `${existing} already holds ${MAX_RELEASE_KEYS} release keys, the most a device takes: start a new file without the retired keys`);
  fs.mkdirSync(out, { recursive: true, mode: 0o700 });
  const pair = generateReleaseKeyPair();
  const master = randomBytes(32);
  const files = {
    privateKey: path.join(out, KeygenFiles.PRIVATE),
    publicKey: path.join(out, KeygenFiles.PUBLIC),
    releaseKeys: path.join(out, KeygenFiles.RELEASE_KEYS),
    masterKey: flag(args, 'no-master-key') ? null : path.join(out, KeygenFiles.MASTER),
  };
  writeNew(files.privateKey, pair.privateKeyPem, 0o600);
  writeNew(files.publicKey, pair.publicKeyPem, 0o644);
  writeNew(files.releaseKeys, encodeReleaseKeysFile([...previous, createPublicKey(pair.publicKeyPem)]), 0o644);
  if (files.masterKey) writeNew(files.masterKey, `${master.toString('hex')}\n`, 0o600);
  const report: Record<string, unknown> = { files, keyId: previous.length, publicKeySec1: pair.publicKeySec1.toString('hex') };
  if (flag(args, 'print')) report.secrets = { privateKeyPem: pair.privateKeyPem, masterKey: files.masterKey ? master.toString('hex') : null };
  io.out(json(report));
  io.err(`release key ${previous.length} written; keep ${files.privateKey}${files.masterKey ? ` and ${files.masterKey}` : ''} offline (docs/SECURITY.md)`);
  return 0;
}

function parseExpiry(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) throw new OtaError('BAD_ARGUMENT', `--expires must be a date such as 2027-06-30 or 2027-06-30T18:00:00Z, got "${text}"`);
  return new Date(ms);
}

function optionalInteger(args: ParsedArgs, name: string): number | undefined {
  if (!args.options.has(name)) return undefined;
  const n = numberOption(args, name, NaN);
  if (!Number.isInteger(n)) throw new OtaError('BAD_ARGUMENT', `option --${name} must be an integer`);
  return n;
}

/** sign IMAGE --key FILE [--release N] [--key-id K] [--device ID ...] [--expires ISO] [--base SHA] [--out FILE]. */
export async function signCommand(args: ParsedArgs, io: Output): Promise<number> {
  const imagePath = args.positionals[0];
  const image = readRequired(imagePath, 'image file');
  const keyFile = stringOption(args, 'key');
  if (!keyFile) throw new OtaError('BAD_ARGUMENT', 'sign needs --key <release private key PEM file> (from keygen)');
  const manifest = manifestForImage(
    image,
    {
      release: optionalInteger(args, 'release'),
      keyId: optionalInteger(args, 'key-id'),
      devices: repeatedOption(args, 'device'),
      notAfter: parseExpiry(stringOption(args, 'expires')),
      baseSha256: stringOption(args, 'base'),
    },
    loadReleasePrivateKey(keyFile),
  );
  const out = stringOption(args, 'out') ?? `${imagePath}${MANIFEST_SUFFIX}`;
  fs.writeFileSync(out, manifest.bytes);
  io.out(json({ file: out, bytes: manifest.bytes.length, ...describeManifest(manifest) }));
  return 0;
}

/** derive-key --device-id ID [--master-key-file F | BLE_OTA_MASTER_KEY] [--json | --nvs-csv]: the device's session key, hex. */
export async function deriveKeyCommand(args: ParsedArgs, io: Output): Promise<number> {
  const idText = stringOption(args, 'device-id');
  if (!idText) throw new OtaError('BAD_ARGUMENT', 'derive-key needs --device-id aa:bb:cc:dd:ee:ff (the device\'s base MAC, `status` shows it as deviceId)');
  const deviceId = parseDeviceId(idText);
  const master = loadSecretKey({ file: stringOption(args, 'master-key-file'), envName: MASTER_KEY_ENV }, 'master key');
  if (!master) throw new OtaError('BAD_ARGUMENT', `derive-key needs the plant master key: --master-key-file <file> or ${MASTER_KEY_ENV}`);
  for (const w of master.warnings) io.err(`warning: ${w}`);
  const key = deriveDeviceKey(master.key, deviceId).toString('hex');
  if (flag(args, 'json')) io.out(json({ deviceId: formatDeviceId(deviceId), deviceKey: key }));
  else if (flag(args, 'nvs-csv')) io.out(nvsCsv(key));
  else io.out(key);
  return 0;
}

/**
 * The device's key as a CSV for ESP-IDF's nvs_partition_gen.py: namespace `ble_ota`, blob `device_key`
 * (where the firmware reads the session key; firmware/README.md).
 */
export function nvsCsv(deviceKeyHex: string): string {
  return ['key,type,encoding,value', 'ble_ota,namespace,,', `device_key,data,hex2bin,${deviceKeyHex}`].join('\n');
}

/**
 * The manifest part of `inspect`: the manifest (given, or found next to the image) decoded, checked
 * against the image, and its signature verified when --pubkey names the release public key(s).
 * Returns the report entry and whether it is good.
 */
export function inspectManifest(args: ParsedArgs, imagePath: string | undefined, image: Buffer | null): { report: Record<string, unknown>; ok: boolean } | null {
  const given = stringOption(args, 'manifest');
  const file = given ?? (imagePath ? `${imagePath}${MANIFEST_SUFFIX}` : undefined);
  if (!file) return null;
  const bytes = given ? readRequired(given, 'manifest file') : readOptional(file);
  if (!bytes) return null;
  return manifestReport(file, bytes, image, stringOption(args, 'pubkey'));
}

export function isManifestFile(content: Buffer): boolean {
  return content.subarray(0, 4).equals(MANIFEST_MAGIC);
}

export function manifestReport(file: string, bytes: Buffer, image: Buffer | null, pubkeyFile: string | undefined): { report: Record<string, unknown>; ok: boolean } {
  let manifest: Manifest;
  try {
    manifest = decodeManifest(bytes);
  } catch (err) {
    const e = err as OtaError;
    return { report: { file, valid: false, error: { code: e.code, message: e.message } }, ok: false };
  }
  const report: Record<string, unknown> = { file, ...describeManifest(manifest), signature: 'not checked (give --pubkey)' };
  const problems: OtaError[] = [];
  if (pubkeyFile) {
    try {
      verifyManifest(manifest, loadReleasePublicKeys(pubkeyFile));
      report.signature = 'verified';
    } catch (err) {
      report.signature = 'INVALID';
      problems.push(err as OtaError);
    }
  }
  if (image) {
    const mismatch = checkBeforeBegin({ device: { caps: 0 }, image, manifest, hasKey: false, now: Date.now() });
    if (mismatch) problems.push(mismatch);
  }
  report.valid = problems.length === 0;
  if (problems.length) report.error = { code: problems[0].code, message: problems[0].message };
  return { report, ok: problems.length === 0 };
}
