/**
 * AdapterScheduler: the one owner of a BleCentral (one noble instance per adapter). It shares the
 * adapter between concurrent operations: at most maxConnections links at a time (FIFO queue), one
 * session per device (a second request waits, or fails DEVICE_BUSY when asked not to wait), one scan
 * fanned out to every consumer and feeding a cache of seen devices (used to resolve names), scanning
 * paused while connecting on adapters that cannot do both, and a clean shutdown that aborts queued and
 * running work through AbortSignals and disconnects every link.
 */
import { EventEmitter } from 'events';
import type { BleCentral, BleConnection, DeviceRef, DiscoveredDevice, ScanHandle } from './central';
import { abortable, abortableSleep, abortError, anySignal, releaseSignal, throwIfAborted, withAnySignal } from './abort';
import type { Clock } from '../clock';
import { OtaError } from '../errors';
import { SetupPriority, type SetupToken } from './setup-priority';

export interface SchedulerOptions {
  /** Links open at the same time (default 4). */
  maxConnections?: number;
  /** Stop scanning while a connection is being set up (some controllers cannot do both). Default false. */
  pauseScanWhileConnecting?: boolean;
  /** Keep a background scan running so the device cache stays fresh. Default false. */
  continuousScan?: boolean;
  /** How long to wait for the adapter to power on (ms, default 10000). */
  readyTimeoutMs?: number;
  /** Connect timeout (ms, default 10000). */
  connectTimeoutMs?: number;
  /** A cached sighting older than this is not used to resolve a device (ms, default 120000). */
  cacheTtlMs?: number;
}

export interface FindOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Only sightings at or after this clock time count (e.g. the device's return after a reboot). */
  seenAfter?: number;
}

export interface SessionOptions {
  signal?: AbortSignal;
  /** Wait while another session holds the device (default true); false fails with DEVICE_BUSY. */
  wait?: boolean;
  /** How long to look for the device (ms, default 10000). */
  findTimeoutMs?: number;
}

export interface ScanRequest {
  durationMs: number;
  services?: string[];
  signal?: AbortSignal;
}

/** What a session's callback gets: the resolved device and a way to open links to it. */
export interface DeviceSession {
  readonly device: DiscoveredDevice;
  /** Aborts when the caller cancels or the scheduler closes. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  /** Opens a link (waits for a free connection slot first). The slot is released when the link drops. */
  connect(options?: { timeoutMs?: number }): Promise<BleConnection>;
  /** Looks for the device again (after a reboot), updating `device`. */
  rediscover(options?: FindOptions): Promise<DiscoveredDevice>;
  /**
   * A bulk sender calls this before each burst of data: this session's links are set up, and it waits
   * while another link of the adapter is being set up (lib/ble/setup-priority.ts).
   */
  yieldToSetups(): Promise<void>;
}

type DeviceSpec = string | DeviceRef;

interface DeviceLock {
  aliases: Set<string>;
  waiters: Array<() => void>;
}

interface Slot {
  release(): void;
}

function aliasesOf(spec: DeviceSpec | DiscoveredDevice): string[] {
  if (typeof spec === 'string') return [spec.toLowerCase()];
  return [spec.id, spec.address, spec.name].filter((s) => !!s).map((s) => s.toLowerCase());
}

function specLabel(spec: DeviceSpec): string {
  return typeof spec === 'string' ? spec : spec.name || spec.address || spec.id;
}

function matches(device: DiscoveredDevice, spec: DeviceSpec): boolean {
  if (typeof spec === 'string') {
    const s = spec.toLowerCase();
    return device.id.toLowerCase() === s || (device.address !== '' && device.address === s) || device.name === spec;
  }
  if (spec.id && device.id === spec.id) return true;
  if (spec.address && device.address === spec.address.toLowerCase()) return true;
  return !spec.id && !spec.address && !!spec.name && device.name === spec.name;
}

export class AdapterScheduler extends EventEmitter {
  readonly central: BleCentral;
  readonly clock: Clock;
  private readonly maxConnections: number;
  private readonly options: Required<Omit<SchedulerOptions, 'maxConnections'>>;
  private readonly cache = new Map<string, DiscoveredDevice>();
  private readonly scanConsumers = new Set<(d: DiscoveredDevice) => void>();
  private scanHandle: ScanHandle | null = null;
  private scanTransition: Promise<void> = Promise.resolve();
  private connectingCount = 0;
  private readonly locks: DeviceLock[] = [];
  private readonly slotWaiters: Array<() => void> = [];
  private slotsInUse = 0;
  private readonly links = new Set<BleConnection>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly shutdown = new AbortController();
  private backgroundConsumer: ((d: DiscoveredDevice) => void) | null = null;
  private readonly setupPriority: SetupPriority;

