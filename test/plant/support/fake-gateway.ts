/**
 * Scripted gateways for the coordinator's tests: they publish presence (with a will) and sightings, take
 * tasks and answer with execution statuses as a script says (succeed after t, fail with a code, roll back,
 * go silent, ignore cancels). FakePlant holds the devices they share: what each runs, how often it was
 * installed, and a record of every install running at once (plant-wide concurrency, one device on two
 * gateways at once).
 */
import type { Clock, TimerHandle } from '../../../lib/clock';
import type { CancelTask, DeviceSighting, ExecutionStatus, GatewayPresence, GatewaySightings, InstallTask } from '../../../lib/plant/messages';
import type { PlantBus } from '../../../lib/plant/bus';
import type { PlantTopics } from '../../../lib/plant/topics';
import type { MemoryBroker } from '../../../lib/plant/memory-bus';

export interface FakeDevice {
  address: string;
  name: string;
  version: string | null;
  /** SHA-256 of the image it runs (hex), or null. */
  runningSha: string | null;
  /** Installs that changed its image. */
  installs: number;
}

export class FakePlant {
  readonly devices = new Map<string, FakeDevice>();
  /** Address -> gateway installing it now. */
  readonly active = new Map<string, string>();
  maxActive = 0;
  /** A device that a second gateway started while the first still ran it. */
  readonly doubleRuns: string[] = [];

  add(address: string, name: string, version: string | null = '1.0.0', runningSha: string | null = null): FakeDevice {
    const device = { address, name, version, runningSha, installs: 0 };
    this.devices.set(address, device);
    return device;
  }

  begin(address: string, gateway: string): void {
    const holder = this.active.get(address);
    if (holder !== undefined && holder !== gateway) this.doubleRuns.push(`${address} on ${holder} and ${gateway}`);
    this.active.set(address, gateway);
    this.maxActive = Math.max(this.maxActive, this.active.size);
  }

  end(address: string, gateway: string): void {
    if (this.active.get(address) === gateway) this.active.delete(address);
  }
}

export type Behaviour =
  | { kind: 'succeed'; afterMs?: number }
  | { kind: 'fail'; code: string; afterMs?: number }
  | { kind: 'rollback'; afterMs?: number }
  /** Says nothing after "queued" and ignores cancels (a hung gateway). */
  | { kind: 'silent' }
  /** Succeeds after afterMs but does not answer a cancel. */
  | { kind: 'ignore-cancel'; afterMs?: number };

export type Script = (task: InstallTask, gateway: FakeGateway) => Behaviour;

export interface FakeGatewayOptions {
  broker: MemoryBroker;
  clock: Clock;
  topics: PlantTopics;
  id: string;
  plant: FakePlant;
  slots?: number;
  /** Address -> RSSI of the devices this gateway sees. */
  sees: Record<string, number>;
  script?: Script;
  sightingsEveryMs?: number;
}

interface RunningTask {
  task: InstallTask;
  behaviour: Behaviour;
  timers: TimerHandle[];
  started: boolean;
}

const DEFAULT_INSTALL_MS = 10_000;

export class FakeGateway {
  readonly id: string;
  readonly tasks: InstallTask[] = [];
  readonly cancels: CancelTask[] = [];
  /** Max of this gateway's installs running at once. */
  maxRunning = 0;
  /** Max of this gateway's tasks given and not finished (running and waiting for a slot). */
  maxOutstanding = 0;
  private bus: PlantBus | null = null;
  private readonly sees: Map<string, number>;
  private readonly running = new Map<string, RunningTask>();
  private readonly queue: RunningTask[] = [];
  private sightingTimer: TimerHandle | null = null;
  private startedAt = 0;
  private alive = false;

  constructor(private readonly o: FakeGatewayOptions) {
    this.id = o.id;
    this.sees = new Map(Object.entries(o.sees));
  }

  get slots(): number {
    return this.o.slots ?? 2;
  }

  async start(): Promise<void> {
    const { broker, topics, clock } = this.o;
    this.startedAt = clock.now();
    this.alive = true;
    this.bus = broker.connect(`gw-${this.id}`, { topic: topics.presence(this.id), payload: JSON.stringify(this.presence('offline')), retain: true });
    await this.bus.subscribe(topics.tasks(this.id), (m) => this.onTask(m.payload));
    this.publishPresence();
    this.publishSightings();
  }

  /** The gateway dies: its will goes out, nothing of it runs any more. */
  kill(): void {
    this.alive = false;
    this.o.broker.kill(`gw-${this.id}`);
    this.sightingTimer?.cancel();
    for (const r of [...this.running.values(), ...this.queue]) {
      for (const t of r.timers) t.cancel();
      this.o.plant.end(r.task.device.address, this.id);
    }
    this.running.clear();
    this.queue.length = 0;
  }

  /** Stops publishing sightings (the clock can go idle); presence stays. */
  quiet(): void {
    this.sightingTimer?.cancel();
    this.sightingTimer = null;
  }

  see(address: string, rssi: number | null): void {
    if (rssi === null) this.sees.delete(address);
    else this.sees.set(address, rssi);
  }

