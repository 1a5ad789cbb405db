/**
 * BleCentral on @abandonware/noble. The same code runs on a real HCI adapter (noble with its own
 * bindings, loaded lazily through loadRealNoble so machines without Bluetooth get an OtaError instead
 * of a crash) and on the simulator (noble's own hci-socket layer on lib/sim's virtual HCI controller).
 * noble allows one scan at a time per instance, so scans are multiplexed: noble scans with duplicates
 * while at least one consumer listens, and each consumer gets its own filtering.
 */
import { EventEmitter } from 'events';
import type { AdapterState, BleCentral, BleConnection, ConnectOptions, DiscoveredDevice, ScanHandle, ScanOptions } from './central';
import { NobleConnection, normalizeUuid } from './noble-connection';
import type { Noble, NoblePeripheral } from './noble-types';
import { realClock, withTimeout, type Clock } from '../clock';
import { OtaError } from '../errors';

export interface NobleCentralOptions {
  clock?: Clock;
  /** Shown in error messages ("hci0", "simulated fleet"). */
  adapterName?: string;
  /** Default connect timeout (clock ms) when the caller gives none. */
  connectTimeoutMs?: number;
}

/** A noble instance, or a function that creates one on first use (so loading errors surface late and typed). */
export type NobleSource = Noble | (() => Noble);

interface ScanConsumer {
  services: string[];
  allowDuplicates: boolean;
  reported: Set<string>;
  onDevice: (device: DiscoveredDevice) => void;
}

interface SeenPeripheral {
  peripheral: NoblePeripheral;
  device: DiscoveredDevice;
}

const ADAPTER_STATES: AdapterState[] = ['unknown', 'resetting', 'unsupported', 'unauthorized', 'poweredOff', 'poweredOn'];

/** Loads noble with its platform bindings (HCI socket on Linux). Throws OtaError ADAPTER_MISSING when it cannot. */
export function loadRealNoble(options: { deviceId?: number } = {}): Noble {
  try {
    // Required here, not at module load: the HCI bindings need a native module and a Bluetooth stack.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const withCustomBinding = require('@abandonware/noble/with-custom-binding') as (o: object) => Noble;
    return withCustomBinding(options.deviceId === undefined ? {} : { deviceId: options.deviceId });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new OtaError(
      'ADAPTER_MISSING',
      `no usable Bluetooth adapter: the BLE library could not be loaded on this machine (${why}). Use --sim for a simulated fleet.`,
      { cause: why },
    );
  }
}

class NobleCentral extends EventEmitter implements BleCentral {
  readonly clock: Clock;
  private nobleInstance: Noble | null = null;
  private loadError: OtaError | null = null;
  private adapterState: AdapterState = 'unknown';
  private readonly seen = new Map<string, SeenPeripheral>();
  private readonly consumers = new Set<ScanConsumer>();
  private readonly connections = new Set<NobleConnection>();
  private nobleScanning = false;
  private scanTransition: Promise<void> = Promise.resolve();
  private lastWarning = '';
  private closed = false;
  private readonly adapterName: string;
  private readonly connectTimeoutMs: number;

  private readonly onStateChange = (state: string) => this.setState(state);
  private readonly onDiscover = (p: NoblePeripheral) => this.handleDiscover(p);
  private readonly onWarning = (message: string) => (this.lastWarning = String(message));
  private readonly onScanStop = () => (this.nobleScanning = false);

  constructor(private readonly source: NobleSource, options: NobleCentralOptions) {
    super();
    this.clock = options.clock ?? realClock;
    this.adapterName = options.adapterName ?? 'Bluetooth adapter';
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    if (typeof source !== 'function') this.attach(source);
  }

  get state(): AdapterState {
    return this.adapterState;
  }

  /** Devices seen in any scan so far (newest sighting each). */
  knownDevices(): DiscoveredDevice[] {
    return [...this.seen.values()].map((s) => s.device);
  }

  async waitReady(timeoutMs: number): Promise<void> {
    this.noble();
    if (this.adapterState === 'poweredOn') return;
    if (this.adapterState === 'unsupported') throw this.notReadyError();
    const ready = new Promise<void>((resolve, reject) => {
      const onState = (state: AdapterState) => {
        if (state === 'poweredOn') {
          this.removeListener('stateChange', onState);
          resolve();
        } else if (state === 'unsupported') {
          this.removeListener('stateChange', onState);
          reject(this.notReadyError());
        }
      };
      this.on('stateChange', onState);
    });
    await withTimeout(this.clock, ready, timeoutMs, () => this.notReadyError(timeoutMs));
  }