  constructor(central: BleCentral, options: SchedulerOptions = {}) {
    super();
    this.central = central;
    this.clock = central.clock;
    this.setupPriority = new SetupPriority(central.clock);
    this.maxConnections = Math.max(1, Math.floor(options.maxConnections ?? 4));
    this.options = {
      pauseScanWhileConnecting: options.pauseScanWhileConnecting ?? false,
      continuousScan: options.continuousScan ?? false,
      readyTimeoutMs: options.readyTimeoutMs ?? 10000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10000,
      cacheTtlMs: options.cacheTtlMs ?? 120000,
    };
    central.on('stateChange', (state: string) => {
      if (state === 'poweredOn' && this.options.continuousScan) this.startBackgroundScan().catch(() => undefined);
      if (state !== 'poweredOn') this.scanHandle = null;
    });
  }

  get closed(): boolean {
    return this.shutdown.signal.aborted;
  }

  /** Open links, links waiting for a slot, sessions running (queued included). */
  stats(): { connections: number; waitingForSlot: number; sessions: number; maxConnections: number } {
    return { connections: this.slotsInUse, waitingForSlot: this.slotWaiters.length, sessions: this.running.size, maxConnections: this.maxConnections };
  }

  /** Devices seen by any scan, newest sighting each. */
  knownDevices(): DiscoveredDevice[] {
    return [...this.cache.values()];
  }

  async ready(signal?: AbortSignal): Promise<void> {
    this.assertOpen();
    await withAnySignal([signal, this.shutdown.signal], (s) => abortable(this.central.waitReady(this.options.readyTimeoutMs), s));
    if (this.options.continuousScan) await this.startBackgroundScan();
  }

  /** Scans for durationMs and returns the devices seen (latest sighting each). */
  scan(request: ScanRequest, onDevice?: (d: DiscoveredDevice) => void): Promise<DiscoveredDevice[]> {
    return withAnySignal([request.signal, this.shutdown.signal], (signal) => this.scanUntil(request, signal, onDevice));
  }

  private async scanUntil(request: ScanRequest, signal: AbortSignal, onDevice?: (d: DiscoveredDevice) => void): Promise<DiscoveredDevice[]> {
    await this.ready(signal);
    const services = (request.services ?? []).map((s) => s.toLowerCase().replace(/-/g, ''));
    const found = new Map<string, DiscoveredDevice>();
    const consumer = (d: DiscoveredDevice) => {
      if (services.length && !services.some((s) => d.advertisement.serviceUuids.includes(s))) return;
      const first = !found.has(d.id);
      found.set(d.id, d);
      if (first) onDevice?.(d);
    };
    await this.addScanConsumer(consumer);
    try {
      await abortableSleep(this.clock, request.durationMs, signal);
    } finally {
      await this.removeScanConsumer(consumer);
    }
    return [...found.values()];
  }

  /** Resolves a device by id, address or name: from the cache, else by scanning until timeoutMs. */
  findDevice(spec: DeviceSpec, options: FindOptions = {}): Promise<DiscoveredDevice> {
    return withAnySignal([options.signal, this.shutdown.signal], (signal) => this.findDeviceUntil(spec, options, signal));
  }

  private async findDeviceUntil(spec: DeviceSpec, options: FindOptions, signal: AbortSignal): Promise<DiscoveredDevice> {
    await this.ready(signal);
    const fresh = (d: DiscoveredDevice) =>
      matches(d, spec) && d.seenAt >= (options.seenAfter ?? this.clock.now() - this.options.cacheTtlMs);
    const cached = [...this.cache.values()].filter(fresh).sort((a, b) => b.seenAt - a.seenAt)[0];
    if (cached) return cached;
    const timeoutMs = options.timeoutMs ?? 10000;
    let consumer: ((d: DiscoveredDevice) => void) | undefined;
    let timer: { cancel(): void } | undefined;
    const found = new Promise<DiscoveredDevice>((resolve, reject) => {
      consumer = (d) => {
        if (fresh(d)) resolve(d);
      };
      timer = this.clock.setTimer(
        () =>
          reject(
            new OtaError('DEVICE_NOT_FOUND', `no device "${specLabel(spec)}" answered a scan of ${timeoutMs / 1000} s; check that it is powered, advertising and in range`, {
              device: specLabel(spec),
              timeoutMs,
            }),
          ),
        timeoutMs,
      );
    });
    const listener = consumer as (d: DiscoveredDevice) => void;
    await this.addScanConsumer(listener);
    try {
      return await abortable(found, signal);
    } finally {
      timer?.cancel();
      await this.removeScanConsumer(listener);
    }
  }

