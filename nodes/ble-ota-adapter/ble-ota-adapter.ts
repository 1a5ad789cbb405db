/**
 * ble-ota-adapter (config node): which BLE adapter the OTA nodes share (an HCI device, a simulated
 * fleet or a gateway of the simulated plant), its concurrency and scan parameters, and the session keys: the plant master key (per-device
 * keys, recommended) or the fleet key (credentials: never in the flow JSON, never logged). Owns the
 * adapter's central and scheduler through an AdapterConnection.
 */
import type { NodeAPI, NodeDef } from '../shared/node-red';
import type { AdapterNode } from './adapter-node';
import { AdapterConnection, type AdapterSettings } from './adapter-connection';
import { buildFleet, fleetSecurity, parseFleetKey, parseMasterKey, parseReleaseKeys } from './fleet-config';
import { openHciAdapter, openPlantAdapter, openSimAdapter, parsePlantAddress, type AdapterBackend } from '../shared/library';
import { OtaError } from '../../lib/errors';
import { translator } from '../shared/i18n';

/**
 * The adapter mode is never guessed towards the simulator: an adapter saved without a mode (older
 * flows, hand-written JSON) is the real HCI adapter, an unknown mode is a configuration error.
 */
function adapterMode(value: unknown): 'hci' | 'sim' | 'plant' | null {
  if (value === undefined || value === null || value === '' || value === 'hci') return 'hci';
  return value === 'sim' || value === 'plant' ? value : null;
}

const GATEWAY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function positiveNumber(value: unknown, fallback: number, min: number, max: number): number {
  const n = Number(value);
  if (value === '' || value === undefined || !Number.isFinite(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}

export = function (RED: NodeAPI) {
  function BleOtaAdapterNode(this: AdapterNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const t = translator(RED, 'ble-ota-adapter');
    const mode = adapterMode(def.mode) ?? 'hci';
    const hciDevice = Math.floor(positiveNumber(def.hciDevice, 0, 0, 63));
    let fleetKey: Buffer | undefined;
    let masterKey: Buffer | undefined;
    this.configError = null;
    if (adapterMode(def.mode) === null) {
      this.configError = new OtaError('BAD_OPTION', `adapter mode must be "hci" (a real adapter), "sim" (a simulated fleet) or "plant" (a gateway of the simulated plant), got "${String(def.mode)}"`);
    }
    try {
      fleetKey = parseFleetKey(this.credentials?.fleetKey);
      masterKey = parseMasterKey(this.credentials?.masterKey);
      if (fleetKey && masterKey) {
        throw new OtaError('BAD_OPTION', 'the adapter has both a master key and a fleet key: keep the master key (per-device keys) or the fleet key, not both');
      }
    } catch (err) {
      this.configError = this.configError ?? (err as Error);
    }
    const settings: AdapterSettings = {
      label: mode === 'hci' ? `hci${hciDevice}` : mode === 'plant' ? `simulated plant gateway "${String(def.simGateway ?? '')}"` : `simulated fleet${def.name ? ` "${def.name}"` : ''}`,
      maxConnections: Math.floor(positiveNumber(def.maxConnections, 3, 1, 20)),
      scanMs: positiveNumber(def.scanSeconds, 5, 0.5, 600) * 1000,
      findTimeoutMs: positiveNumber(def.findSeconds, 10, 1, 600) * 1000,
      readyTimeoutMs: 10000,
      idleCloseMs: 2000,
      fleetKey,
      masterKey,
      simulated: mode !== 'hci',
      keyless: mode === 'hci' && !fleetKey && !masterKey,
    };
    let open: () => Promise<AdapterBackend>;
    if (mode === 'hci') {
      open = () => openHciAdapter(hciDevice, settings.maxConnections);
      // Secure by default: provisioned devices refuse a gateway without their key; say so at start, not per failure.
      if (!fleetKey && !masterKey && !this.configError) this.warn(t('log.noKey', { label: settings.label }));
    } else if (mode === 'plant') {
      const plant = String(def.simPlant ?? '');
      const gateway = String(def.simGateway ?? '').trim();
      try {
        parsePlantAddress(plant);
        if (!GATEWAY_ID.test(gateway)) throw new OtaError('BAD_OPTION', `the plant gateway id must be 1..64 letters, digits, "_", "." or "-", got "${gateway}"`);
      } catch (err) {
        this.configError = this.configError ?? (err as Error);
      }
      open = () => openPlantAdapter({ plant, gateway, maxConnections: settings.maxConnections });
    } else {
      let devices: ReturnType<typeof buildFleet> = [];
      let security: ReturnType<typeof fleetSecurity> = 'unprovisioned';
      try {
        const releaseKeys = parseReleaseKeys(typeof def.simReleaseKeys === 'string' ? def.simReleaseKeys : '');
        const development = def.simDevelopment === true || def.simDevelopment === 'true';
        security = fleetSecurity({ fleetKey, masterKey, releaseKeys, development });
        devices = buildFleet(String(def.simDevices ?? ''), {
          size: positiveNumber(def.simSize, 5, 1, 100),
          namePrefix: String(def.simNamePrefix ?? 'esp32-line-'),
          chip: String(def.simChip || 'esp32'),
          version: String(def.simVersion || '1.0.0'),
          diagnostics: String(def.simDiagnostics || 'pass'),
          confirmPolicy: String(def.simConfirmPolicy || 'auto'),
          fleetKey,
          masterKey,
          releaseKeys,
          development,
        });
      } catch (err) {
        this.configError = this.configError ?? (err as Error);
      }
      if (!this.configError && security !== 'keyed') this.warn(t(security === 'development' ? 'log.simDevelopment' : 'log.simUnprovisioned', { label: settings.label }));
      const link = String(def.simLink || 'reference');
      const clock = def.simClock === 'virtual' ? 'virtual' : 'real';
      open = () => openSimAdapter({ devices, link, clock, maxConnections: settings.maxConnections });
    }
    if (settings.simulated) this.warn(t('log.simulated', { label: settings.label }));
    const configError = this.configError;
    if (configError) {
      this.error(t('errors.config', { message: configError.message }));
      open = () => Promise.reject(configError);
    }
    this.connection = new AdapterConnection(settings, open, (text) => this.log(settings.simulated ? `SIM ${text}` : text));

    this.on('close', (_removed, done) => {
      this.connection.close().then(
        () => done(),
        (err) => {
          this.warn(t('errors.close', { message: (err as Error).message }));
          done();
        },
      );
    });
  }

  RED.nodes.registerType('ble-ota-adapter', BleOtaAdapterNode, {
    credentials: { fleetKey: { type: 'password' }, masterKey: { type: 'password' } },
  });
};
