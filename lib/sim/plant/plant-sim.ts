/**
 * The plant simulator: the simulated devices of a plant (the TypeScript model) on one SimRadio, the air
 * every gateway shares. Each gateway process reaches it over TCP (hci-server.ts): while connected it is a
 * central of its own on the radio, hearing the devices its layout entry names at their RSSI, its links on
 * a link layer of its own (its own controller schedules its connection events). A control server
 * (control-server.ts) lets tests and the demo list devices, inject faults and change ranges.
 */
import { realClock, type Clock } from '../../clock';
import { OtaError } from '../../errors';
import { deriveDeviceKey } from '../../security/keys';
import { addressFromName, createSimDevice, type SimDevice } from '../device';
import { deviceIdOf } from '../device/device-id';
import type { Fault, FaultHandle } from '../faults';
import { injectFleetFault } from '../fleet-faults';
import { createSimRadio, type SimRadio } from '../radio';
import type { SimDeviceConfig, VirtualPeripheral } from '../types';
import { isPlantLayout, parsePlantLayout, type PlantLayout } from './layout';
import { PlantHciServer } from './hci-server';
import { PlantControlServer } from './control-server';
import type { CentralController } from '../hci/central-controller';
import { SLOT_LABELS } from '../device/ota-data';
import { OTA_STATE_NAMES, type OtaState } from '../../protocol/constants';

/** What the control server and tests see of a device. */
export interface PlantDeviceInfo {
  name: string;
  address: string;
  chip: string;
  /** Version and SHA-256 (hex) of the image running now; null while rebooting, off or bricked. */
  version: string | null;
  sha256: string | null;
  /** 'running' | 'booting' | 'off' | 'bricked' | 'shutdown' */
  power: string;
  /** Successful boot switches into a newly written image (SimDevice.installs). */
  installs: number;
  /**
   * The otadata state of the running slot as esp_ota_get_state_partition reports it ('valid', 'pending-verify',
   * 'undefined' for a factory image ...); null while rebooting, off or bricked.
   */
  otaState: OtaState | null;
  /** Gateways with a link up to it now. */
  connectedTo: string[];
  /** RSSI per gateway that hears it now. */
  rssi: Record<string, number>;
}

export interface PlantGatewayInfo {
  id: string;
  connected: boolean;
  /** Times this gateway connected since the plant started. */
  sessions: number;
}

export interface PlantStartOptions {
  /** TCP ports on 127.0.0.1 (0 or omitted: any free port). */
  hciPort?: number;
  controlPort?: number;
}

interface GatewayState {
  id: string;
  /** RSSI per device address; absent: out of range. */
  range: Map<string, number>;
  /** Radio central index of the live session, or null. */
  central: number | null;
  sessions: number;
}

export class PlantSim {
  readonly layout: PlantLayout;
  readonly clock: Clock = realClock;
  readonly radio: SimRadio;
  /** By name. */
  readonly devices = new Map<string, SimDevice>();
  private readonly gatewayStates = new Map<string, GatewayState>();
  private hciServer: PlantHciServer | null = null;
  private controlServer: PlantControlServer | null = null;
  private readonly timers: Array<{ cancel(): void }> = [];
  private started = false;
  private stopped = false;

  /** layout: a PlantLayout, its JSON text or its parsed JSON (checked: BAD_PLANT_LAYOUT). */
  constructor(layout: PlantLayout | string | unknown) {
    this.layout = isParsed(layout) ? layout : parsePlantLayout(layout);
    this.radio = createSimRadio({ clock: this.clock, link: this.layout.link as Parameters<typeof createSimRadio>[0]['link'] });
    // The radio's own adapter (central 0) is nobody's: powered off, it never listens.
    this.radio.setPowered(false);
    for (const id of this.layout.gateways) this.gatewayStates.set(id, { id, range: new Map(), central: null, sessions: 0 });
    const { masterKey, releaseKeys, development } = this.layout.keys;
    for (const d of this.layout.devices) {
      const address = (d.address ?? addressFromName(d.name)).toLowerCase();
      const config: SimDeviceConfig = { name: d.name, address, chip: d.chip, version: d.version, diagnostics: d.diagnostics, confirmPolicy: d.confirmPolicy, protocol: 'v2' };
      if (masterKey) config.deviceKey = deriveDeviceKey(masterKey, deviceIdOf(address));
      if (releaseKeys) config.releaseKeys = releaseKeys.map((k) => Buffer.from(k));
      if (development) config.allowUnauthenticated = true;
      const device = createSimDevice(config, this.clock);
      this.devices.set(d.name, device);
      this.radio.addDevice(device);
      for (const [gw, rssi] of Object.entries(d.rssi)) this.gatewayStates.get(gw)?.range.set(address, rssi);
    }
  }

  /** Opens the HCI and control servers on 127.0.0.1, arms the layout's faults; resolves with the ports. */
  async start(options: PlantStartOptions = {}): Promise<{ hciPort: number; controlPort: number }> {
    if (this.started) throw new OtaError('BAD_PARAMETER', 'the plant simulator is already started');
    this.started = true;
    this.hciServer = new PlantHciServer(this);
    this.controlServer = new PlantControlServer(this);
    const hciPort = await this.hciServer.listen(options.hciPort ?? 0);
    const controlPort = await this.controlServer.listen(options.controlPort ?? 0);
    for (const d of this.layout.devices) {
      for (const fault of d.faults) this.injectFault(d.name, fault);
      if (d.vanishAtMs !== undefined) {
        const address = this.devices.get(d.name)!.address;
        this.timers.push(this.clock.setTimer(() => this.radio.injectFault(address, { kind: 'vanish' }), d.vanishAtMs));
      }
    }
    return { hciPort, controlPort };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    await this.controlServer?.close();
    await this.hciServer?.close();
    await Promise.all([...this.devices.values()].map((d) => d.shutdown().catch(() => undefined)));
    this.radio.close();
  }