  /**
   * Runs fn with exclusive use of one device. The callback opens links through the session; they are
   * closed when fn settles. Aborting `signal` aborts session.signal (fn should stop promptly);
   * closing the scheduler also drops the links at once.
   */
  session<T>(spec: DeviceSpec, fn: (session: DeviceSession) => Promise<T>, options: SessionOptions = {}): Promise<T> {
    const run = this.runSession(spec, fn, options);
    const tracked = run.catch(() => undefined);
    this.running.add(tracked);
    tracked.finally(() => this.running.delete(tracked)).catch(() => undefined);
    return run;
  }

  /** One link to a device for the duration of fn (a session with a single connection). */
  withConnection<T>(spec: DeviceSpec, fn: (connection: BleConnection, device: DiscoveredDevice) => Promise<T>, options: SessionOptions & { connectTimeoutMs?: number } = {}): Promise<T> {
    return this.session(spec, async (s) => fn(await s.connect({ timeoutMs: options.connectTimeoutMs }), s.device), options);
  }

  /** Aborts queued and running work, disconnects every link, stops scanning. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) this.shutdown.abort(new OtaError('ADAPTER_CLOSED', 'the adapter is shutting down; the operation was aborted'));
    await Promise.all([...this.links].map((l) => l.disconnect().catch(() => undefined)));
    // Sessions see their signal abort; give them a moment (clock time) to send ABORT and unwind.
    const settled = Promise.all([...this.running]);
    await Promise.race([settled, abortableSleep(this.clock, 5000)]);
    this.scanConsumers.clear();
    await this.updateScan();
  }

  private assertOpen(): void {
    if (this.closed) throw abortError(this.shutdown.signal);
  }

  private async runSession<T>(spec: DeviceSpec, fn: (session: DeviceSession) => Promise<T>, options: SessionOptions): Promise<T> {
    this.assertOpen();
    const controller = new AbortController();
    const signal = anySignal([options.signal, this.shutdown.signal]);
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    let lock: DeviceLock;
    try {
      lock = await this.lockDevice(spec, controller.signal, options.wait !== false);
    } catch (err) {
      signal.removeEventListener('abort', onAbort);
      releaseSignal(signal);
      throw err;
    }
    const links = new Set<BleConnection>();
    const setups = new Set<SetupToken>();
    // Links stay up on abort until fn returns, so fn can tell the device (e.g. ABORT a transfer);
    // close() drops every link itself.
    const dropLinks = () => Promise.all([...links].map((l) => l.disconnect().catch(() => undefined)));
    try {
      let device = await this.findDevice(spec, { timeoutMs: options.findTimeoutMs, signal: controller.signal });
      for (const a of aliasesOf(device)) lock.aliases.add(a);
      const session: DeviceSession = {
        get device() {
          return device;
        },
        signal: controller.signal,
        clock: this.clock,
        connect: async (o = {}) => {
          // The link's set-up begins once it holds a connection slot (a queued connect holds nobody back).
          const setup = this.setupPriority.deferred();
          setups.add(setup);
          let link: BleConnection;
          try {
            link = await this.openLink(device, o.timeoutMs ?? this.options.connectTimeoutMs, controller.signal, () => setup.begin());
          } catch (err) {
            setup.end();
            throw err;
          }
          links.add(link);
          link.once('disconnect', () => {
            links.delete(link);
            setup.end();
          });
          return link;
        },
        yieldToSetups: async () => {
          for (const setup of setups) setup.end();
          setups.clear();
          await this.setupPriority.yieldTo(controller.signal);
        },
        rediscover: async (o = {}) => {
          device = await withAnySignal([o.signal, controller.signal], (signal) => this.findDevice(device, { ...o, signal }));
          return device;
        },
      };
      return await fn(session);
    } finally {
      signal.removeEventListener('abort', onAbort);
      releaseSignal(signal);
      await dropLinks();
      for (const setup of setups) setup.end();
      this.unlockDevice(lock);
    }
  }

  private async lockDevice(spec: DeviceSpec, signal: AbortSignal, wait: boolean): Promise<DeviceLock> {
    const wanted = new Set(aliasesOf(spec));
    for (const d of this.cache.values()) if (matches(d, spec)) for (const a of aliasesOf(d)) wanted.add(a);
    for (;;) {
      throwIfAborted(signal);
      const held = this.locks.find((l) => [...wanted].some((a) => l.aliases.has(a)));
      if (!held) {
        const lock: DeviceLock = { aliases: wanted, waiters: [] };
        this.locks.push(lock);
        return lock;
      }
      if (!wait) {
        throw new OtaError('DEVICE_BUSY', `device "${specLabel(spec)}" is busy with another operation on this adapter; try again when it has finished`, { device: specLabel(spec) });
      }
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      held.waiters.push(wake);
      await abortable(woken, signal, () => held.waiters.splice(held.waiters.indexOf(wake) >>> 0, 1));
    }
  }

  private unlockDevice(lock: DeviceLock): void {
    this.locks.splice(this.locks.indexOf(lock), 1);
    for (const wake of lock.waiters.splice(0)) wake();
  }

  /** onSlot: called once a connection slot is held, right before the connect (the link's set-up begins). */
  private async openLink(device: DiscoveredDevice, timeoutMs: number, signal: AbortSignal, onSlot?: () => void): Promise<BleConnection> {
    const slot = await this.acquireSlot(signal);
    onSlot?.();
    let link: BleConnection | undefined;
    try {
      this.connectingCount++;
      if (this.options.pauseScanWhileConnecting) await this.updateScan();
      const connecting = this.central.connect(device.id, { timeoutMs });
      // An abort cannot stop noble's connect; a link that arrives late is dropped at once.
      link = await abortable(connecting, signal, () => connecting.then((l) => l.disconnect()).catch(() => undefined));
    } catch (err) {
      slot.release();
      throw err;
    } finally {
      this.connectingCount--;
      if (this.options.pauseScanWhileConnecting) this.updateScan().catch(() => undefined);
    }
    const opened = link;
    this.links.add(opened);
    opened.once('disconnect', () => {
      this.links.delete(opened);
      slot.release();
    });
    if (!opened.connected) {
      this.links.delete(opened);
      slot.release();
    }
    return opened;
  }

