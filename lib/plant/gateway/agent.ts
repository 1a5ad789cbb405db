/**
 * GatewayAgent: one gateway's part in a plant rollout (docs/FLEET.md). On the plant's bus it publishes
 * its presence (retained; the MQTT will of presenceWill() says "offline" when it dies), the devices its
 * continuous low-duty scan sees (retained sightings), and the execution status of every install task
 * addressed to it (retained, per campaign and device). Tasks run at most `slots` at once, the others wait
 * in arrival order; each has its timeout from its arrival (TASK_TIMEOUT) and can be cancelled; a device
 * that already has a task here refuses a second one (DEVICE_BUSY_IN_PLANT). Bad payloads are dropped with
 * a warning; a broker outage does not stop running tasks: their latest states are published when the
 * broker is back (retained-publisher.ts).
 */
import { EventEmitter } from 'events';
import type { AdapterScheduler } from '../../ble/scheduler';
import type { Clock, TimerHandle } from '../../clock';
import { OtaError, toOtaError } from '../../errors';
import { checkKeyOptions } from '../../ota/preflight';
import type { PlantBus, Unsubscribe } from '../bus';
import { PLANT_MESSAGE_VERSION, type CancelTask, type ExecutionState, type ExecutionStatus, type GatewaySightings, type InstallTask, type TaskMessage } from '../messages';
import { ImageCache } from '../image-transfer';
import { checkTopicId, type PlantTopics } from '../topics';
import { runInstallTask, type TaskOutcome, type TaskProgress } from './install-task';
import { schemaGatewayCodec, type GatewayCodec, type GatewayLog, type ImageSource } from './ports';
import { presenceMessage } from './presence';
import { ProgressThrottle } from './progress-throttle';
import { RetainedPublisher } from './retained-publisher';
import { ScanLoop } from './scan-loop';
import { SightingsTable } from './sightings';

export { presenceWill } from './presence';

export interface GatewayAgentOptions {
  bus: PlantBus;
  topics: PlantTopics;
  gatewayId: string;
  scheduler: AdapterScheduler;
  clock: Clock;
  /** Installs run at once (1..64). */
  slots: number;
  adapter: { label: string; simulated: boolean };
  keys: { masterKey?: Buffer; fleetKey?: Buffer };
  /** Scan window (default 2000 ms) every scanEveryMs (default 5000 ms). */
  scanWindowMs?: number;
  scanEveryMs?: number;
  /** Sightings are published this often (default 5000 ms); a device not seen for forgetAfterMs (default 30000) is dropped. */
  sightingsEveryMs?: number;
  forgetAfterMs?: number;
  /** The image cache's directory (fetched images kept as <sha256>.bin), when no `images` source is given. */
  imageDir?: string;
  log?: GatewayLog;
  /** Where images come from; default: an ImageCache fetching them over the bus (image-transfer.ts) into imageDir. */
  images?: ImageSource;
  /** Payload decoding / encoding; default: the plant's schemas (schemaGatewayCodec). */
  codec?: GatewayCodec;
  /** Reported in the presence (default: this package's version). */
  software?: string;
  /** How long a task looks for its device before DEVICE_NOT_FOUND (default 10000 ms). */
  findTimeoutMs?: number;
  /** How long the verify after the reboot (and a rollback after a cancel) waits for the device (default 30000 ms). */
  verifyWaitMs?: number;
  /** stop() waits this long for cancelled tasks to wind down (default 10000 ms). */
  stopWaitMs?: number;
}

interface TaskEntry {
  task: InstallTask;
  topic: string;
  state: 'queued' | 'running';
  controller: AbortController;
  timeout: TimerHandle | null;
  startedAt: number | null;
  last: ExecutionStatus | null;
  done: Promise<void> | null;
}

/** Task ids remembered to refuse a repeated task (the oldest are forgotten beyond this). */
const REMEMBERED_TASK_IDS = 10000;
const PROGRESS_EVERY_MS = 500;

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new OtaError('BAD_OPTION', `${name} must be a positive number of milliseconds, got ${String(value)}`);
  return v;
}

