/**
 * The virtual radio: the air between the gateway's adapters and the devices. It hosts
 * VirtualPeripherals, advertises them while a central scans, connects (waiting for the device's next
 * advertising event), runs every connection's PDUs through the link layer, injects faults and counts
 * what went on air. Each central (adapter) is a virtual HCI controller (lib/sim/hci/central-controller.ts)
 * that noble's own hci-socket layer drives (lib/sim/hci/noble-hci-loader.ts); each device's end of a
 * link is its controller's RX buffers, its host's L2CAP and an ATT server (lib/sim/hci/peripheral-link.ts,
 * att-server.ts). A device sees each central's link as its own connectionId (the central's index).
 */
import type { Clock, TimerHandle } from '../../clock';
import type { AdapterState } from '../../ble/central';
import { OtaError } from '../../errors';
import { TRANSMIT_WINDOW_DELAY_MS, resolveLinkProfile, type LinkProfile, type LinkScenarioName } from '../link-model';
import type { PeripheralHost, VirtualPeripheral } from '../types';
import { validateFault, WriteFaults, type FaultHandle, type RadioFault } from '../faults';
import { addLinkStats, emptyLinkStats, LinkLayer, type LinkConnection, type LinkStats, type Pdu } from './link-layer';
import { CentralController, type AclBufferConfig, type CentralAir } from '../hci/central-controller';
import { encodeAdvertising } from '../hci/adv-data';
import { AttHost, AttServer, type GattCounters } from '../hci/att-server';
import { PeripheralLinkEnd } from '../hci/peripheral-link';
import { HCI_STATUS } from '../hci/hci-codes';

export type { GattCounters };

/** HCI disconnect reasons noble reports. */
export const HCI_REASON = {
  connectionTimeout: 0x08,
  remoteUserTerminated: 0x13,
  localHostTerminated: 0x16,
} as const;

export interface SimRadioOptions {
  clock: Clock;
  link: LinkScenarioName | LinkProfile;
  /** Default poweredOn; 'poweredOff', 'unsupported' (no LE) or 'unauthorized' for tests. */
  adapterState?: AdapterState;
  /** Connections the controller accepts at once (default 10). */
  maxConnections?: number;
  adapterAddress?: string;
  /** The controller's LE ACL buffers (default 8 x 251). */
  aclBuffers?: AclBufferConfig;
}

/**
 * ACL RX buffers of a device's controller by default: CONFIG_BT_NIMBLE_TRANSPORT_ACL_FROM_LL_COUNT,
 * default 24 (esp-idf components/bt/host/nimble/Kconfig.in:528-533), the ACL buffer count the ESP32-C2/C6/H2
 * controllers take as theirs (components/bt/controller/esp32c6/esp_bt_cfg.h:35). See docs/LINK-MODEL.md.
 */
export const DEFAULT_DEVICE_RX_BUFFERS = 24;

export interface DeviceRadioOptions {
  /** Advertising interval in ms (default 100). */
  advIntervalMs?: number;
  /** RSSI the central reports for this device (default -55 dBm). */
  rssi?: number;
  /** ACL RX buffers of the device's controller (default DEFAULT_DEVICE_RX_BUFFERS). */
  rxBuffers?: number;
}

export interface DeviceRadioStats {
  connections: number;
  connected: boolean;
  link: LinkStats;
  gatt: GattCounters;
  bytesOnAir: { toPeripheral: number; toCentral: number };
  /** Most controller RX buffers in use at once on any of its links. */
  maxRxInUse: number;
  /** Time the device's host was stalled in total (ms). */
  stalledMs: number;
}

export interface RadioStats {
  link: string;
  adapterState: AdapterState;
  totals: LinkStats;
  /** Bytes of whole PDUs on air (preamble, access address, header, payload, MIC, CRC), per direction. */
  bytesOnAir: { toPeripheral: number; toCentral: number };
  devices: Record<string, DeviceRadioStats>;
  faults: Array<{ address: string; fault: RadioFault }>;
}

interface Connection {
  link: LinkConnection;
  /** The link layer (air) the link's PDUs go through: the radio's, or its central's own. */
  layer: LinkLayer;
  end: PeripheralLinkEnd;
  server: AttServer | null;
  /** 'lost': the air link is dead, the supervision timeout has not fired yet. */
  state: 'connecting' | 'up' | 'closing' | 'lost';
}

