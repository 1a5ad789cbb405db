/**
 * Turns the adapter's "simulated fleet" settings into SimDeviceConfig[]: either a generated fleet
 * (name prefix + size, one chip/version for all) or an explicit device list, written as JSON or as
 * "name:chip:version[:diagnostics[:confirm[:protocol]]]" lines so a test station can mix chips.
 * Security as a factory would provision it (docs/SECURITY.md): each device gets its own session key derived
 * from the master key (or the shared fleet key), the release public keys (BEGIN then needs a signed
 * manifest); without any key a device is unprovisioned and refuses every update, unless the fleet is a
 * development build (`allowUnauthenticated`, the documented opt-out).
 */
import { createPublicKey } from 'crypto';
import { OtaError } from '../../lib/errors';
import type { ChipName, SimDeviceConfig } from '../../lib/sim/types';
import { addressFromName } from '../../lib/sim/device/settings';
import { MAX_RELEASE_KEYS, deriveDeviceKey, publicKeyFromSec1, publicKeyToSec1 } from '../../lib/security/keys';

export const CHIP_NAMES: readonly ChipName[] = ['esp32', 'esp32s2', 'esp32c3', 'esp32s3', 'esp32c2', 'esp32c6', 'esp32h2', 'esp32p4'];

export interface FleetDefaults {
  size: number;
  namePrefix: string;
  chip: string;
  version: string;
  diagnostics: string;
  confirmPolicy: string;
  fleetKey?: Buffer;
  /** Each simulated device is provisioned with its own key derived from this (as a factory would). */
  masterKey?: Buffer;
  /** Release public keys (65-byte SEC1 points, key_id = index) every device holds: BEGIN needs a signed manifest. */
  releaseKeys?: Buffer[];
  /** A development build (allowUnauthenticated): devices without keys accept updates from anyone. */
  development?: boolean;
}

function badFleet(message: string): OtaError {
  return new OtaError('BAD_FLEET_CONFIG', message);
}

function chipOf(value: string, where: string): ChipName {
  const chip = value.trim().toLowerCase();
  if (!(CHIP_NAMES as readonly string[]).includes(chip)) {
    throw badFleet(`${where}: unknown chip "${value}" (one of ${CHIP_NAMES.join(', ')})`);
  }
  return chip as ChipName;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string, where: string): T {
  const v = value.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(v)) throw badFleet(`${where}: ${what} must be ${allowed.join(' or ')}, got "${value}"`);
  return v as T;
}

function deviceFrom(fields: Partial<Record<keyof SimDeviceConfig, unknown>>, defaults: FleetDefaults, where: string): SimDeviceConfig {
  const name = String(fields.name ?? '').trim();
  if (!name) throw badFleet(`${where}: a device needs a name`);
  if (name.length > 26) throw badFleet(`${where}: name "${name}" is longer than the 26 bytes an advertisement holds`);
  const device: SimDeviceConfig = {
    name,
    chip: chipOf(String(fields.chip ?? defaults.chip), where),
    version: String(fields.version ?? defaults.version).trim() || defaults.version,
    diagnostics: oneOf(String(fields.diagnostics ?? defaults.diagnostics), ['pass', 'fail'] as const, 'diagnostics', where),
    confirmPolicy: oneOf(String(fields.confirmPolicy ?? defaults.confirmPolicy), ['auto', 'host'] as const, 'confirm policy', where),
    protocol: oneOf(String(fields.protocol ?? 'v2'), ['v2', 'legacy'] as const, 'protocol', where),
  };
  if (typeof fields.address === 'string' && fields.address) device.address = fields.address;
  if (typeof fields.secureVersion === 'number') device.secureVersion = fields.secureVersion;
  // The device id of a simulated device is its BLE address (PROTOCOL.md Status device_id).
  if (defaults.masterKey) device.deviceKey = deriveDeviceKey(defaults.masterKey, device.address ?? addressFromName(device.name));
  else if (defaults.fleetKey) device.fleetKey = defaults.fleetKey;
  if (defaults.releaseKeys?.length) device.releaseKeys = defaults.releaseKeys.map((k) => Buffer.from(k));
  if (defaults.development) device.allowUnauthenticated = true;
  return device;
}

function parseLines(text: string, defaults: FleetDefaults): SimDeviceConfig[] {
  const devices: SimDeviceConfig[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [name, chip, version, diagnostics, confirmPolicy, protocol] = line.split(':').map((f) => f.trim());
    const fields = { name, chip: chip || undefined, version: version || undefined, diagnostics: diagnostics || undefined, confirmPolicy: confirmPolicy || undefined, protocol: protocol || undefined };
    devices.push(deviceFrom(fields, defaults, `device line ${index + 1}`));
  });
  return devices;
}

