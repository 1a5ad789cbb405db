/**
 * The layout of a simulated plant (a JSON file): the gateways, the devices with the RSSI each gateway
 * hears them at (absent: out of that gateway's range), the keys the devices were provisioned with, the
 * link scenario. parsePlantLayout checks everything and names the first thing wrong (BAD_PLANT_LAYOUT).
 */
import { OtaError } from '../../errors';
import { publicKeyFromSec1 } from '../../security/keys';
import { CHIP_NAMES } from '../../image/chips';
import { parseFaultSpec, type Fault } from '../faults';
import { LINK_SCENARIOS } from '../link-model';
import type { ChipName } from '../types';

export interface PlantDeviceLayout {
  name: string;
  address?: string;
  chip: ChipName;
  version: string;
  diagnostics: 'pass' | 'fail';
  confirmPolicy: 'auto' | 'host';
  /** RSSI (dBm) per gateway id; a gateway not named does not hear the device. */
  rssi: Record<string, number>;
  /** The device leaves the air for good this long after the plant started (ms). */
  vanishAtMs?: number;
  /** Faults injected when the plant starts (docs/FAULTS.md spec strings, e.g. "powerCut@flashOp=120"). */
  faults: Fault[];
}

export interface PlantLayout {
  gateways: string[];
  devices: PlantDeviceLayout[];
  keys: {
    /** Plant master key: each device holds the key derived for its device_id. */
    masterKey?: Buffer;
    /** Release public keys (65-byte SEC1 points, key_id = index): BEGIN needs a signed manifest. */
    releaseKeys?: Buffer[];
    /** A development build: devices without keys take updates from anyone. */
    development: boolean;
  };
  /** Link scenario name (lib/sim/link-model LINK_SCENARIOS). */
  link: string;
  /** Only real time: the gateways are other processes on the wall clock. */
  clock: 'real';
}

const GATEWAY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ADDRESS = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
const TOP_KEYS = new Set(['gateways', 'devices', 'keys', 'link', 'clock']);
const DEVICE_KEYS = new Set(['name', 'address', 'chip', 'version', 'diagnostics', 'confirmPolicy', 'rssi', 'vanishAtMs', 'faults']);
const KEY_KEYS = new Set(['masterKey', 'releaseKeys', 'development']);

