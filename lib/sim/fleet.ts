/**
 * A simulated fleet: virtual ESP32 devices (the TypeScript model or the firmware twin) on a virtual
 * radio, seen through a REAL noble: noble's own hci-socket layer (hci.js, gap.js, gatt.js ...) on the
 * radio's virtual HCI controller, wrapped as a BleCentral. Used by the CLI's --sim, the Node-RED
 * adapter's simulated mode, tests and the benchmark.
 */
import type { AdapterState } from '../ble/central';
import { createNobleCentral, type NobleBleCentral } from '../ble/noble-central';
import type { Clock } from '../clock';
import { OtaError } from '../errors';
import { deriveDeviceKey } from '../security/keys';
import { addressFromName, createSimDevice } from './device';
import { deviceIdOf } from './device/device-id';
import type { Fault, FaultHandle } from './faults';
import { injectFleetFault } from './fleet-faults';
import { resolveLinkProfile, type LinkProfile, type LinkScenarioName } from './link-model';
import { createSimRadio, type SimRadio } from './radio';
import type { AclBufferConfig } from './hci/central-controller';
import { createHciNoble } from './hci/noble-hci-loader';
import type { SimDeviceConfig, VirtualPeripheral } from './types';
import { createClock, isVirtualClock, type ClockMode } from './virtual-clock';

/**
 * The firmware twin (child_process, readline) is loaded only by fleets that use it: a fleet of model
 * devices, such as the benchmark's, then does not carry that code in its memory.
 */
function loadTwinDevice(): typeof import('./twin-device') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./twin-device') as typeof import('./twin-device');
}

export interface SimFleetOptions {
  devices: SimDeviceConfig[];
  /** Scenario name (LINK_SCENARIOS) or a custom profile; default "reference". */
  link?: LinkScenarioName | string | LinkProfile;
  /** 'virtual' (default: as fast as the CPU allows), 'real' (demo), or a clock to share. */
  clock?: ClockMode | Clock;
  adapterState?: AdapterState;
  /** Connections the virtual controller accepts at once (default 10). */
  maxConnections?: number;
  /** LE ACL buffers of the virtual controller (default 8 x 251). */
  aclBuffers?: AclBufferConfig;
  /**
   * Plant master key (32 bytes): every device without deviceKey/fleetKey gets
   * HKDF-SHA256(masterKey, "BLEOTA2-DEVICE-KEY", device_id, 32) as its deviceKey (PROTOCOL.md §E).
   */
  masterKey?: Buffer;
  /** Release public keys for every device that has none of its own (65-byte SEC1 points, index = key_id). */
  releaseKeys?: Buffer[];
  /** The image every TS-model device runs at power-on (default: a synthetic one per chip and version); the bench's delta base. */
  factoryImage?: Buffer;
}

/** The per-device session key a plant master key gives the device with this device_id (lib/security, one derivation). */
export { deriveDeviceKey };

/** A device's config with the fleet-level keys applied (its own keys win). */
function withFleetKeys(config: SimDeviceConfig, options: SimFleetOptions): SimDeviceConfig {
  const out: SimDeviceConfig = { ...config };
  if (options.masterKey && !config.deviceKey && !config.fleetKey) {
    out.deviceKey = deriveDeviceKey(options.masterKey, deviceIdOf((config.address ?? addressFromName(config.name)).toLowerCase()));
  }
  if (options.releaseKeys && !config.releaseKeys) out.releaseKeys = options.releaseKeys;
  return out;
}

export interface SimFleet {
  central: NobleBleCentral;
  radio: SimRadio;
  /** By device name. */
  devices: Map<string, VirtualPeripheral>;
  clock: Clock;
  /**
   * Another central (a second adapter, e.g. a phone) in range of the same devices, on a Noble of its
   * own; its links share the radio's air time and reach the devices as a connectionId of their own.
   * Ready (adapter state known) when the promise resolves; closed by close().
   */
  addCentral(): Promise<NobleBleCentral>;
  /**
   * Injects a fault (docs/FAULTS.md) into the named device or its link; throws OtaError FAULT_INVALID
   * for a malformed fault or one the device's implementation cannot carry out (slowFlash is a device
   * setting, applyFaultToConfig).
   */
  injectFault(deviceName: string, fault: Fault): FaultHandle;
  close(): Promise<void>;
}

export async function createSimFleet(options: SimFleetOptions): Promise<SimFleet> {
  if (!options || !Array.isArray(options.devices)) {
    throw new OtaError('BAD_PARAMETER', 'a simulated fleet needs a list of devices (SimDeviceConfig[])');
  }
  const names = new Set<string>();
  for (const d of options.devices) {
    if (!d || typeof d.name !== 'string' || d.name === '') throw new OtaError('BAD_PARAMETER', 'every simulated device needs a name');
    if (names.has(d.name)) throw new OtaError('SIM_DUPLICATE_NAME', `two simulated devices are named "${d.name}"; names must be unique`);
    names.add(d.name);
  }
  if (options.masterKey !== undefined && (!Buffer.isBuffer(options.masterKey) || options.masterKey.length !== 32)) {
    throw new OtaError('BAD_FLEET_KEY', 'the master key of a simulated fleet must be 32 bytes');
  }
  const link = resolveLinkProfile(options.link ?? 'reference');
  const ownClock = options.clock === undefined || typeof options.clock === 'string';
  const clock = typeof options.clock === 'object' ? options.clock : createClock(options.clock ?? 'virtual');
  const radio = createSimRadio({ clock, link, adapterState: options.adapterState, maxConnections: options.maxConnections, aclBuffers: options.aclBuffers });
  const devices = new Map<string, VirtualPeripheral>();
  try {
    for (const given of options.devices) {
      const config = withFleetKeys(given, options);
      const device = config.implementation === 'twin' ? await loadTwinDevice().createTwinDevice(config, clock) : createSimDevice(config, clock, { factoryImage: options.factoryImage });
      devices.set(config.name, device);
      radio.addDevice(device);
    }
  } catch (err) {
    await Promise.all([...devices.values()].map((d) => d.shutdown().catch(() => undefined)));
    radio.close();
    throw err;
  }
  const central = createNobleCentral(createHciNoble(radio.controller), { clock, adapterName: 'simulated adapter' });
  const extraCentrals: NobleBleCentral[] = [];
  let closed = false;
  return {
    central,
    radio,
    devices,
    clock,
    async addCentral() {
      if (closed) throw new OtaError('BAD_PARAMETER', 'the simulated fleet is closed; no central can be added');
      const controller = radio.addCentral();
      const extra = createNobleCentral(createHciNoble(controller), { clock, adapterName: `simulated adapter ${controller.index + 1}` });
      extraCentrals.push(extra);
      await extra.waitReady(2000);
      return extra;
    },
    injectFault(deviceName, fault) {
      return injectFleetFault(radio, clock, devices, deviceName, fault);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const extra of extraCentrals) await extra.close();
      await central.close();
      await Promise.all([...devices.values()].map((d) => d.shutdown().catch(() => undefined)));
      radio.close();
      // Timers left by the devices (resume timeouts, reboots) must not keep running after close.
      if (ownClock && isVirtualClock(clock)) clock.stop();
    },
  };
}