export class GatewayAgent extends EventEmitter {
  private readonly o: Required<Pick<GatewayAgentOptions, 'scanWindowMs' | 'scanEveryMs' | 'sightingsEveryMs' | 'forgetAfterMs' | 'findTimeoutMs' | 'verifyWaitMs' | 'stopWaitMs'>>;
  private readonly bus: PlantBus;
  private readonly clock: Clock;
  private readonly gatewayId: string;
  private readonly slots: number;
  private readonly keys: { masterKey?: Buffer; fleetKey?: Buffer };
  private readonly log: GatewayLog;
  private readonly images: ImageSource;
  private readonly codec: GatewayCodec;
  private readonly publisher: RetainedPublisher;
  private readonly sightings: SightingsTable;
  private readonly scan: ScanLoop;
  private readonly active = new Map<string, TaskEntry>();
  private readonly queue: TaskEntry[] = [];
  private readonly seenTaskIds = new Set<string>();
  private running = 0;
  private lastFree: number | null = null;
  private sightingsTimer: TimerHandle | null = null;
  private unsubscribe: Unsubscribe | null = null;
  private phase: 'new' | 'started' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | null = null;
  private readonly onConnect = () => this.republish();

  constructor(private readonly options: GatewayAgentOptions) {
    super();
    if (!options || typeof options !== 'object') throw new OtaError('BAD_OPTION', 'GatewayAgent needs its options (bus, topics, gatewayId, scheduler, clock, slots, adapter, keys)');
    this.gatewayId = checkTopicId(options.gatewayId, 'the gateway id');
    if (!Number.isInteger(options.slots) || options.slots < 1 || options.slots > 64) throw new OtaError('BAD_OPTION', `slots must be a whole number from 1 to 64, got ${String(options.slots)}`);
    this.slots = options.slots;
    this.keys = checkKeyOptions(options.keys ?? {});
    this.o = {
      scanWindowMs: positive('scanWindowMs', options.scanWindowMs, 2000),
      scanEveryMs: positive('scanEveryMs', options.scanEveryMs, 5000),
      sightingsEveryMs: positive('sightingsEveryMs', options.sightingsEveryMs, 5000),
      forgetAfterMs: positive('forgetAfterMs', options.forgetAfterMs, 30000),
      findTimeoutMs: positive('findTimeoutMs', options.findTimeoutMs, 10000),
      verifyWaitMs: positive('verifyWaitMs', options.verifyWaitMs, 30000),
      stopWaitMs: positive('stopWaitMs', options.stopWaitMs, 10000),
    };
    this.bus = options.bus;
    this.clock = options.clock;
    this.log = options.log ?? (() => undefined);
    this.images = options.images ?? new ImageCache(this.bus, options.topics, this.gatewayId, this.clock, { dir: options.imageDir, log: this.log });
    this.codec = options.codec ?? schemaGatewayCodec;
    this.publisher = new RetainedPublisher(this.bus, this.log);
    this.sightings = new SightingsTable(this.o.forgetAfterMs);
    this.scan = new ScanLoop(options.scheduler, { clock: options.clock, windowMs: this.o.scanWindowMs, everyMs: this.o.scanEveryMs, onDevice: (d) => this.sightings.add(d, this.onAgentClock(d.seenAt)), log: this.log });
  }

  /**
   * A scheduler time (seenAt) on the agent's clock: sightings carry the agent's time, which coordinators in other
   * processes compare with theirs; a scheduler counts on its own clock (performance.now(), or modeled time).
   */
  private onAgentClock(schedulerTime: number): number {
    return this.options.clock.now() - (this.options.scheduler.clock.now() - schedulerTime);
  }

  status(): { running: number; queued: number; sightings: number } {
    return { running: this.running, queued: this.queue.length, sightings: this.sightings.size };
  }

  async start(): Promise<void> {
    if (this.phase !== 'new') return;
    this.phase = 'started';
    this.bus.on('connect', this.onConnect);
    try {
      this.unsubscribe = await this.bus.subscribe(this.options.topics.tasks(this.gatewayId), (m) => this.onTaskPayload(m.payload));
    } catch (err) {
      this.phase = 'new';
      this.bus.off('connect', this.onConnect);
      throw toOtaError(err);
    }
    this.publishPresence('online');
    this.scan.start();
    this.scheduleSightings();
    this.log('info', `gateway ${this.gatewayId} joined the plant (${this.slots} slot(s))`);
  }