/**
 * One central (adapter) on the air: its controller and what it is initiating. Index 0 is the radio's
 * own adapter; addCentral() adds more. The index is also the connectionId its links have at the devices
 * (a central has at most one link to a device).
 */
interface Central {
  readonly index: number;
  readonly controller: CentralController;
  /** Peripheral id the controller is initiating a connection to (until CONNECT_IND goes out). */
  pendingConnect: string | null;
  /** AddCentralOptions.hears; undefined: every device, at its own rssi. */
  hears?: (address: string) => number | null;
  /** The link layer its links use (the radio's shared one unless the central has its own air). */
  layer: LinkLayer;
  /** Taken off the air for good (removeCentral): it hears nothing and is never listed again. */
  removed: boolean;
}

interface DeviceSlot {
  device: VirtualPeripheral;
  id: string;
  address: string;
  advIntervalMs: number;
  rssi: number;
  rxBuffers: number;
  advTimer: TimerHandle | null;
  vanished: boolean;
  /** Links by central index (= connectionId at the device). */
  links: Map<number, Connection>;
  connections: number;
  link: LinkStats;
  gatt: GattCounters;
  maxRxInUse: number;
  /** The device's host task (one for all its links). */
  host: AttHost;
  stalledUntil: number;
  stalledMs: number;
  stallTimer: TimerHandle | null;
}

export function peripheralId(address: string): string {
  return address.toLowerCase().replace(/:/g, '');
}

/** GATT traffic as the central sees it: a write handed to the controller, a notification delivered. */
export interface GattTrafficEvent {
  kind: 'write' | 'notification';
  address: string;
  characteristic: string;
  data: Buffer;
  /** Clock time in ms. */
  at: number;
  /** Index of the central whose link carried it (0: the radio's own adapter). */
  central: number;
}

export interface AddCentralOptions {
  /** Default poweredOn. */
  adapterState?: AdapterState;
  adapterAddress?: string;
  aclBuffers?: AclBufferConfig;
  /**
   * The RSSI (dBm) this central hears a device with, or null: out of range (no advertising reports; a
   * connect attempt never sees the device advertise, so no CONNECT_IND goes out and the initiator waits
   * until its host cancels; a link to it is lost). Asked at every advertising event and RSSI read, so it
   * may change over time (call rangeChanged() after a change). Default: every device at its own rssi.
   */
  hears?: (address: string) => number | null;
  /**
   * The central's links get a link layer of their own (another gateway's controller schedules its own
   * connection events; docs/LINK-MODEL.md "Several gateways"). Default false: they share the radio's air
   * time with every other link (a second adapter on the same host).
   */
  ownAir?: boolean;
}



/** LL_TERMINATE_IND control PDU payload: opcode + error code (Core Vol 6 Part B 2.4.2.2). */
const LL_TERMINATE_IND_BYTES = 2;
const ATT_OP = { writeReq: 0x12, writeCmd: 0x52, prepareWriteReq: 0x16, notify: 0x1b, indicate: 0x1d } as const;
const ATT_CID = 0x0004;
/** HCI device numbers of simulated adapters (hciN as noble's deviceId option names them). */
let nextDeviceId = 0;

export class SimRadio implements CentralAir {
  /** Optional observer of every connection's GATT traffic (the benchmark times transfers with it). */
  onGattTraffic: ((e: GattTrafficEvent) => void) | null = null;
  /** The HCI controller of the radio's own adapter (central 0). */
  readonly controller: CentralController;
  readonly profile: LinkProfile;
  readonly clock: Clock;
  private readonly linkLayer: LinkLayer;
  /** Every link layer: the radio's, then one per central with its own air. */
  private readonly airs: LinkLayer[] = [];
  /** Link counts of the airs of removed centrals. */
  private readonly retiredTotals = emptyLinkStats();
  private readonly slots = new Map<string, DeviceSlot>();
  private readonly faults = new WriteFaults();
  private readonly centrals: Central[] = [];
  private readonly byController = new Map<CentralController, Central>();
  private readonly maxConnections: number;
  private readonly aclBuffers: AclBufferConfig | undefined;
  readonly adapterAddress: string;