function bad(message: string): OtaError {
  return new OtaError('BAD_PLANT_LAYOUT', `plant layout: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw bad(`${where}: unknown field "${k}" (known: ${[...allowed].join(', ')})`);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T, where: string): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) throw bad(`${where} must be ${allowed.join(' or ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

function gatewayIds(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw bad('"gateways" must be a non-empty list of gateway ids (or {"id": ...} objects)');
  const ids: string[] = [];
  value.forEach((g, i) => {
    const id = isObject(g) ? g.id : g;
    if (typeof id !== 'string' || !GATEWAY_ID.test(id)) throw bad(`gateways[${i}]: a gateway id is 1..64 letters, digits, "_", "." or "-", got ${JSON.stringify(id)}`);
    if (ids.includes(id)) throw bad(`gateways[${i}]: gateway "${id}" is listed twice`);
    ids.push(id);
  });
  return ids;
}

function parseKeys(value: unknown): PlantLayout['keys'] {
  if (value === undefined) return { development: false };
  if (!isObject(value)) throw bad('"keys" must be an object {masterKey, releaseKeys, development}');
  onlyKeys(value, KEY_KEYS, 'keys');
  const keys: PlantLayout['keys'] = { development: value.development === true };
  if (value.development !== undefined && typeof value.development !== 'boolean') throw bad('keys.development must be true or false');
  if (value.masterKey !== undefined) {
    if (typeof value.masterKey !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value.masterKey)) throw bad('keys.masterKey must be 64 hex digits (32 bytes)');
    keys.masterKey = Buffer.from(value.masterKey, 'hex');
  }
  if (value.releaseKeys !== undefined) {
    if (!Array.isArray(value.releaseKeys) || value.releaseKeys.length > 4) throw bad('keys.releaseKeys must be a list of at most 4 release public keys (130 hex digits, 04 ‖ X ‖ Y)');
    keys.releaseKeys = value.releaseKeys.map((k, i) => {
      if (typeof k !== 'string' || !/^04[0-9a-fA-F]{128}$/.test(k)) throw bad(`keys.releaseKeys[${i}] is not a 65-byte SEC1 point in hex (130 digits starting 04)`);
      const point = Buffer.from(k, 'hex');
      try {
        publicKeyFromSec1(point);
      } catch {
        throw bad(`keys.releaseKeys[${i}] is not a point on P-256`);
      }
      return point;
    });
  }
  return keys;
}

function parseDevice(value: unknown, i: number, gateways: string[]): PlantDeviceLayout {
  const where = `devices[${i}]`;
  if (!isObject(value)) throw bad(`${where} must be an object {name, chip, version, rssi, ...}`);
  onlyKeys(value, DEVICE_KEYS, where);
  const name = value.name;
  if (typeof name !== 'string' || name.trim() === '' || Buffer.byteLength(name) > 26) throw bad(`${where}: "name" must be 1..26 bytes (what an advertisement holds)`);
  if (typeof value.chip !== 'string' || !(CHIP_NAMES as readonly string[]).includes(value.chip)) throw bad(`${where} "${name}": chip must be one of ${CHIP_NAMES.join(', ')}, got ${JSON.stringify(value.chip)}`);
  if (typeof value.version !== 'string' || value.version.trim() === '' || value.version.length > 31) throw bad(`${where} "${name}": version must be a string of 1..31 characters`);
  if (value.address !== undefined && (typeof value.address !== 'string' || !ADDRESS.test(value.address))) throw bad(`${where} "${name}": address must be six hex bytes like aa:bb:cc:dd:ee:ff`);
  if (!isObject(value.rssi)) throw bad(`${where} "${name}": "rssi" must be an object {gatewayId: dBm} (a gateway not named does not hear the device)`);
  const rssi: Record<string, number> = {};
  for (const [gw, dbm] of Object.entries(value.rssi)) {
    if (!gateways.includes(gw)) throw bad(`${where} "${name}": rssi names gateway "${gw}", which is not in "gateways" (${gateways.join(', ')})`);
    if (typeof dbm !== 'number' || !Number.isInteger(dbm) || dbm < -127 || dbm > 20) throw bad(`${where} "${name}": rssi of "${gw}" must be an integer dBm in -127..20, got ${JSON.stringify(dbm)}`);
    rssi[gw] = dbm;
  }
  if (value.vanishAtMs !== undefined && !(typeof value.vanishAtMs === 'number' && value.vanishAtMs >= 0 && Number.isFinite(value.vanishAtMs))) throw bad(`${where} "${name}": vanishAtMs must be a number of ms >= 0`);
  if (value.faults !== undefined && !Array.isArray(value.faults)) throw bad(`${where} "${name}": faults must be a list of fault specs like "powerCut@flashOp=120"`);
  const faults = ((value.faults as unknown[] | undefined) ?? []).map((spec, k) => {
    if (typeof spec !== 'string') throw bad(`${where} "${name}": faults[${k}] must be a fault spec string`);
    try {
      return parseFaultSpec(spec);
    } catch (err) {
      throw bad(`${where} "${name}": faults[${k}]: ${(err as Error).message}`);
    }
  });
  const device: PlantDeviceLayout = {
    name,
    chip: value.chip as ChipName,
    version: value.version,
    diagnostics: oneOf(value.diagnostics, ['pass', 'fail'] as const, 'pass', `${where} "${name}": diagnostics`),
    confirmPolicy: oneOf(value.confirmPolicy, ['auto', 'host'] as const, 'auto', `${where} "${name}": confirmPolicy`),
    rssi,
    faults,
  };
  if (typeof value.address === 'string') device.address = value.address.toLowerCase();
  if (typeof value.vanishAtMs === 'number') device.vanishAtMs = value.vanishAtMs;
  return device;
}

/** A layout from its JSON text or parsed value; throws BAD_PLANT_LAYOUT naming the first problem. */
export function parsePlantLayout(input: string | unknown): PlantLayout {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw bad(`not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!isObject(value)) throw bad('the layout must be a JSON object {gateways, devices, keys, link, clock}');
  onlyKeys(value, TOP_KEYS, 'layout');
  const gateways = gatewayIds(value.gateways);
  if (!Array.isArray(value.devices) || value.devices.length === 0) throw bad('"devices" must be a non-empty list');
  const devices = value.devices.map((d, i) => parseDevice(d, i, gateways));
  const names = new Set<string>();
  const addresses = new Set<string>();
  for (const d of devices) {
    if (names.has(d.name)) throw bad(`device name "${d.name}" appears twice`);
    names.add(d.name);
    if (d.address) {
      if (addresses.has(d.address)) throw bad(`device address ${d.address} appears twice`);
      addresses.add(d.address);
    }
  }
  const link = value.link ?? 'reference';
  if (typeof link !== 'string' || !(link in LINK_SCENARIOS)) throw bad(`link must be one of ${Object.keys(LINK_SCENARIOS).join(', ')}, got ${JSON.stringify(link)}`);
  if (value.clock !== undefined && value.clock !== 'real') throw bad(`clock must be "real" (the gateways run on the wall clock), got ${JSON.stringify(value.clock)}`);
  const keys = parseKeys(value.keys);
  if (!keys.masterKey && !keys.releaseKeys && !keys.development) throw bad('keys: give a masterKey and/or releaseKeys, or "development": true (devices without keys refuse every update)');
  const layout: PlantLayout = { gateways, devices, keys, link, clock: 'real' };
  checked.add(layout);
  return layout;
}

/** Layouts parsePlantLayout returned (a hand-made object is checked again). */
const checked = new WeakSet<object>();

export function isPlantLayout(value: object): value is PlantLayout {
  return checked.has(value);
}