  /** Cancels queued and running tasks (each reports cancelled), stops scanning, publishes presence offline. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    if (this.phase !== 'started') {
      this.phase = 'stopped';
      return Promise.resolve();
    }
    this.stopping = this.windDown();
    return this.stopping;
  }

  private async windDown(): Promise<void> {
    this.phase = 'stopping';
    this.sightingsTimer?.cancel();
    this.sightingsTimer = null;
    const scanStopped = this.scan.stop();
    await this.unsubscribe?.().catch(() => undefined);
    const reason = () => new OtaError('TASK_CANCELLED', `gateway ${this.gatewayId} is stopping`);
    for (const entry of [...this.queue]) this.stopTask(entry, reason());
    const running = [...this.active.values()];
    for (const entry of running) this.stopTask(entry, reason());
    await this.within(Promise.all(running.map((e) => e.done)), this.o.stopWaitMs);
    for (const entry of this.active.values()) {
      // Still winding down (a rollback waiting for its device): say so rather than nothing.
      this.publishStatus(entry, 'cancelled', { error: { code: 'TASK_CANCELLED', message: `gateway ${this.gatewayId} stopped before the task had wound down; the device may still be rolling back` } });
    }
    await scanStopped;
    this.publishPresence('offline');
    this.phase = 'stopped';
    this.bus.off('connect', this.onConnect);
    await this.within(this.publisher.settled(), this.o.stopWaitMs);
  }

  // ---- tasks ----

  private onTaskPayload(payload: Buffer): void {
    if (this.phase !== 'started') return;
    let task: TaskMessage;
    try {
      task = this.codec.decodeTask(payload);
    } catch (err) {
      const e = toOtaError(err, 'PAYLOAD_INVALID');
      this.warn(`dropped a task message (${e.code}): ${e.message}`);
      return;
    }
    try {
      if (task.type === 'install') this.onInstall(task);
      else this.onCancel(task);
    } catch (err) {
      this.warn(`task ${task.taskId} could not be handled: ${toOtaError(err).message}`);
    }
  }

  private onInstall(task: InstallTask): void {
    if (this.seenTaskIds.has(task.taskId)) {
      this.warn(`task ${task.taskId} arrived again; the repeat is ignored`);
      return;
    }
    this.rememberTaskId(task.taskId);
    const entry: TaskEntry = { task, topic: this.options.topics.execution(task.campaign, task.device.address), state: 'queued', controller: new AbortController(), timeout: null, startedAt: null, last: null, done: null };
    const holder = [...this.active.values()].find((e) => e.task.device.address === task.device.address);
    if (holder) {
      this.publishStatus(entry, 'failed', {
        error: { code: 'DEVICE_BUSY_IN_PLANT', message: `${task.device.address} already has task ${holder.task.taskId} (campaign ${holder.task.campaign}) on gateway ${this.gatewayId}; that one keeps running` },
      });
      // Same campaign, same retained topic: the running task's state stays the one on record.
      if (holder.topic === entry.topic && holder.last) this.publishRaw(holder.topic, holder.last);
      return;
    }
    this.active.set(task.taskId, entry);
    this.queue.push(entry);
    entry.timeout = this.clock.setTimer(() => this.stopTask(entry, new OtaError('TASK_TIMEOUT', `task ${task.taskId} did not end within ${task.timeoutMs / 1000} s of its arrival`)), task.timeoutMs);
    this.publishStatus(entry, 'queued');
    this.pump();
    this.slotsChanged();
  }

  private onCancel(cancel: CancelTask): void {
    const entry = this.active.get(cancel.taskId);
    if (!entry || entry.task.campaign !== cancel.campaign) {
      this.log('info', `cancel of task ${cancel.taskId} (campaign ${cancel.campaign}): no such task runs here`);
      return;
    }
    this.stopTask(entry, new OtaError('TASK_CANCELLED', `cancelled by the campaign${cancel.reason ? `: ${cancel.reason}` : ''}`));
  }

  /** A queued task ends at once; a running one is aborted and ends when its install has wound down. */
  private stopTask(entry: TaskEntry, reason: OtaError): void {
    if (entry.state === 'running') {
      if (!entry.controller.signal.aborted) entry.controller.abort(reason);
      return;
    }
    const at = this.queue.indexOf(entry);
    if (at >= 0) this.queue.splice(at, 1);
    this.finish(entry, { state: reason.code === 'TASK_CANCELLED' ? 'cancelled' : 'failed', error: { code: reason.code, message: reason.message } });
  }

  private pump(): void {
    while (this.phase === 'started' && this.running < this.slots && this.queue.length > 0) this.run(this.queue.shift() as TaskEntry);
  }

  private run(entry: TaskEntry): void {
    entry.state = 'running';
    entry.startedAt = this.clock.now();
    this.running++;
    const throttle = new ProgressThrottle<TaskProgress>(this.clock, PROGRESS_EVERY_MS, (progress) => this.publishStatus(entry, 'in-progress', { progress }));
    const context = {
      scheduler: this.options.scheduler,
      clock: this.clock,
      images: this.images,
      keys: this.keys,
      log: this.log,
      onProgress: (p: TaskProgress) => throttle.update(p),
      findTimeoutMs: this.o.findTimeoutMs,
      verifyWaitMs: this.o.verifyWaitMs,
    };
    entry.done = runInstallTask(entry.task, context, entry.controller.signal)
      .catch((err: unknown): TaskOutcome => ({ state: 'failed', error: { code: toOtaError(err).code, message: toOtaError(err).message } }))
      .then((outcome) => {
        throttle.stop();
        this.running--;
        this.finish(entry, outcome);
        this.pump();
      })
      .catch((err: unknown) => this.log('error', `task ${entry.task.taskId}: ${toOtaError(err).message}`));
  }