  publishSightings(): void {
    if (!this.alive || !this.bus) return;
    const now = this.o.clock.now();
    const devices: DeviceSighting[] = [];
    for (const [address, rssi] of this.sees) {
      const d = this.o.plant.devices.get(address);
      if (!d) continue;
      devices.push({ address, name: d.name, rssi, version: d.version, hashPrefix: d.runningSha ? d.runningSha.slice(0, 8) : null, protocol: 'v2', otaState: 'valid', sessionActive: false, lastSeen: now });
    }
    const message: GatewaySightings = { v: 1, gateway: this.id, at: now, devices };
    void this.bus.publish(this.o.topics.sightings(this.id), JSON.stringify(message), { retain: true });
    this.sightingTimer = this.o.clock.setTimer(() => this.publishSightings(), this.o.sightingsEveryMs ?? 5000);
  }

  private presence(state: 'online' | 'offline'): GatewayPresence {
    return {
      v: 1,
      gateway: this.id,
      state,
      at: state === 'offline' ? this.startedAt : this.o.clock.now(),
      slots: { total: this.slots, free: Math.max(0, this.slots - this.running.size) },
      adapter: { label: 'fake', simulated: true },
      software: 'test',
    };
  }

  private publishPresence(): void {
    if (this.alive && this.bus) void this.bus.publish(this.o.topics.presence(this.id), JSON.stringify(this.presence('online')), { retain: true });
  }

  private status(task: InstallTask, state: ExecutionStatus['state'], extra: Partial<ExecutionStatus> = {}): void {
    if (!this.alive || !this.bus) return;
    const message: ExecutionStatus = { v: 1, campaign: task.campaign, taskId: task.taskId, gateway: this.id, device: task.device, state, at: this.o.clock.now(), ...extra };
    void this.bus.publish(this.o.topics.execution(task.campaign, task.device.address), JSON.stringify(message), { retain: true });
  }

  private onTask(payload: Buffer): void {
    if (!this.alive) return;
    let message: InstallTask | CancelTask;
    try {
      message = JSON.parse(payload.toString()) as InstallTask | CancelTask;
    } catch {
      return;
    }
    if (message.type === 'cancel') {
      this.cancels.push(message);
      this.onCancel(message);
      return;
    }
    this.tasks.push(message);
    const behaviour = this.o.script ? this.o.script(message, this) : { kind: 'succeed' as const };
    const r: RunningTask = { task: message, behaviour, timers: [], started: false };
    this.status(message, 'queued');
    this.queue.push(r);
    this.maxOutstanding = Math.max(this.maxOutstanding, this.queue.length + this.running.size);
    this.next();
  }

  private next(): void {
    while (this.alive && this.running.size < this.slots && this.queue.length > 0) {
      const r = this.queue.shift() as RunningTask;
      this.running.set(r.task.taskId, r);
      this.maxRunning = Math.max(this.maxRunning, this.running.size);
      this.run(r);
    }
    this.publishPresence();
  }

  private run(r: RunningTask): void {
    const { task, behaviour } = r;
    const device = this.o.plant.devices.get(task.device.address);
    r.started = true;
    this.o.plant.begin(task.device.address, this.id);
    const before = { version: device?.version ?? null, sha256: device?.runningSha ?? null };
    const after = (ms: number, fn: () => void) => r.timers.push(this.o.clock.setTimer(fn, ms));
    if (device && device.runningSha === task.image.sha256) {
      // Exactly once: the device already runs the image; verify only.
      after(1000, () => this.done(r, 'succeeded', { before, after: before, installed: false }));
      return;
    }
    if (behaviour.kind === 'silent') return;
    const total = behaviour.afterMs ?? DEFAULT_INSTALL_MS;
    after(total / 2, () => this.status(task, 'in-progress', { progress: { phase: 'transfer', percent: 50, bytesSent: 1, bytesTotal: 2 }, before }));
    after(total, () => {
      if (behaviour.kind === 'fail') {
        this.done(r, 'failed', { before, error: { code: behaviour.code, message: `scripted ${behaviour.code}` } });
        return;
      }
      if (behaviour.kind === 'rollback') {
        this.done(r, 'rolled-back', { before, after: before, error: { code: 'DIAGNOSTICS_FAILED', message: 'scripted rollback' } });
        return;
      }
      if (device) {
        device.runningSha = task.image.sha256;
        device.version = task.image.version;
        device.installs++;
      }
      this.done(r, 'succeeded', { before, after: { version: task.image.version, sha256: task.image.sha256 }, installed: true });
    });
  }

  private done(r: RunningTask, state: ExecutionStatus['state'], extra: Partial<ExecutionStatus>): void {
    for (const t of r.timers) t.cancel();
    this.running.delete(r.task.taskId);
    this.o.plant.end(r.task.device.address, this.id);
    this.status(r.task, state, extra);
    this.next();
  }

  private onCancel(cancel: CancelTask): void {
    const queued = this.queue.findIndex((r) => r.task.taskId === cancel.taskId);
    if (queued >= 0) {
      const [r] = this.queue.splice(queued, 1);
      this.status(r.task, 'cancelled', { error: { code: 'CANCELLED', message: cancel.reason } });
      return;
    }
    const r = this.running.get(cancel.taskId);
    if (!r || r.behaviour.kind === 'silent' || r.behaviour.kind === 'ignore-cancel') return;
    this.done(r, 'cancelled', { error: { code: 'CANCELLED', message: cancel.reason } });
  }
}