  constructor(options: SimRadioOptions) {
    this.clock = options.clock;
    this.profile = resolveLinkProfile(options.link);
    this.linkLayer = new LinkLayer(this.clock, this.profile);
    this.airs.push(this.linkLayer);
    this.maxConnections = options.maxConnections ?? 10;
    this.aclBuffers = options.aclBuffers;
    this.adapterAddress = options.adapterAddress ?? '00:1a:7d:da:71:0a';
    this.controller = this.newCentral(options.adapterState ?? 'poweredOn', this.adapterAddress, options.aclBuffers, this.linkLayer, undefined).controller;
  }

  get adapterState(): AdapterState {
    return this.centrals[0].controller.state;
  }

  /**
   * Another central in range of the same devices (a second gateway or phone, e.g. for BUSY): its own
   * controller, scan, connect attempt and connection limit, while its links share this radio's link layer
   * (air time) with every other link. Give the controller to createHciNoble (lib/sim/hci/noble-hci-loader).
   */
  addCentral(options: AddCentralOptions = {}): CentralController {
    const index = this.centrals.length;
    const address = options.adapterAddress ?? this.adapterAddress.replace(/[0-9a-f]{2}$/, (b) => ((parseInt(b, 16) + index) & 0xff).toString(16).padStart(2, '0'));
    let layer = this.linkLayer;
    if (options.ownAir) {
      layer = new LinkLayer(this.clock, this.profile);
      this.airs.push(layer);
      for (const air of this.airs) air.interference = (start, end, channel) => this.interferenceOn(air, start, end, channel);
    }
    return this.newCentral(options.adapterState ?? 'poweredOn', address, options.aclBuffers ?? this.aclBuffers, layer, options.hears).controller;
  }

  /**
   * The central leaves the air for good (its gateway died): the adapter goes down as a powered-off one
   * does (the central's side of every link ends at once, each device notices by its supervision timeout),
   * its controller stops. Its index is never reused (it is the connectionId its links had at the devices).
   */
  removeCentral(centralIndex: number): void {
    if (centralIndex === 0) throw new OtaError('BAD_PARAMETER', "the radio's own adapter (central 0) cannot be removed");
    const central = this.central(centralIndex);
    if (central.removed) return;
    this.setAdapterState('poweredOff', centralIndex);
    central.removed = true;
    central.controller.shutdown();
    if (central.layer !== this.linkLayer) {
      // Its own air goes with it (its links are closed); its counts stay in the radio's totals.
      addLinkStats(this.retiredTotals, central.layer.totals);
      this.airs.splice(this.airs.indexOf(central.layer), 1);
    }
    this.scanChanged();
  }

  /**
   * A central's range changed (its hears function answers differently now): links to devices it no longer
   * hears are lost (both ends notice by their supervision timeouts), advertising follows who listens.
   */
  rangeChanged(): void {
    for (const slot of this.slots.values()) {
      for (const index of [...slot.links.keys()]) {
        if (this.heardAt(this.centrals[index], slot) === null) this.loseLink(slot, this.centrals[index], true);
      }
      this.ensureAdvertising(slot);
    }
  }

