/**
 * The virtual radio: the gateway's BLE adapter and the air around it. It hosts VirtualPeripherals,
 * advertises them while the central scans, connects (waiting for the device's next advertising event),
 * runs every connection's ATT traffic through the link layer, injects faults and counts what went on
 * air. noble talks to it through SimBindings (noble-bindings.ts). More centrals can join the same air
 * (addCentral): each has its own bindings, and a device sees each central's link as its own connectionId.
 */
import type { Clock, TimerHandle } from '../../clock';
import type { AdapterState } from '../../ble/central';
import { OtaError } from '../../errors';
import { TRANSMIT_WINDOW_DELAY_MS, resolveLinkProfile, type LinkProfile, type LinkScenarioName } from '../link-model';
import type { PeripheralHost, VirtualPeripheral } from '../types';
import { validateFault, WriteFaults, type FaultHandle, type RadioFault } from '../faults';
import { addLinkStats, emptyLinkStats, LinkLayer, type LinkConnection, type LinkStats } from './link-layer';
import { GattConnection, type GattCounters } from './gatt-connection';
import { ATT } from './att-sizes';
import { SimBindings } from './noble-bindings';

/** HCI disconnect reasons noble reports. */
export const HCI_REASON = {
  connectionTimeout: 0x08,
  remoteUserTerminated: 0x13,
  localHostTerminated: 0x16,
} as const;

export interface SimRadioOptions {
  clock: Clock;
  link: LinkScenarioName | LinkProfile;
  /** Default poweredOn; 'poweredOff' or 'unsupported' (no adapter) for tests. */
  adapterState?: AdapterState;
  /** Connections the controller accepts at once (default 10). */
  maxConnections?: number;
  adapterAddress?: string;
}

export interface DeviceRadioOptions {
  /** Advertising interval in ms (default 100). */
  advIntervalMs?: number;
  /** RSSI the central reports for this device (default -55 dBm). */
  rssi?: number;
}

export interface DeviceRadioStats {
  connections: number;
  connected: boolean;
  link: LinkStats;
  gatt: GattCounters;
  bytesOnAir: { toPeripheral: number; toCentral: number };
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
  gatt: GattConnection;
  /** 'lost': the air link is dead, the supervision timeout has not fired yet. */
  state: 'up' | 'closing' | 'lost';
}

/**
 * One central (adapter) on the air: its bindings, scan and connect state. Index 0 is the radio's own
 * adapter; addCentral() adds more. The index is also the connectionId its links have at the devices
 * (a central has at most one link to a device).
 */
interface Central {
  readonly index: number;
  readonly bindings: SimBindings;
  readonly address: string;
  state: AdapterState;
  scanning: { uuids: string[]; allowDuplicates: boolean } | null;
  readonly connectQueue: string[];
  pendingConnect: string | null;
}

interface DeviceSlot {
  device: VirtualPeripheral;
  id: string;
  address: string;
  advIntervalMs: number;
  rssi: number;
  advTimer: TimerHandle | null;
  vanished: boolean;
  /** Links by central index (= connectionId at the device). */
  links: Map<number, Connection>;
  connections: number;
  link: LinkStats;
  gatt: GattCounters;
}

export function peripheralId(address: string): string {
  return address.toLowerCase().replace(/:/g, '');
}

/** GATT traffic as the central sees it: a write handed to the radio, a notification delivered. */
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
}

export class SimRadio {
  /** Optional observer of every connection's GATT traffic (the benchmark times transfers with it). */
  onGattTraffic: ((e: GattTrafficEvent) => void) | null = null;
  /** The bindings of the radio's own adapter (central 0). */
  readonly bindings: SimBindings;
  readonly profile: LinkProfile;
  readonly clock: Clock;
  private readonly linkLayer: LinkLayer;
  private readonly slots = new Map<string, DeviceSlot>();
  private readonly faults = new WriteFaults();
  private readonly centrals: Central[] = [];
  private readonly maxConnections: number;
  readonly adapterAddress: string;

  constructor(options: SimRadioOptions) {
    this.clock = options.clock;
    this.profile = resolveLinkProfile(options.link);
    this.linkLayer = new LinkLayer(this.clock, this.profile);
    this.maxConnections = options.maxConnections ?? 10;
    this.adapterAddress = options.adapterAddress ?? '00:1a:7d:da:71:0a';
    this.bindings = this.newCentral(options.adapterState ?? 'poweredOn', this.adapterAddress).bindings;
  }

  get adapterState(): AdapterState {
    return this.centrals[0].state;
  }