  async startScan(options: ScanOptions, onDevice: (device: DiscoveredDevice) => void): Promise<ScanHandle> {
    this.assertPoweredOn();
    const consumer: ScanConsumer = {
      services: (options.services ?? []).map(normalizeUuid),
      allowDuplicates: options.allowDuplicates === true,
      reported: new Set(),
      onDevice,
    };
    this.consumers.add(consumer);
    try {
      await this.updateNobleScan();
    } catch (err) {
      this.consumers.delete(consumer);
      throw err;
    }
    let stopped = false;
    return {
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.consumers.delete(consumer);
        await this.updateNobleScan();
      },
    };
  }

  async connect(idOrAddress: string, options: ConnectOptions = {}): Promise<BleConnection> {
    this.assertPoweredOn();
    const entry = this.lookup(idOrAddress);
    if (!entry) {
      throw new OtaError('DEVICE_NOT_FOUND', `device "${idOrAddress}" has not been seen by ${this.adapterName}; scan first and check that it is powered and in range`, { device: idOrAddress });
    }
    const { peripheral, device } = entry;
    const label = device.name ? `${device.name} (${device.address || device.id})` : device.address || device.id;
    if (peripheral.state === 'connected' || peripheral.state === 'connecting') {
      throw new OtaError('DEVICE_BUSY', `${label} already has a connection from this adapter`, { device: device.id });
    }
    const timeoutMs = options.timeoutMs ?? this.connectTimeoutMs;
    const connected = new Promise<void>((resolve, reject) => {
      peripheral.connect((error?: unknown) => {
        if (error) reject(new OtaError('CONNECT_FAILED', `connecting to ${label} failed: ${error instanceof Error ? error.message : String(error)}`, { device: device.id }));
        else resolve();
      });
    });
    try {
      await withTimeout(this.clock, connected, timeoutMs, () => new OtaError('CONNECT_TIMEOUT', `${label} did not accept a connection within ${timeoutMs / 1000} s`, { device: device.id, timeoutMs }));
    } catch (err) {
      connected.catch(() => undefined);
      if ((err as OtaError).code === 'CONNECT_TIMEOUT') {
        peripheral.cancelConnect();
        // The cancel can cross the completion (the controller sent CONNECT_IND already: LE Create
        // Connection Cancel gets Command Disallowed and the link comes up). Nobody wants that link.
        peripheral.once('connect', (error?: unknown) => {
          if (!error && peripheral.state === 'connected') peripheral.disconnect();
        });
      }
      throw err;
    }
    const connection = new NobleConnection(peripheral, this.clock, label);
    this.connections.add(connection);
    connection.once('disconnect', () => this.connections.delete(connection));
    return connection;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.consumers.clear();
    await Promise.all([...this.connections].map((c) => c.disconnect()));
    if (this.nobleInstance) {
      if (this.nobleScanning) await this.stopNobleScan();
      this.detach(this.nobleInstance);
    }
  }

  private noble(): Noble {
    if (this.nobleInstance) return this.nobleInstance;
    if (this.loadError) throw this.loadError;
    try {
      this.attach((this.source as () => Noble)());
    } catch (err) {
      this.loadError = err instanceof OtaError ? err : new OtaError('ADAPTER_MISSING', `${this.adapterName} could not be opened: ${err instanceof Error ? err.message : String(err)}`);
      this.adapterState = 'unsupported';
      throw this.loadError;
    }
    return this.nobleInstance as unknown as Noble;
  }

  private attach(noble: Noble): void {
    this.nobleInstance = noble;
    noble.on('warning', this.onWarning);
    noble.on('discover', this.onDiscover);
    noble.on('scanStop', this.onScanStop);
    // Listening to stateChange makes noble initialise its bindings on the next tick.
    noble.on('stateChange', this.onStateChange);
    // A noble that someone already initialised will not repeat its state: take it as it is.
    const current = (noble as unknown as { _state?: string })._state;
    if (current && current !== 'unknown') this.setState(current);
  }

  private detach(noble: Noble): void {
    noble.removeListener('warning', this.onWarning);
    noble.removeListener('discover', this.onDiscover);
    noble.removeListener('scanStop', this.onScanStop);
    noble.removeListener('stateChange', this.onStateChange);
  }

  private setState(state: string): void {
    const next = (ADAPTER_STATES as string[]).includes(state) ? (state as AdapterState) : 'unknown';
    if (next === this.adapterState) return;
    this.adapterState = next;
    if (next !== 'poweredOn') {
      this.nobleScanning = false;
      for (const c of [...this.connections]) c.markDisconnected(`${this.adapterName} is ${next}`);
    }
    this.emit('stateChange', next);
  }

  private notReadyError(waitedMs?: number): OtaError {
    if (this.loadError) return this.loadError;
    const waited = waitedMs === undefined ? '' : ` after ${waitedMs / 1000} s`;
    const warning = this.lastWarning ? ` (${this.lastWarning})` : '';
    switch (this.adapterState) {
      case 'poweredOff':
        return new OtaError('ADAPTER_OFF', `${this.adapterName} is powered off; switch Bluetooth on${warning}`, { state: this.adapterState });
      case 'unauthorized':
        return new OtaError('ADAPTER_UNAUTHORIZED', `this process may not use ${this.adapterName}; grant Bluetooth permission (Linux: cap_net_raw/cap_net_admin)${warning}`, { state: this.adapterState });
      default:
        return new OtaError('ADAPTER_MISSING', `${this.adapterName} is not available (state ${this.adapterState}${waited})${warning}`, { state: this.adapterState });
    }
  }

  private assertPoweredOn(): void {
    this.noble();
    if (this.closed) throw new OtaError('ADAPTER_CLOSED', `${this.adapterName} has been closed`);
    if (this.adapterState !== 'poweredOn') throw this.notReadyError();
  }

  private lookup(idOrAddress: string): SeenPeripheral | undefined {
    const direct = this.seen.get(idOrAddress);
    if (direct) return direct;
    const wanted = idOrAddress.toLowerCase();
    let byName: SeenPeripheral | undefined;
    for (const entry of this.seen.values()) {
      if (entry.device.address && entry.device.address.toLowerCase() === wanted) return entry;
      if (entry.device.id.toLowerCase() === wanted) return entry;
      if (entry.device.name === idOrAddress && (!byName || entry.device.seenAt > byName.device.seenAt)) byName = entry;
    }
    return byName;
  }

  private handleDiscover(peripheral: NoblePeripheral): void {
    const adv = peripheral.advertisement ?? {};
    const device: DiscoveredDevice = {
      id: peripheral.id,
      address: peripheral.address && peripheral.address !== 'unknown' ? peripheral.address.toLowerCase() : '',
      name: adv.localName ?? '',
      rssi: peripheral.rssi,
      advertisement: {
        localName: adv.localName,
        manufacturerData: adv.manufacturerData,
        serviceUuids: (adv.serviceUuids ?? []).map(normalizeUuid),
        txPowerLevel: adv.txPowerLevel,
      },
      seenAt: this.clock.now(),
    };
    this.seen.set(peripheral.id, { peripheral, device });
    this.emit('discover', device);
    for (const consumer of [...this.consumers]) {
      if (consumer.services.length && !consumer.services.some((s) => device.advertisement.serviceUuids.includes(s))) continue;
      if (!consumer.allowDuplicates) {
        if (consumer.reported.has(device.id)) continue;
        consumer.reported.add(device.id);
      }
      consumer.onDevice(device);
    }
  }

  /** Starts or stops noble's scan so that it runs exactly while someone listens; serialised. */
  private updateNobleScan(): Promise<void> {
    const step = this.scanTransition.then(async () => {
      const wanted = this.consumers.size > 0 && !this.closed;
      if (wanted && !this.nobleScanning) await this.startNobleScan();
      else if (!wanted && this.nobleScanning) await this.stopNobleScan();
    });
    this.scanTransition = step.catch(() => undefined);
    return step;
  }

  private async startNobleScan(): Promise<void> {
    const noble = this.noble();
    const started = new Promise<void>((resolve, reject) => {
      noble.startScanning([], true, (error?: Error | null) => (error ? reject(new OtaError('SCAN_FAILED', `${this.adapterName} could not start scanning: ${error.message}`)) : resolve()));
    });
    await withTimeout(this.clock, started, 5000, () => new OtaError('SCAN_FAILED', `${this.adapterName} did not start scanning within 5 s`));
    this.nobleScanning = true;
  }

  private async stopNobleScan(): Promise<void> {
    const noble = this.noble();
    const stopped = new Promise<void>((resolve) => noble.stopScanning(() => resolve()));
    this.nobleScanning = false;
    // Some bindings never confirm a stop; waiting a bounded time keeps shutdown prompt.
    await withTimeout(this.clock, stopped, 2000, () => new Error('scan stop unconfirmed')).catch(() => undefined);
  }
}

export type NobleBleCentral = BleCentral & { knownDevices(): DiscoveredDevice[] };

export function createNobleCentral(noble: NobleSource, options: NobleCentralOptions = {}): NobleBleCentral {
  return new NobleCentral(noble, options);
}

/** A central on a local HCI adapter; noble is loaded on first use (errors become ADAPTER_MISSING). */
export function createHciCentral(options: { deviceId?: number; clock?: Clock } = {}): NobleBleCentral {
  const adapterName = options.deviceId === undefined ? 'the Bluetooth adapter' : `Bluetooth adapter hci${options.deviceId}`;
  return createNobleCentral(() => loadRealNoble({ deviceId: options.deviceId }), { clock: options.clock, adapterName });
}