  private finish(entry: TaskEntry, outcome: TaskOutcome): void {
    entry.timeout?.cancel();
    entry.timeout = null;
    if (this.active.get(entry.task.taskId) !== entry) return;
    this.active.delete(entry.task.taskId);
    const { state, ...fields } = outcome;
    const seconds = entry.startedAt === null ? undefined : Math.round(this.clock.now() - entry.startedAt) / 1000;
    this.publishStatus(entry, state, { ...fields, ...(seconds !== undefined ? { seconds } : {}) });
    this.log(state === 'succeeded' ? 'info' : 'warn', `task ${entry.task.taskId} (${entry.task.device.address}): ${state}${outcome.error ? ` ${outcome.error.code}: ${outcome.error.message}` : ''}`);
    this.slotsChanged();
  }

  private rememberTaskId(taskId: string): void {
    this.seenTaskIds.add(taskId);
    if (this.seenTaskIds.size > REMEMBERED_TASK_IDS) this.seenTaskIds.delete(this.seenTaskIds.values().next().value as string);
  }

  // ---- publishing ----

  private publishStatus(entry: TaskEntry, state: ExecutionState, fields: Partial<ExecutionStatus> = {}): void {
    if (this.phase === 'stopped') return;
    const status: ExecutionStatus = {
      v: PLANT_MESSAGE_VERSION,
      campaign: entry.task.campaign,
      taskId: entry.task.taskId,
      gateway: this.gatewayId,
      device: { address: entry.task.device.address, name: entry.task.device.name },
      ...fields,
      state,
      at: this.clock.now(),
    };
    entry.last = status;
    this.publishRaw(entry.topic, status);
    try {
      this.emit('execution', status);
    } catch (err) {
      this.log('error', `an 'execution' listener threw: ${toOtaError(err).message}`);
    }
  }

  private publishRaw(topic: string, status: ExecutionStatus): void {
    this.publishEncoded(topic, () => this.codec.encode('execution', status));
  }

  /** A message the codec refuses is a defect of this gateway: logged, never thrown into a timer or the bus. */
  private publishEncoded(topic: string, encode: () => Buffer): void {
    let payload: Buffer;
    try {
      payload = encode();
    } catch (err) {
      this.log('error', `not published to ${topic}: ${toOtaError(err).message}`);
      return;
    }
    this.publisher.publish(topic, payload);
  }

  private freeSlots(): number {
    return Math.max(0, this.slots - this.running - this.queue.length);
  }

  private slotsChanged(): void {
    if (this.phase === 'started' && this.freeSlots() !== this.lastFree) this.publishPresence('online');
  }

  private publishPresence(state: 'online' | 'offline'): void {
    const free = state === 'online' ? this.freeSlots() : 0;
    this.lastFree = free;
    const message = presenceMessage(state, { gateway: this.gatewayId, adapter: this.options.adapter, slots: { total: this.slots, free }, at: this.clock.now(), software: this.options.software });
    this.publishEncoded(this.options.topics.presence(this.gatewayId), () => this.codec.encode('presence', message));
  }

  /** After a (re)connect: the broker may have published our will meanwhile, and states may have waited. */
  private republish(): void {
    if (this.phase !== 'started') return;
    this.publishPresence('online');
    this.publisher.flush();
  }

  private scheduleSightings(): void {
    this.sightingsTimer = this.clock.setTimer(() => {
      if (this.phase !== 'started') return;
      this.publishSightings();
      this.scheduleSightings();
    }, this.o.sightingsEveryMs);
  }

  private publishSightings(): void {
    const at = this.clock.now();
    const message: GatewaySightings = { v: PLANT_MESSAGE_VERSION, gateway: this.gatewayId, at, devices: this.sightings.current(at) };
    this.publishEncoded(this.options.topics.sightings(this.gatewayId), () => this.codec.encode('sightings', message));
  }

  private warn(text: string): void {
    this.log('warn', text);
    this.emit('warning', text);
  }

  /** Waits for `work` at most ms of clock time. */
  private async within(work: Promise<unknown>, ms: number): Promise<void> {
    let timer: TimerHandle | null = null;
    const expired = new Promise<void>((resolve) => (timer = this.clock.setTimer(resolve, ms)));
    await Promise.race([work.catch(() => undefined), expired]);
    (timer as TimerHandle | null)?.cancel();
  }
}