  /**
   * Another central in range of the same devices (a second gateway or phone, e.g. for BUSY): its own
   * bindings, scan, connect queue and connection limit, while its links share this radio's link layer
   * (air time) with every other link. Give the bindings to noble/with-bindings.
   */
  addCentral(options: AddCentralOptions = {}): SimBindings {
    const index = this.centrals.length;
    const address = options.adapterAddress ?? this.adapterAddress.replace(/[0-9a-f]{2}$/, (b) => ((parseInt(b, 16) + index) & 0xff).toString(16).padStart(2, '0'));
    return this.newCentral(options.adapterState ?? 'poweredOn', address).bindings;
  }

  addDevice(device: VirtualPeripheral, options: DeviceRadioOptions = {}): void {
    const address = device.address.toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(address)) {
      throw new OtaError('SIM_BAD_ADDRESS', `device "${device.name}" has address "${device.address}"; expected six hex bytes like aa:bb:cc:dd:ee:ff`);
    }
    const id = peripheralId(address);
    if (this.slots.has(id)) throw new OtaError('SIM_DUPLICATE_ADDRESS', `a device with address ${address} is already on the radio`);
    const slot: DeviceSlot = {
      device,
      id,
      address,
      advIntervalMs: options.advIntervalMs ?? 100,
      rssi: options.rssi ?? -55,
      advTimer: null,
      vanished: false,
      links: new Map(),
      connections: 0,
      link: emptyLinkStats(),
      gatt: { attErrors: 0, oversizeWritesDropped: 0, notificationsDropped: 0, valueBytesToPeripheral: 0, valueBytesToCentral: 0 },
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
      slot.device.powerLoss(fault.offMs);
      return this.faults.record(slot.address, fault);
    }
    return this.faults.add(slot.address, fault);
  }

  /** Adapter state of a central (default: the radio's own adapter). */
  setAdapterState(next: AdapterState, centralIndex = 0): void {
    const central = this.central(centralIndex);
    if (next === central.state) return;
    const wasOn = central.state === 'poweredOn';
    central.state = next;
    if (wasOn && next !== 'poweredOn') {
      if (central.scanning) this.stopScanning(central.index);
      for (const id of [...central.connectQueue, ...(central.pendingConnect ? [central.pendingConnect] : [])]) {
        this.later(() => central.bindings.emit('connect', id, new Error(`adapter is ${next}`)));
      }
      central.connectQueue.length = 0;
      central.pendingConnect = null;
      for (const slot of this.slots.values()) {
        if (!slot.links.has(central.index)) continue;
        // The central side ends at once; the device notices by its supervision timeout.
        this.endConnection(slot, central, HCI_REASON.localHostTerminated, false);
        this.clock.setTimer(() => slot.device.onDisconnect(central.index), this.profile.supervisionTimeoutMs);
      }
    }
    this.later(() => central.bindings.emit('stateChange', next));
  }

  /** Shorthand for tests and the Node-RED demo: adapter on (poweredOn) or off (poweredOff). */
  setPowered(on: boolean, centralIndex = 0): void {
    this.setAdapterState(on ? 'poweredOn' : 'poweredOff', centralIndex);
  }

  stats(): RadioStats {
    const devices: Record<string, DeviceRadioStats> = {};
    const totals = emptyLinkStats();
    for (const slot of this.slots.values()) {
      const link = emptyLinkStats();
      addLinkStats(link, slot.link);
      const gatt = { ...slot.gatt };
      for (const c of slot.links.values()) {
        addLinkStats(link, c.link.stats);
        addCounters(gatt, c.gatt.counters);
      }
      const connected = [...slot.links.values()].some((c) => c.state === 'up');
      devices[slot.address] = { connections: slot.connections, connected, link, gatt, bytesOnAir: this.bytesOnAir(link) };
    }
    addLinkStats(totals, this.linkLayer.totals);
    return { link: this.profile.name, adapterState: this.adapterState, totals, bytesOnAir: this.bytesOnAir(totals), devices, faults: [...this.faults.log] };
  }

  /** Devices connected now (addresses), to any central unless one is named. */
  connectedDevices(centralIndex?: number): string[] {
    const up = (slot: DeviceSlot) => [...slot.links].some(([index, c]) => c.state === 'up' && (centralIndex === undefined || index === centralIndex));
    return [...this.slots.values()].filter(up).map((s) => s.address);
  }

  // ---- called by SimBindings (central: the index of the bindings' central) ----

  init(centralIndex = 0): void {
    const central = this.central(centralIndex);
    this.later(() => {
      central.bindings.emit('addressChange', central.address);
      central.bindings.emit('stateChange', central.state);
    });
  }

  startScanning(uuids: string[], allowDuplicates: boolean, centralIndex = 0): void {
    const central = this.central(centralIndex);
    if (central.state !== 'poweredOn') return; // noble checks the state before it asks
    central.scanning = { uuids: uuids.map((u) => u.toLowerCase().replace(/-/g, '')), allowDuplicates };
    this.later(() => central.bindings.emit('scanStart', !allowDuplicates));
    for (const slot of this.slots.values()) this.ensureAdvertising(slot);
  }

  stopScanning(centralIndex = 0): void {
    const central = this.central(centralIndex);
    central.scanning = null;
    this.later(() => central.bindings.emit('scanStop'));
  }

  connect(id: string, centralIndex = 0): void {
    const central = this.central(centralIndex);
    const fail = (message: string) => this.later(() => central.bindings.emit('connect', id, new Error(message)));
    if (central.state !== 'poweredOn') return fail(`adapter is ${central.state}`);
    const slot = this.slots.get(id);
    if (slot?.links.has(central.index)) return fail('Connection Already Exists (0xb)');
    const busy = [...this.slots.values()].filter((s) => s.links.has(central.index)).length;
    if (busy >= this.maxConnections) return fail('Connection Limit Exceeded (0x9)');
    if (central.pendingConnect === id || central.connectQueue.includes(id)) return;
    central.connectQueue.push(id);
    this.nextConnect(central);
  }

  cancelConnect(id: string, centralIndex = 0): void {
    const central = this.central(centralIndex);
    const i = central.connectQueue.indexOf(id);
    if (i >= 0) central.connectQueue.splice(i, 1);
    if (central.pendingConnect === id) {
      central.pendingConnect = null;
      this.nextConnect(central);
    }
  }

  disconnect(id: string, centralIndex = 0): void {
    const central = this.central(centralIndex);
    const slot = this.slots.get(id);
    const c = slot?.links.get(central.index);
    if (!slot || !c || c.state !== 'up') return;
    c.state = 'closing';
    this.linkLayer.send(c.link, 'toPeripheral', ATT.llTerminateInd, () => this.endConnection(slot, central, HCI_REASON.localHostTerminated, true), true);
  }

  gatt(id: string, centralIndex = 0): GattConnection | undefined {
    const c = this.slots.get(id)?.links.get(centralIndex);
    return c && c.state === 'up' ? c.gatt : undefined;
  }

  rssi(id: string): number | undefined {
    return this.slots.get(id)?.rssi;
  }

  // ---- internals ----

  private newCentral(state: AdapterState, address: string): Central {
    const index = this.centrals.length;
    const central: Central = { index, bindings: new SimBindings(this, index), address, state, scanning: null, connectQueue: [], pendingConnect: null };
    this.centrals.push(central);
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
      notify: (service, characteristic, data, connectionId) => {
        let sent = false;
        for (const [index, c] of slot.links) {
          if (c.state !== 'up' || !live() || (connectionId !== undefined && index !== connectionId)) continue;
          c.gatt.notifyFromDevice(service, characteristic, data);
          sent = true;
        }
        if (!sent) slot.gatt.notificationsDropped++;
      },
      dropConnection: (_reason, connectionId) => {
        for (const [index, c] of slot.links) {
          if (c.state !== 'up' || (connectionId !== undefined && index !== connectionId)) continue;
          const central = this.centrals[index];
          c.state = 'closing';
          this.linkLayer.send(c.link, 'toCentral', ATT.llTerminateInd, () => this.endConnection(slot, central, HCI_REASON.remoteUserTerminated, false), true);
        }
      },
      advertisingChanged: () => this.ensureAdvertising(slot),
    };
  }

  private nextConnect(central: Central): void {
    while (!central.pendingConnect && central.connectQueue.length > 0) {
      const id = central.connectQueue.shift() as string;
      central.pendingConnect = id;
      const slot = this.slots.get(id);
      if (slot) this.ensureAdvertising(slot);
      // An unknown device: the initiator waits for an address that never advertises (like HCI).
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
   * A central listens to a device's advertising while it scans or waits to connect to it, and is not
   * connected to it (a central sees no advertisements of a device it is connected to, one link each).
   * Whether the device advertises while connected to someone else is the device's call (advertisement()).
   */
  private listens(central: Central, slot: DeviceSlot): boolean {
    return central.state === 'poweredOn' && !slot.links.has(central.index) && (central.scanning !== null || central.pendingConnect === slot.id);
  }

  private wantsAdvertising(slot: DeviceSlot): boolean {
    return this.slots.get(slot.id) === slot && this.centrals.some((c) => this.listens(c, slot));
  }

  private advertisingEvent(slot: DeviceSlot): void {
    slot.advTimer = null;
    if (!this.wantsAdvertising(slot)) return;
    const adv = slot.vanished ? null : slot.device.advertisement();
    if (adv) {
      for (const central of this.centrals) {
        if (!this.listens(central, slot)) continue;
        if (central.scanning) this.report(slot, adv, central);
        if (central.pendingConnect === slot.id) this.establish(slot, central);
      }
      if (!this.wantsAdvertising(slot)) return;
    }
    slot.advTimer = this.clock.setTimer(() => this.advertisingEvent(slot), slot.advIntervalMs);
  }

  private report(slot: DeviceSlot, adv: NonNullable<ReturnType<VirtualPeripheral['advertisement']>>, central: Central): void {
    const scan = central.scanning;
    if (!scan) return;
    const serviceUuids = adv.serviceUuids.map((u) => u.toLowerCase());
    if (scan.uuids.length > 0 && !serviceUuids.some((u) => scan.uuids.includes(u))) return;
    // The advertisement and scan response merged, shaped as hci-socket's gap.js builds it.
    const advertisement = {
      localName: adv.localName,
      txPowerLevel: adv.txPowerLevel,
      manufacturerData: adv.manufacturerData ? Buffer.from(adv.manufacturerData) : undefined,
      serviceData: [],
      serviceUuids,
      solicitationServiceUuids: [],
    };
    central.bindings.emit('discover', slot.id, slot.address, 'public', true, advertisement, slot.rssi, true);
  }

  /** CONNECT_IND sent at this advertising event; the link starts at its first anchor. */
  private establish(slot: DeviceSlot, central: Central): void {
    const id = slot.id;
    const earliest = this.clock.now() + (this.profile.zeroLatency ? 0 : TRANSMIT_WINDOW_DELAY_MS);
    // Every central's links share this link layer (one radio's air time); trace ids stay distinct.
    const link = this.linkLayer.open(central.index === 0 ? id : `${id}/${central.index}`, earliest);
    // Reserve the device so that a second connect from this central fails and its advertising stops for it.
    const gatt = new GattConnection({
      id,
      connectionId: central.index,
      device: slot.device,
      link: this.linkLayer,
      conn: link,
      centralMtu: this.profile.attMtu,
      emit: (event, ...args) => central.bindings.emit(event, ...args),
      filterWrite: (data, withoutResponse, characteristic) => this.faults.onWrite(slot.address, data, withoutResponse, characteristic),
      onLinkLost: () => this.loseLink(slot, central, true),
      observe: (kind, characteristic, data) => this.onGattTraffic?.({ kind, address: slot.address, characteristic, data, at: this.clock.now(), central: central.index }),
    });
    slot.links.set(central.index, { link, gatt, state: 'up' });
    slot.connections++;
    this.clock.setTimer(() => {
      if (central.pendingConnect === id) central.pendingConnect = null;
      if (slot.links.get(central.index)?.link !== link || link.closed) {
        central.bindings.emit('connect', id, new Error('Connection Failed to be Established (0x3e)'));
      } else {
        central.bindings.emit('connect', id, null);
        gatt.start();
      }
      this.nextConnect(central);
    }, link.firstAnchor - this.clock.now());
  }

  /** The air link dies now; both sides notice after the supervision timeout. */
  private loseLink(slot: DeviceSlot, central: Central, deviceNotices: boolean): void {
    const c = slot.links.get(central.index);
    if (!c || c.state === 'lost') return;
    c.state = 'lost';
    c.gatt.end();
    this.linkLayer.close(c.link);
    this.clock.setTimer(() => {
      if (slot.links.get(central.index) === c) this.endConnection(slot, central, HCI_REASON.connectionTimeout, deviceNotices);
    }, this.profile.supervisionTimeoutMs);
  }

  private endConnection(slot: DeviceSlot, central: Central, reason: number, deviceNotices: boolean): void {
    const c = slot.links.get(central.index);
    if (!c) return;
    c.gatt.end();
    this.linkLayer.close(c.link);
    addLinkStats(slot.link, c.link.stats);
    addCounters(slot.gatt, c.gatt.counters);
    slot.links.delete(central.index);
    if (deviceNotices) slot.device.onDisconnect(central.index);
    central.bindings.emit('disconnect', slot.id, reason);
    this.ensureAdvertising(slot);
  }

  private bytesOnAir(stats: LinkStats): { toPeripheral: number; toCentral: number } {
    const bitsPerUs = this.profile.phy === '1M' ? 1 : 2;
    return {
      toPeripheral: Math.round((stats.toPeripheral.airtimeUs * bitsPerUs) / 8),
      toCentral: Math.round((stats.toCentral.airtimeUs * bitsPerUs) / 8),
    };
  }

  /** Asynchronous emission in clock order, as a controller's events arrive after the command. */
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