  private async acquireSlot(signal: AbortSignal): Promise<Slot> {
    while (this.slotsInUse >= this.maxConnections) {
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      this.slotWaiters.push(wake);
      await abortable(woken, signal, () => {
        const i = this.slotWaiters.indexOf(wake);
        if (i >= 0) this.slotWaiters.splice(i, 1);
      });
    }
    throwIfAborted(signal);
    this.slotsInUse++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.slotsInUse--;
        this.slotWaiters.shift()?.();
      },
    };
  }

  private async startBackgroundScan(): Promise<void> {
    if (this.backgroundConsumer) return;
    this.backgroundConsumer = () => undefined;
    await this.addScanConsumer(this.backgroundConsumer);
  }

  private async addScanConsumer(consumer: (d: DiscoveredDevice) => void): Promise<void> {
    this.scanConsumers.add(consumer);
    await this.updateScan();
  }

  private async removeScanConsumer(consumer: (d: DiscoveredDevice) => void): Promise<void> {
    this.scanConsumers.delete(consumer);
    await this.updateScan().catch(() => undefined);
  }

  /** Keeps the one central scan running exactly while someone listens and no connect needs a pause. */
  private updateScan(): Promise<void> {
    const step = this.scanTransition.then(async () => {
      const paused = this.options.pauseScanWhileConnecting && this.connectingCount > 0;
      const wanted = this.scanConsumers.size > 0 && !paused && this.central.state === 'poweredOn';
      if (wanted && !this.scanHandle) {
        this.scanHandle = await this.central.startScan({ allowDuplicates: true }, (d) => this.onSighting(d));
      } else if (!wanted && this.scanHandle) {
        const handle = this.scanHandle;
        this.scanHandle = null;
        await handle.stop();
      }
    });
    this.scanTransition = step.catch(() => undefined);
    return step;
  }

  private onSighting(device: DiscoveredDevice): void {
    this.cache.set(device.id, device);
    for (const consumer of [...this.scanConsumers]) consumer(device);
    this.emit('discover', device);
  }
}
