/**
 * The virtual radio: the gateway's BLE adapter and the air around it. It hosts VirtualPeripherals,
 * advertises them while the central scans, connects (waiting for the device's next advertising event),
 * runs every connection's ATT traffic through the link layer, injects faults and counts what went on
 * air. noble talks to it through SimBindings (noble-bindings.ts).
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

interface DeviceSlot {
  device: VirtualPeripheral;
  id: string;
  address: string;
  advIntervalMs: number;
  rssi: number;
  advTimer: TimerHandle | null;
  vanished: boolean;
  connection: Connection | null;
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
}

export class SimRadio {
  /** Optional observer of every connection's GATT traffic (the benchmark times transfers with it). */
  onGattTraffic: ((e: GattTrafficEvent) => void) | null = null;
  readonly bindings: SimBindings;
  readonly profile: LinkProfile;
  readonly clock: Clock;
  private readonly linkLayer: LinkLayer;
  private readonly slots = new Map<string, DeviceSlot>();
  private readonly faults = new WriteFaults();
  private state: AdapterState;
  private scanning: { uuids: string[]; allowDuplicates: boolean } | null = null;
  private readonly connectQueue: string[] = [];
  private pendingConnect: string | null = null;
  private readonly maxConnections: number;
  readonly adapterAddress: string;

  constructor(options: SimRadioOptions) {
    this.clock = options.clock;
    this.profile = resolveLinkProfile(options.link);
    this.linkLayer = new LinkLayer(this.clock, this.profile);
    this.state = options.adapterState ?? 'poweredOn';
    this.maxConnections = options.maxConnections ?? 10;
    this.adapterAddress = options.adapterAddress ?? '00:1a:7d:da:71:0a';
    this.bindings = new SimBindings(this);
  }

  get adapterState(): AdapterState {
    return this.state;
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
      connection: null,
      connections: 0,
      link: emptyLinkStats(),
      gatt: { attErrors: 0, oversizeWritesDropped: 0, notificationsDropped: 0, valueBytesToPeripheral: 0, valueBytesToCentral: 0 },
    };
    this.slots.set(id, slot);
    device.attach(this.hostFor(slot));
    this.ensureAdvertising(slot);
  }

  /** Takes a device off the air (its link times out); the device itself is not shut down. */
  removeDevice(address: string): void {
    const slot = this.slot(address);
    if (slot.connection) this.loseLink(slot, true);
    slot.advTimer?.cancel();
    slot.advTimer = null;
    this.slots.delete(slot.id);
  }

  injectFault(address: string, fault: RadioFault): FaultHandle {
    validateFault(fault);
    const slot = this.slot(address);
    if (fault.kind === 'vanish') {
      slot.vanished = true;
      if (slot.connection) this.loseLink(slot, true);
      if (fault.forMs !== undefined) {
        this.clock.setTimer(() => {
          slot.vanished = false;
          this.ensureAdvertising(slot);
        }, fault.forMs);
      }
      return this.faults.record(slot.address, fault);
    }
    if (fault.kind === 'powerLoss') {
      // The device loses RAM at once; it learns nothing of the link it had.
      if (slot.connection) this.loseLink(slot, false);
      slot.device.powerLoss(fault.offMs);
      return this.faults.record(slot.address, fault);
    }
    return this.faults.add(slot.address, fault);
  }

  setAdapterState(next: AdapterState): void {
    if (next === this.state) return;
    const wasOn = this.state === 'poweredOn';
    this.state = next;
    if (wasOn && next !== 'poweredOn') {
      if (this.scanning) this.stopScanning();
      for (const id of [...this.connectQueue, ...(this.pendingConnect ? [this.pendingConnect] : [])]) {
        this.later(() => this.bindings.emit('connect', id, new Error(`adapter is ${next}`)));
      }
      this.connectQueue.length = 0;
      this.pendingConnect = null;
      for (const slot of this.slots.values()) {
        if (!slot.connection) continue;
        // The central side ends at once; the device notices by its supervision timeout.
        this.endConnection(slot, HCI_REASON.localHostTerminated, false);
        this.clock.setTimer(() => slot.device.onDisconnect(), this.profile.supervisionTimeoutMs);
      }
    }
    this.later(() => this.bindings.emit('stateChange', next));
  }

  /** Shorthand for tests and the Node-RED demo: adapter on (poweredOn) or off (poweredOff). */
  setPowered(on: boolean): void {
    this.setAdapterState(on ? 'poweredOn' : 'poweredOff');
  }

  stats(): RadioStats {
    const devices: Record<string, DeviceRadioStats> = {};
    const totals = emptyLinkStats();
    for (const slot of this.slots.values()) {
      const link = emptyLinkStats();
      addLinkStats(link, slot.link);
      const gatt = { ...slot.gatt };
      if (slot.connection) {
        addLinkStats(link, slot.connection.link.stats);
        addCounters(gatt, slot.connection.gatt.counters);
      }
      devices[slot.address] = { connections: slot.connections, connected: slot.connection?.state === 'up', link, gatt, bytesOnAir: this.bytesOnAir(link) };
    }
    addLinkStats(totals, this.linkLayer.totals);
    return { link: this.profile.name, adapterState: this.state, totals, bytesOnAir: this.bytesOnAir(totals), devices, faults: [...this.faults.log] };
  }

  /** Devices connected now (addresses). */
  connectedDevices(): string[] {
    return [...this.slots.values()].filter((s) => s.connection?.state === 'up').map((s) => s.address);
  }

  // ---- called by SimBindings ----

  init(): void {
    this.later(() => {
      this.bindings.emit('addressChange', this.adapterAddress);
      this.bindings.emit('stateChange', this.state);
    });
  }

  startScanning(uuids: string[], allowDuplicates: boolean): void {
    if (this.state !== 'poweredOn') return; // noble checks the state before it asks
    this.scanning = { uuids: uuids.map((u) => u.toLowerCase().replace(/-/g, '')), allowDuplicates };
    this.later(() => this.bindings.emit('scanStart', !allowDuplicates));
    for (const slot of this.slots.values()) this.ensureAdvertising(slot);
  }

  stopScanning(): void {
    this.scanning = null;
    this.later(() => this.bindings.emit('scanStop'));
  }

  connect(id: string): void {
    const fail = (message: string) => this.later(() => this.bindings.emit('connect', id, new Error(message)));
    if (this.state !== 'poweredOn') return fail(`adapter is ${this.state}`);
    const slot = this.slots.get(id);
    if (slot?.connection) return fail('Connection Already Exists (0xb)');
    const busy = [...this.slots.values()].filter((s) => s.connection).length;
    if (busy >= this.maxConnections) return fail('Connection Limit Exceeded (0x9)');
    if (this.pendingConnect === id || this.connectQueue.includes(id)) return;
    this.connectQueue.push(id);
    this.nextConnect();
  }

  cancelConnect(id: string): void {
    const i = this.connectQueue.indexOf(id);
    if (i >= 0) this.connectQueue.splice(i, 1);
    if (this.pendingConnect === id) {
      this.pendingConnect = null;
      this.nextConnect();
    }
  }

  disconnect(id: string): void {
    const slot = this.slots.get(id);
    const c = slot?.connection;
    if (!slot || !c || c.state !== 'up') return;
    c.state = 'closing';
    this.linkLayer.send(c.link, 'toPeripheral', ATT.llTerminateInd, () => this.endConnection(slot, HCI_REASON.localHostTerminated, true), true);
  }

  gatt(id: string): GattConnection | undefined {
    const c = this.slots.get(id)?.connection;
    return c && c.state === 'up' ? c.gatt : undefined;
  }

  rssi(id: string): number | undefined {
    return this.slots.get(id)?.rssi;
  }

  // ---- internals ----

  private slot(address: string): DeviceSlot {
    const slot = this.slots.get(peripheralId(address));
    if (!slot) throw new OtaError('DEVICE_NOT_FOUND', `no simulated device with address ${address} on this radio`);
    return slot;
  }

  private hostFor(slot: DeviceSlot): PeripheralHost {
    return {
      clock: this.clock,
      notify: (service, characteristic, data) => {
        const c = slot.connection;
        if (c && c.state === 'up' && this.slots.get(slot.id) === slot) c.gatt.notifyFromDevice(service, characteristic, data);
        else slot.gatt.notificationsDropped++;
      },
      dropConnection: () => {
        const c = slot.connection;
        if (!c || c.state !== 'up') return;
        c.state = 'closing';
        this.linkLayer.send(c.link, 'toCentral', ATT.llTerminateInd, () => this.endConnection(slot, HCI_REASON.remoteUserTerminated, false), true);
      },
      advertisingChanged: () => this.ensureAdvertising(slot),
    };
  }

  private nextConnect(): void {
    while (!this.pendingConnect && this.connectQueue.length > 0) {
      const id = this.connectQueue.shift() as string;
      this.pendingConnect = id;
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

  private wantsAdvertising(slot: DeviceSlot): boolean {
    return this.slots.get(slot.id) === slot && !slot.connection && this.state === 'poweredOn' && (this.scanning !== null || this.pendingConnect === slot.id);
  }

  private advertisingEvent(slot: DeviceSlot): void {
    slot.advTimer = null;
    if (!this.wantsAdvertising(slot)) return;
    const adv = slot.vanished ? null : slot.device.advertisement();
    if (adv) {
      if (this.scanning) this.report(slot, adv);
      if (this.pendingConnect === slot.id) {
        this.establish(slot);
        return;
      }
    }
    slot.advTimer = this.clock.setTimer(() => this.advertisingEvent(slot), slot.advIntervalMs);
  }

  private report(slot: DeviceSlot, adv: NonNullable<ReturnType<VirtualPeripheral['advertisement']>>): void {
    const scan = this.scanning;
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
    this.bindings.emit('discover', slot.id, slot.address, 'public', true, advertisement, slot.rssi, true);
  }

  /** CONNECT_IND sent at this advertising event; the link starts at its first anchor. */
  private establish(slot: DeviceSlot): void {
    const id = slot.id;
    const earliest = this.clock.now() + (this.profile.zeroLatency ? 0 : TRANSMIT_WINDOW_DELAY_MS);
    const link = this.linkLayer.open(id, earliest);
    // Reserve the device so that a second connect fails and advertising stops.
    const gatt = new GattConnection({
      id,
      device: slot.device,
      link: this.linkLayer,
      conn: link,
      centralMtu: this.profile.attMtu,
      emit: (event, ...args) => this.bindings.emit(event, ...args),
      filterWrite: (data, withoutResponse, characteristic) => this.faults.onWrite(slot.address, data, withoutResponse, characteristic),
      onLinkLost: () => this.loseLink(slot, true),
      observe: (kind, characteristic, data) => this.onGattTraffic?.({ kind, address: slot.address, characteristic, data, at: this.clock.now() }),
    });
    slot.connection = { link, gatt, state: 'up' };
    slot.connections++;
    this.clock.setTimer(() => {
      if (this.pendingConnect === id) this.pendingConnect = null;
      if (slot.connection?.link !== link || link.closed) {
        this.bindings.emit('connect', id, new Error('Connection Failed to be Established (0x3e)'));
      } else {
        this.bindings.emit('connect', id, null);
        gatt.start();
      }
      this.nextConnect();
    }, link.firstAnchor - this.clock.now());
  }

  /** The air link dies now; both sides notice after the supervision timeout. */
  private loseLink(slot: DeviceSlot, deviceNotices: boolean): void {
    const c = slot.connection;
    if (!c || c.state === 'lost') return;
    c.state = 'lost';
    c.gatt.end();
    this.linkLayer.close(c.link);
    this.clock.setTimer(() => {
      if (slot.connection === c) this.endConnection(slot, HCI_REASON.connectionTimeout, deviceNotices);
    }, this.profile.supervisionTimeoutMs);
  }

  private endConnection(slot: DeviceSlot, reason: number, deviceNotices: boolean): void {
    const c = slot.connection;
    if (!c) return;
    c.gatt.end();
    this.linkLayer.close(c.link);
    addLinkStats(slot.link, c.link.stats);
    addCounters(slot.gatt, c.gatt.counters);
    slot.connection = null;
    if (deviceNotices) slot.device.onDisconnect();
    this.bindings.emit('disconnect', slot.id, reason);
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
