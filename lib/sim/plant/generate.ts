/**
 * A plant layout made up for tests and the demo: devices along a line of gateways, each device heard
 * best by the gateway it is nearest and more weakly by its neighbours, so that neighbouring gateways see
 * overlapping sets. Optional special devices: ones whose first-boot diagnostics fail, ones that vanish.
 */
import type { ChipName } from '../types';

export interface GeneratePlantLayoutOptions {
  gateways: string[];
  /** Devices in total (named `${namePrefix}NN`). */
  devices: number;
  namePrefix?: string;
  chip?: ChipName;
  version?: string;
  /** 64 hex digits; or release keys (hex SEC1 points); or development (at least one of them). */
  masterKey?: string;
  releaseKeys?: string[];
  development?: boolean;
  /** Names of devices whose new image fails its first-boot diagnostics. */
  failingDiagnostics?: string[];
  /** Devices that leave the air this long after the plant started (ms), by name. */
  vanish?: Record<string, number>;
  link?: string;
}

/**
 * The layout JSON (give it to PlantSim or write it to a file for `plant-sim --layout`). Device i sits at
 * position i along the line; gateway g covers the devices near it at -45..-65 dBm and those of the
 * neighbouring gateways' stretches at -75..-85 dBm.
 */
export function generatePlantLayout(o: GeneratePlantLayoutOptions): Record<string, unknown> {
  const prefix = o.namePrefix ?? 'plant-';
  const failing = new Set(o.failingDiagnostics ?? []);
  const per = o.devices / o.gateways.length;
  const devices = [];
  for (let i = 0; i < o.devices; i++) {
    const name = `${prefix}${String(i + 1).padStart(2, '0')}`;
    const home = Math.min(o.gateways.length - 1, Math.floor(i / per));
    const rssi: Record<string, number> = {};
    o.gateways.forEach((g, k) => {
      if (k === home) rssi[g] = -45 - ((i * 7) % 21);
      else if (Math.abs(k - home) === 1) rssi[g] = -75 - ((i * 3) % 11);
    });
    const device: Record<string, unknown> = { name, chip: o.chip ?? 'esp32', version: o.version ?? '1.0.0', rssi };
    if (failing.has(name)) device.diagnostics = 'fail';
    if (o.vanish?.[name] !== undefined) device.vanishAtMs = o.vanish[name];
    devices.push(device);
  }
  const keys: Record<string, unknown> = {};
  if (o.masterKey) keys.masterKey = o.masterKey;
  if (o.releaseKeys) keys.releaseKeys = o.releaseKeys;
  if (o.development) keys.development = true;
  return { gateways: o.gateways, devices, keys, link: o.link ?? 'reference', clock: 'real' };
}