  // ---- gateways (the HCI server calls these) ----

  /** A gateway connected: a new central hearing what the gateway's range says, on its own air. */
  attachGateway(id: string): CentralController {
    const gw = this.gatewayStates.get(id);
    if (!gw) throw new OtaError('PLANT_UNKNOWN_GATEWAY', `gateway "${id}" is not in the plant layout (${this.layout.gateways.join(', ')})`);
    if (gw.central !== null) throw new OtaError('PLANT_GATEWAY_CONNECTED', `gateway "${id}" is already connected to the plant`);
    const controller = this.radio.addCentral({ hears: (address) => gw.range.get(address) ?? null, ownAir: true });
    gw.central = controller.index;
    gw.sessions++;
    return controller;
  }

  /** The gateway's connection ended: its adapter is gone as a dead one is (devices notice by supervision timeout). */
  detachGateway(id: string, controller: CentralController): void {
    const gw = this.gatewayStates.get(id);
    if (!gw || gw.central !== controller.index) return;
    gw.central = null;
    if (!this.stopped) this.radio.removeCentral(controller.index);
  }

  gateways(): PlantGatewayInfo[] {
    return [...this.gatewayStates.values()].map((g) => ({ id: g.id, connected: g.central !== null, sessions: g.sessions }));
  }

  /** Closes a gateway's connection from the plant side (its adapter dies); false when it is not connected. */
  dropGateway(id: string): boolean {
    this.gatewayState(id);
    return this.hciServer?.drop(id) ?? false;
  }

  // ---- devices ----

  deviceInfos(): PlantDeviceInfo[] {
    return [...this.devices.values()].map((d) => this.deviceInfo(d));
  }

  deviceInfo(device: SimDevice): PlantDeviceInfo {
    const app = device.machine.state === 'running' ? device.machine.runningApp : null;
    const connectedTo: string[] = [];
    const rssi: Record<string, number> = {};
    for (const g of this.gatewayStates.values()) {
      if (g.central !== null && this.radio.connectedDevices(g.central).includes(device.address)) connectedTo.push(g.id);
      const r = g.range.get(device.address);
      if (r !== undefined) rssi[g.id] = r;
    }
    return {
      name: device.name,
      address: device.address,
      chip: device.settings.chip,
      version: app ? app.version : null,
      sha256: app ? app.sha256.toString('hex') : null,
      power: device.machine.state,
      installs: device.installs,
      otaState: app ? runningOtaState(device, app.partitionLabel) : null,
      connectedTo,
      rssi,
    };
  }

  /** A fault (docs/FAULTS.md) into the named device or its link (the simulated fleet's rules). */
  injectFault(deviceName: string, fault: Fault): FaultHandle {
    return injectFleetFault(this.radio, this.clock, this.devices as Map<string, VirtualPeripheral>, deviceName, fault);
  }

  /**
   * What a gateway hears: rssi (dBm) or null (out of range) for one device, or for every device when
   * deviceName is omitted. A link to a device now out of range is lost.
   */
  setRange(gatewayId: string, deviceName: string | undefined, rssi: number | null): void {
    const gw = this.gatewayState(gatewayId);
    if (rssi !== null && !(Number.isInteger(rssi) && rssi >= -127 && rssi <= 20)) throw new OtaError('PLANT_BAD_COMMAND', `rssi must be an integer dBm in -127..20 or null (out of range), got ${JSON.stringify(rssi)}`);
    const targets = deviceName === undefined ? [...this.devices.values()] : [this.device(deviceName)];
    for (const d of targets) {
      if (rssi === null) gw.range.delete(d.address);
      else gw.range.set(d.address, rssi);
    }
    this.radio.rangeChanged();
  }

  device(name: string): SimDevice {
    const d = this.devices.get(name);
    if (!d) throw new OtaError('DEVICE_NOT_FOUND', `no simulated device named "${name}" in the plant`);
    return d;
  }

  private gatewayState(id: string): GatewayState {
    const gw = this.gatewayStates.get(id);
    if (!gw) throw new OtaError('PLANT_UNKNOWN_GATEWAY', `gateway "${id}" is not in the plant layout (${this.layout.gateways.join(', ')})`);
    return gw;
  }
}

function isParsed(layout: unknown): layout is PlantLayout {
  return typeof layout === 'object' && layout !== null && isPlantLayout(layout);
}

/** The otadata state of the slot the device runs (lib/sim/device/ota-data.ts, as esp_ota_get_state_partition). */
function runningOtaState(device: SimDevice, partitionLabel: string): OtaState | null {
  const slot = SLOT_LABELS.indexOf(partitionLabel);
  if (slot !== 0 && slot !== 1) return null;
  return OTA_STATE_NAMES[device.flash.otadata.state(slot)] ?? null;
}