function parseJson(text: string, defaults: FleetDefaults): SimDeviceConfig[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (err) {
    throw badFleet(`device list is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(list)) throw badFleet('device list JSON must be an array of {name, chip, version, ...}');
  return list.map((entry, i) => {
    if (typeof entry === 'string') return deviceFrom({ name: entry }, defaults, `device ${i + 1}`);
    if (!entry || typeof entry !== 'object') throw badFleet(`device ${i + 1} must be an object or a name`);
    return deviceFrom(entry as Record<string, unknown>, defaults, `device ${i + 1}`);
  });
}

/** Builds the simulated fleet; throws BAD_FLEET_CONFIG naming the offending entry. */
export function buildFleet(deviceList: string, defaults: FleetDefaults): SimDeviceConfig[] {
  const text = (deviceList || '').trim();
  let devices: SimDeviceConfig[];
  if (text) {
    devices = text.startsWith('[') ? parseJson(text, defaults) : parseLines(text, defaults);
  } else {
    const size = Math.floor(Number(defaults.size));
    if (!Number.isFinite(size) || size < 1 || size > 100) throw badFleet(`fleet size must be 1..100, got "${defaults.size}"`);
    devices = [];
    for (let i = 1; i <= size; i++) {
      devices.push(deviceFrom({ name: `${defaults.namePrefix}${String(i).padStart(2, '0')}` }, defaults, `device ${i}`));
    }
  }
  if (devices.length === 0) throw badFleet('the simulated fleet has no devices');
  const seen = new Set<string>();
  for (const d of devices) {
    if (seen.has(d.name)) throw badFleet(`device name "${d.name}" appears twice`);
    seen.add(d.name);
  }
  return devices;
}

/** A fleet key is 32 bytes written as 64 hex digits; empty means "no key". */
export function parseFleetKey(hex: string | undefined): Buffer | undefined {
  const text = (hex ?? '').trim();
  if (!text) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new OtaError('BAD_FLEET_KEY', 'the fleet key must be 64 hex digits (32 bytes)');
  return Buffer.from(text, 'hex');
}

/** The plant master key: 32 bytes written as 64 hex digits; empty means "none". */
export function parseMasterKey(hex: string | undefined): Buffer | undefined {
  const text = (hex ?? '').trim();
  if (!text) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new OtaError('BAD_KEY', 'the master key must be 64 hex digits (32 bytes)');
  return Buffer.from(text, 'hex');
}

/**
 * Release public keys for the simulated devices: PEM public keys (SPKI, as `esp32-ble-ota keygen` writes
 * release-key.pub.pem) and/or uncompressed SEC1 points in hex (130 digits), at most 4, key_id in order.
 * They are public: they may sit in the flow. Empty means none.
 */
export function parseReleaseKeys(text: string | undefined): Buffer[] | undefined {
  const value = (text ?? '').trim();
  if (!value) return undefined;
  const keys: Buffer[] = [];
  const pemBlocks = value.match(/-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g) ?? [];
  for (const pem of pemBlocks) {
    if (!/-----BEGIN PUBLIC KEY-----/.test(pem)) throw new OtaError('BAD_KEY', 'release keys: give the public key (BEGIN PUBLIC KEY), never the private one');
    try {
      keys.push(publicKeyToSec1(createPublicKey(pem)));
    } catch (err) {
      throw new OtaError('BAD_KEY', `release keys: a PEM block is not a P-256 public key: ${(err as Error).message}`);
    }
  }
  const rest = value.replace(/-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g, ' ');
  for (const word of rest.split(/[\s,;]+/).filter(Boolean)) {
    // The value is not echoed: a secret pasted into the wrong field must not reach the log.
    if (!/^04[0-9a-fA-F]{128}$/.test(word)) throw new OtaError('BAD_KEY', `release keys: a value of ${word.length} characters is neither a PEM public key nor a 65-byte SEC1 point in hex (130 digits starting 04)`);
    const point = Buffer.from(word, 'hex');
    publicKeyFromSec1(point);
    keys.push(point);
  }
  if (keys.length > MAX_RELEASE_KEYS) throw new OtaError('BAD_KEY', `release keys: at most ${MAX_RELEASE_KEYS}, got ${keys.length}`);
  return keys.length ? keys : undefined;
}

/** How the simulated fleet is secured, for the adapter's start-up log line. */
export function fleetSecurity(defaults: Pick<FleetDefaults, 'masterKey' | 'fleetKey' | 'releaseKeys' | 'development'>): 'keyed' | 'development' | 'unprovisioned' {
  if (defaults.masterKey || defaults.fleetKey || defaults.releaseKeys?.length) return 'keyed';
  return defaults.development ? 'development' : 'unprovisioned';
}