  addDevice(device: VirtualPeripheral, options: DeviceRadioOptions = {}): void {
    const address = device.address.toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(address)) {
      throw new OtaError('SIM_BAD_ADDRESS', `device "${device.name}" has address "${device.address}"; expected six hex bytes like aa:bb:cc:dd:ee:ff`);
    }
    const id = peripheralId(address);
    if (this.slots.has(id)) throw new OtaError('SIM_DUPLICATE_ADDRESS', `a device with address ${address} is already on the radio`);
    const rxBuffers = options.rxBuffers ?? DEFAULT_DEVICE_RX_BUFFERS;
    if (!Number.isInteger(rxBuffers) || rxBuffers < 1) throw new OtaError('BAD_PARAMETER', `device "${device.name}": rxBuffers must be an integer >= 1, not ${rxBuffers}`);
    const slot: DeviceSlot = {
      device,
      id,
      address,
      advIntervalMs: options.advIntervalMs ?? 100,
      rssi: options.rssi ?? -55,
      rxBuffers,
      advTimer: null,
      vanished: false,
      links: new Map(),
      connections: 0,
      link: emptyLinkStats(),
      gatt: { attErrors: 0, oversizeWritesDropped: 0, notificationsDropped: 0, valueBytesToPeripheral: 0, valueBytesToCentral: 0 },
      maxRxInUse: 0,
      host: new AttHost(this.clock),
      stalledUntil: 0,
      stalledMs: 0,
      stallTimer: null,
    };
    this.slots.set(id, slot);
    device.attach(this.hostFor(slot));
    this.ensureAdvertising(slot);
  }

  /** Takes a device off the air (its links time out); the device itself is not shut down. */
  removeDevice(address: string): void {
    const slot = this.slot(address);
    for (const index of [...slot.links.keys()]) this.loseLink(slot, this.centrals[index], true);
    slot.advTimer?.cancel();
    slot.advTimer = null;
    this.slots.delete(slot.id);
  }

  injectFault(address: string, fault: RadioFault): FaultHandle {
    validateFault(fault);
    const slot = this.slot(address);
    if (fault.kind === 'vanish') {
      slot.vanished = true;
      for (const index of [...slot.links.keys()]) this.loseLink(slot, this.centrals[index], true);
      if (fault.forMs !== undefined) {
        this.clock.setTimer(() => {
          slot.vanished = false;
          this.ensureAdvertising(slot);
        }, fault.forMs);
      }
      return this.faults.record(slot.address, fault);
    }
    if (fault.kind === 'powerLoss') {
      // The device loses RAM at once; it learns nothing of the links it had.
      for (const index of [...slot.links.keys()]) this.loseLink(slot, this.centrals[index], false);
      slot.host.reset();
      this.endStall(slot);
      slot.device.powerLoss(fault.offMs);
      return this.faults.record(slot.address, fault);
    }
    return this.faults.add(slot.address, fault);
  }

  /** Adapter state of a central (default: the radio's own adapter); noble sees it at its next isDevUp poll. */
  setAdapterState(next: AdapterState, centralIndex = 0): void {
    const central = this.central(centralIndex);
    if (next === central.controller.state) return;
    central.controller.setState(next);
    if (next === 'poweredOff') central.pendingConnect = null;
  }

  /** Shorthand for tests and the Node-RED demo: adapter on (poweredOn) or off (poweredOff). */
  setPowered(on: boolean, centralIndex = 0): void {
    this.setAdapterState(on ? 'poweredOn' : 'poweredOff', centralIndex);
  }

  /** The controller of a central (0: the radio's own adapter). */
  controllerOf(centralIndex = 0): CentralController {
    return this.central(centralIndex).controller;
  }

  /** Stops every controller (timers, process listeners); called when the fleet closes. */
  close(): void {
    for (const c of this.centrals) c.controller.shutdown();
    for (const slot of this.slots.values()) {
      slot.advTimer?.cancel();
      slot.advTimer = null;
      slot.stallTimer?.cancel();
      slot.stallTimer = null;
    }
  }

  stats(): RadioStats {
    const devices: Record<string, DeviceRadioStats> = {};
    const totals = emptyLinkStats();
    for (const slot of this.slots.values()) {
      const link = emptyLinkStats();
      addLinkStats(link, slot.link);
      const gatt = { ...slot.gatt };
      let maxRxInUse = slot.maxRxInUse;
      for (const c of slot.links.values()) {
        addLinkStats(link, c.link.stats);
        if (c.server) addCounters(gatt, c.server.counters);
        maxRxInUse = Math.max(maxRxInUse, c.end.maxRxInUse);
      }
      const connected = [...slot.links.values()].some((c) => c.state === 'up');
      devices[slot.address] = { connections: slot.connections, connected, link, gatt, bytesOnAir: this.bytesOnAir(link), maxRxInUse, stalledMs: slot.stalledMs };
    }
    for (const air of this.airs) addLinkStats(totals, air.totals);
    addLinkStats(totals, this.retiredTotals);
    return { link: this.profile.name, adapterState: this.adapterState, totals, bytesOnAir: this.bytesOnAir(totals), devices, faults: [...this.faults.log] };
  }

  /** Devices connected now (addresses), to any central unless one is named. */
  connectedDevices(centralIndex?: number): string[] {
    const up = (slot: DeviceSlot) => [...slot.links].some(([index, c]) => c.state === 'up' && (centralIndex === undefined || index === centralIndex));
    return [...this.slots.values()].filter(up).map((s) => s.address);
  }

  /** The ATT server of a live link (tests). */
  attServer(address: string, centralIndex = 0): AttServer | undefined {
    return this.slot(address).links.get(centralIndex)?.server ?? undefined;
  }

  // ---- CentralAir: called by the controllers ----

  scanChanged(): void {
    for (const slot of this.slots.values()) this.ensureAdvertising(slot);
  }

  initiate(controller: CentralController, peerAddress: string): void {
    const central = this.ofController(controller);
    const id = peripheralId(peerAddress);
    const busy = [...this.slots.values()].filter((s) => s.links.has(central.index)).length;
    if (busy >= this.maxConnections) {
      // No room for another link: the attempt ends as a controller without resources ends it.
      this.later(() => controller.connectionFailed(HCI_STATUS.connectionLimitExceeded, peerAddress));
      return;
    }
    central.pendingConnect = id;
    const slot = this.slots.get(id);
    // An unknown device: the initiator waits for an address that never advertises (like HCI).
    if (slot) this.ensureAdvertising(slot);
  }

  cancelInitiate(controller: CentralController): boolean {
    const central = this.ofController(controller);
    if (!central.pendingConnect) return false;
    central.pendingConnect = null;
    return true;
  }

  terminate(controller: CentralController, peerId: string, reason: number): void {
    const central = this.ofController(controller);
    const slot = this.slots.get(peerId);
    const c = slot?.links.get(central.index);
    if (!slot || !c) return;
    if (reason < 0) {
      // The adapter went away (powered off, reset): the central side ends at once, the device notices
      // by its supervision timeout.
      this.endLink(slot, central, c, null);
      this.clock.setTimer(() => this.closeDeviceEnd(slot, c, true), this.profile.supervisionTimeoutMs);
      return;
    }
    if (c.state !== 'up') return;
    c.state = 'closing';
    c.layer.send(c.link, 'toPeripheral', LL_TERMINATE_IND_BYTES, () => this.endConnection(slot, central, reason, true), true);
  }

  sendPdus(controller: CentralController, peerId: string, pdus: Pdu[]): void {
    const central = this.ofController(controller);
    const c = this.slots.get(peerId)?.links.get(central.index);
    if (!c || c.state === 'lost') return;
    for (const pdu of pdus) pdu.onDelivered = () => c.end.receivePdu(pdu);
    c.layer.sendPdus(c.link, 'toPeripheral', pdus);
  }

  rssi(controller: CentralController, peerId: string): number | undefined {
    const slot = this.slots.get(peerId);
    return slot ? (this.heardAt(this.ofController(controller), slot) ?? undefined) : undefined;
  }

  get observing(): boolean {
    return this.onGattTraffic !== null;
  }

  observeFrame(controller: CentralController, peerId: string, direction: 'toPeripheral' | 'toCentral', frame: Buffer): void {
    const observer = this.onGattTraffic;
    if (!observer || frame.length < 7 || frame.readUInt16LE(2) !== ATT_CID) return;
    const op = frame[4];
    // A long write (value > MTU - 3, e.g. BEGIN at MTU 23) starts with a Prepare Write at offset 0:
    // observed as the write, with its first part as data.
    const prepareStart = op === ATT_OP.prepareWriteReq && frame.length >= 9 && frame.readUInt16LE(7) === 0;
    const isWrite = op === ATT_OP.writeReq || op === ATT_OP.writeCmd || prepareStart;
    const isNotification = op === ATT_OP.notify || op === ATT_OP.indicate;
    if (direction === 'toPeripheral' ? !isWrite : !isNotification) return;
    const central = this.ofController(controller);
    const slot = this.slots.get(peerId);
    const characteristic = slot?.links.get(central.index)?.server?.characteristicAt(frame.readUInt16LE(5));
    if (!slot || !characteristic) return;
    observer({ kind: isWrite ? 'write' : 'notification', address: slot.address, characteristic: characteristic.characteristicUuid, data: frame.subarray(prepareStart ? 9 : 7), at: this.clock.now(), central: central.index });
  }

  // ---- internals ----

  private newCentral(state: AdapterState, address: string, aclBuffers: AclBufferConfig | undefined, layer: LinkLayer, hears: Central['hears']): Central {
    const index = this.centrals.length;
    const controller = new CentralController({
      index,
      deviceId: nextDeviceId++,
      address,
      clock: this.clock,
      state,
      air: this,
      aclBuffers,
      connectionIntervalMs: this.profile.connectionIntervalMs,
      supervisionTimeoutMs: this.profile.supervisionTimeoutMs,
    });
    controller.dataLength = this.profile.dataLength;
    const central: Central = { index, controller, pendingConnect: null, hears, layer, removed: false };
    this.centrals.push(central);
    this.byController.set(controller, central);
    return central;
  }

  private ofController(controller: CentralController): Central {
    const central = this.byController.get(controller);
    if (!central) throw new OtaError('BAD_PARAMETER', 'this controller is not on this radio');
    return central;
  }

  private central(index: number): Central {
    const central = this.centrals[index];
    if (!central) throw new OtaError('BAD_PARAMETER', `the radio has no central ${index} (it has ${this.centrals.length})`);
    return central;
  }

  private slot(address: string): DeviceSlot {
    const slot = this.slots.get(peripheralId(address));
    if (!slot) throw new OtaError('DEVICE_NOT_FOUND', `no simulated device with address ${address} on this radio`);
    return slot;
  }

  private hostFor(slot: DeviceSlot): PeripheralHost {
    const live = () => this.slots.get(slot.id) === slot;
    return {
      clock: this.clock,
      notify: (service, characteristic, original, connectionId) => {
        const verdict = this.faults.onNotify(slot.address, original, characteristic.toLowerCase());
        if (verdict.action === 'drop') return;
        if (verdict.action === 'delay') {
          this.clock.setTimer(() => {
            for (const [index, c] of slot.links) {
              if (c.state === 'up' && c.server && live() && (connectionId === undefined || index === connectionId)) c.server.notify(service, characteristic, verdict.data);
            }
          }, verdict.ms);
          return;
        }
        const data = verdict.data;
        let sent = false;
        for (const [index, c] of slot.links) {
          if (c.state !== 'up' || !c.server || !live() || (connectionId !== undefined && index !== connectionId)) continue;
          c.server.notify(service, characteristic, data);
          sent = true;
        }
        if (!sent) slot.gatt.notificationsDropped++;
      },
      dropConnection: (_reason, connectionId) => {
        // Every link at once: the device restarts (Machine.powerDown), its host task and the access
        // callbacks it was in are gone.
        if (connectionId === undefined) slot.host.reset();
        for (const [index, c] of slot.links) {
          if (c.state !== 'up' || (connectionId !== undefined && index !== connectionId)) continue;
          const central = this.centrals[index];
          c.state = 'closing';
          c.layer.send(c.link, 'toCentral', LL_TERMINATE_IND_BYTES, () => this.endConnection(slot, central, HCI_REASON.remoteUserTerminated, false), true);
        }
      },
      // A reset without LL_TERMINATE_IND (the seed's esp_restart inside a callback): the air link dies
      // now, the central notices by its supervision timeout; the rebooting device learns nothing of it.
      loseConnection: (_reason, connectionId) => {
        if (connectionId === undefined) slot.host.reset();
        for (const index of [...slot.links.keys()]) {
          if (connectionId === undefined || index === connectionId) this.loseLink(slot, this.centrals[index], false);
        }
      },
      advertisingChanged: () => this.ensureAdvertising(slot),
      hostStall: (durationMs) => this.stallHost(slot, durationMs),
    };
  }

  /** PeripheralHost.hostStall: the device's host runs no task for durationMs (stalls add up back to back). */
  private stallHost(slot: DeviceSlot, durationMs: number): void {
    if (!(durationMs > 0)) return;
    const now = this.clock.now();
    slot.stalledUntil = Math.max(slot.stalledUntil, now) + durationMs;
    slot.stalledMs += durationMs;
    slot.host.stall(durationMs);
    slot.stallTimer?.cancel();
    slot.stallTimer = this.clock.setTimer(() => this.endStall(slot), slot.stalledUntil - now);
  }

  private endStall(slot: DeviceSlot): void {
    slot.stallTimer?.cancel();
    slot.stallTimer = null;
    slot.stalledUntil = 0;
    for (const c of slot.links.values()) {
      c.end.hostResumed();
      c.layer.resume(c.link);
    }
  }

  /** Advertising events run while someone listens: a scan, or a connect waiting for this device. */
  private ensureAdvertising(slot: DeviceSlot): void {
    if (slot.advTimer || !this.wantsAdvertising(slot)) return;
    const interval = slot.advIntervalMs;
    const now = this.clock.now();
    const phase = (hash(slot.address) % Math.round(interval * 100)) / 100;
    const delay = (((phase - now) % interval) + interval) % interval;
    slot.advTimer = this.clock.setTimer(() => this.advertisingEvent(slot), delay);
  }

  /**
   * A central listens to a device's advertising while it scans or initiates a connection to it, and is
   * not connected to it (a central sees no advertisements of a device it is connected to, one link each).
   * Whether the device advertises while connected to someone else is the device's call (advertisement()).
   */
  private listens(central: Central, slot: DeviceSlot): boolean {
    const ctrl = central.controller;
    if (central.removed || ctrl.state === 'poweredOff' || slot.links.has(central.index)) return false;
    return (ctrl.scanning !== null || central.pendingConnect === slot.id) && this.heardAt(central, slot) !== null;
  }

  /** The RSSI a central hears the device with; null: out of its range. */
  private heardAt(central: Central, slot: DeviceSlot): number | null {
    return central.hears ? central.hears(slot.address) : slot.rssi;
  }

  /**
   * LinkLayer.interference of one air: an exchange collides (both its PDUs lost; capture ignored, which is
   * pessimistic) when another air had an exchange on air during [start, end] on the same data channel.
   * Each connection hops on its own (CSA #2 from its access address), so two events share a channel
   * about once in 37. docs/LINK-MODEL.md §10a.
   */
  private interferenceOn(air: LinkLayer, start: number, end: number, channel: number): number {
    for (const other of this.airs) {
      const x = other.lastExchange;
      if (other !== air && x.channel === channel && x.start < end && x.end > start) return 1;
    }
    return 0;
  }

  private wantsAdvertising(slot: DeviceSlot): boolean {
    return this.slots.get(slot.id) === slot && this.centrals.some((c) => this.listens(c, slot));
  }

  private advertisingEvent(slot: DeviceSlot): void {
    slot.advTimer = null;
    if (!this.wantsAdvertising(slot)) return;
    const adv = slot.vanished ? null : slot.device.advertisement();
    if (adv) {
      const payload = encodeAdvertising(adv);
      for (const central of this.centrals) {
        if (!this.listens(central, slot)) continue;
        if (central.controller.scanning) central.controller.advertisingReport(slot.address, payload.advData, payload.scanResponse, this.heardAt(central, slot) ?? slot.rssi);
        if (central.pendingConnect === slot.id) this.establish(slot, central);
      }
      if (!this.wantsAdvertising(slot)) return;
    }
    slot.advTimer = this.clock.setTimer(() => this.advertisingEvent(slot), slot.advIntervalMs);
  }

  /** CONNECT_IND sent at this advertising event; the link starts at its first anchor. */
  private establish(slot: DeviceSlot, central: Central): void {
    central.pendingConnect = null;
    const earliest = this.clock.now() + (this.profile.zeroLatency ? 0 : TRANSMIT_WINDOW_DELAY_MS);
    // Every central's links share this link layer (one radio's air time); trace ids stay distinct.
    const layer = central.layer;
    const link = layer.open(central.index === 0 ? slot.id : `${slot.id}/${central.index}`, earliest);
    const end = new PeripheralLinkEnd({
      dataLength: this.profile.dataLength,
      rxBuffers: slot.rxBuffers,
      sendPdus: (pdus) => {
        for (const pdu of pdus) pdu.onDelivered = () => central.controller.pduToHost(slot.id, pdu);
        layer.sendPdus(link, 'toCentral', pdus);
      },
      hostStalled: () => this.clock.now() < slot.stalledUntil,
    });
    link.canReceive = (dir) => dir === 'toCentral' || end.canReceive();
    // Reserve the device so that its advertising stops for this central.
    const c: Connection = { link, layer, end, server: null, state: 'connecting' };
    slot.links.set(central.index, c);
    slot.connections++;
    this.clock.setTimer(() => {
      if (slot.links.get(central.index) !== c || link.closed || c.state !== 'connecting') {
        central.controller.connectionFailed(HCI_STATUS.connectionFailedToBeEstablished, slot.address);
        return;
      }
      c.state = 'up';
      central.controller.connectionComplete(slot.id, slot.address);
      c.server = new AttServer({
        device: slot.device,
        connectionId: central.index,
        clock: this.clock,
        host: slot.host,
        sendFrame: (frame) => end.sendFrame(frame),
        filterWrite: (data, withoutResponse, characteristic) => this.faults.onWrite(slot.address, data, withoutResponse, characteristic),
        onLinkLost: () => this.loseLink(slot, central, true),
        onFrameConsumed: () => layer.resume(link),
        terminate: (reason) => {
          if (c.state !== 'up') return;
          c.state = 'closing';
          layer.send(link, 'toCentral', LL_TERMINATE_IND_BYTES, () => this.endConnection(slot, central, reason, false), true);
        },
      });
      end.server = c.server;
    }, link.firstAnchor - this.clock.now());
  }

  /** The air link dies now; both sides notice after the supervision timeout. */
  private loseLink(slot: DeviceSlot, central: Central, deviceNotices: boolean): void {
    const c = slot.links.get(central.index);
    if (!c || c.state === 'lost') return;
    const wasConnecting = c.state === 'connecting';
    c.state = 'lost';
    c.layer.close(c.link);
    if (wasConnecting) {
      // Before the first anchor: the attempt fails (0x3E) when the first anchor passes unheard.
      slot.links.delete(central.index);
      c.end.close();
      this.ensureAdvertising(slot);
      return;
    }
    if (!deviceNotices) this.closeDeviceEnd(slot, c, false);
    this.clock.setTimer(() => {
      if (slot.links.get(central.index) === c) this.endConnection(slot, central, HCI_REASON.connectionTimeout, deviceNotices);
    }, this.profile.supervisionTimeoutMs);
  }

  private endConnection(slot: DeviceSlot, central: Central, reason: number, deviceNotices: boolean): void {
    const c = slot.links.get(central.index);
    if (!c) return;
    this.endLink(slot, central, c, reason);
    this.closeDeviceEnd(slot, c, deviceNotices);
  }

  /** The central's side of a link ends (Disconnection Complete unless reason is null). */
  private endLink(slot: DeviceSlot, central: Central, c: Connection, reason: number | null): void {
    c.layer.close(c.link);
    addLinkStats(slot.link, c.link.stats);
    slot.links.delete(central.index);
    if (reason !== null) central.controller.disconnected(slot.id, reason);
    this.ensureAdvertising(slot);
  }

  /** The device's side of a link ends; notifyDevice: its host learns it (onDisconnect). */
  private closeDeviceEnd(slot: DeviceSlot, c: Connection, notifyDevice: boolean): void {
    c.end.close();
    slot.maxRxInUse = Math.max(slot.maxRxInUse, c.end.maxRxInUse);
    const server = c.server;
    if (!server) return;
    c.server = null;
    addCounters(slot.gatt, server.counters);
    server.close({ notifyDevice });
  }

  private bytesOnAir(stats: LinkStats): { toPeripheral: number; toCentral: number } {
    const bitsPerUs = this.profile.phy === '1M' ? 1 : 2;
    return {
      toPeripheral: Math.round((stats.toPeripheral.airtimeUs * bitsPerUs) / 8),
      toCentral: Math.round((stats.toCentral.airtimeUs * bitsPerUs) / 8),
    };
  }

  /** Asynchronous work in clock order, as a controller's events arrive after the command. */
  private later(fn: () => void): void {
    this.clock.setTimer(fn, 0);
  }
}

function addCounters(into: GattCounters, from: GattCounters): void {
  into.attErrors += from.attErrors;
  into.oversizeWritesDropped += from.oversizeWritesDropped;
  into.notificationsDropped += from.notificationsDropped;
  into.valueBytesToPeripheral += from.valueBytesToPeripheral;
  into.valueBytesToCentral += from.valueBytesToCentral;
  if (from.lastAttError) into.lastAttError = from.lastAttError;
}

/** Stable small hash of a string (spreads advertising phases deterministically). */
function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export function createSimRadio(options: SimRadioOptions): SimRadio {
  return new SimRadio(options);
}
