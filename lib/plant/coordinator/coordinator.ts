/**
 * RolloutCoordinator: runs campaigns over the plant's gateways (docs/FLEET.md, "Coordinator"). It selects
 * devices from the gateways' sightings, runs the waves, gives each device to the gateway that sees it best,
 * hands it to another gateway when its gateway goes offline or times out (never two at once), stops a
 * campaign on its abort thresholds, and keeps the whole campaign record retained in the broker so that a
 * restarted coordinator resumes it. Every timer runs on the given Clock.
 */
import { EventEmitter } from 'events';
import type { Clock, TimerHandle } from '../../clock';
import { OtaError, toOtaError } from '../../errors';
import type { BusMessage, PlantBus, Unsubscribe } from '../bus';
import type {
  CampaignControl,
  CampaignDevice,
  CampaignRunState,
  CampaignSpec,
  CampaignState,
  DeviceClaim,
  ExecutionStatus,
  GatewayPresence,
  InstallTask,
} from '../messages';
import { PLANT_STATE_PAYLOAD_LIMIT } from '../schemas';
import { topicMatches } from '../topic-filter';
import { addressLevel, type PlantTopics } from '../topics';
import { chooseGateway, isSeen } from './assignment';
import { ADDRESS, buildCampaignState, resumeProblem, currentAssignment, deviceResult, isInFlight, type CampaignRun, type DeviceRuntime } from './campaign-record';
import { Coalescer } from './coalescer';
import { loadCampaignImage } from './image-source';
import { plantImageServer, type ImageServerFactory, type ImageServing } from './ports';
import { encodePlantMessage, parsePlantMessage, type MessageOf, type PlantMessageKind } from '../schemas';
import { computeProgress, isFinal } from './progress';
import { PlantView, selectDevices } from './selection';
import { normalizeSpec, type NormalizedSpec } from './spec';
import { abortReason, countsAsFailure } from './waves';

export type CoordinatorLogLevel = 'info' | 'warn' | 'error';

export interface CoordinatorOptions {
  bus: PlantBus;
  topics: PlantTopics;
  clock: Clock;
  coordinatorId: string;
  /** File sources are resolved inside firmwareDir only (a path that leaves it: IMAGE_UNKNOWN). */
  images: { firmwareDir?: string };
  /** Progress is published at least this often while a campaign runs (default 5000 ms). */
  progressEveryMs?: number;
  /** Sightings older than this do not select devices (default 60000 ms). */
  sightingFreshMs?: number;
  /** Sightings older than this do not make a gateway a candidate for a device (default 30000 ms). */
  assignFreshMs?: number;
  /** Answers the gateways' image requests (default: lib/plant/image-transfer.ts ImageServer). */
  imageServer?: ImageServerFactory;
  log?: (level: CoordinatorLogLevel, text: string) => void;
}

/**
 * The coordinator's bus must take messages this large (BusConnectOptions.maxPayloadBytes): a campaign's
 * retained record may be up to 4 MiB, more than mqtt-bus.ts's 1 MiB default. A record the bus drops is
 * reported as a warning naming this (coordinator.ts onBusError).
 */
export const COORDINATOR_MAX_PAYLOAD_BYTES = PLANT_STATE_PAYLOAD_LIMIT;

/** Added to deviceTimeoutMs: the coordinator's timeout for a task (the gateway's own is deviceTimeoutMs). */
export const TASK_TIMEOUT_GRACE_MS = 30_000;
/**
 * How long a gateway has to answer a cancel before the device is given up (never handed on: it may still run).
 * The gateway's answer can take its whole undo: finding the device (10 s), waiting for an installed image to
 * come back for its rollback (verifyWaitMs, 30 s) and, when that fails, one more Status read (10 s + the read).
 */
export const CANCEL_ANSWER_MS = 90_000;
/** At most one retained state and one progress publish per campaign per this interval. */
export const PUBLISH_INTERVAL_MS = 200;
const HOUSEKEEPING_MS = 1000;
/** A retained campaign state is at most 4 MiB (docs/FLEET.md); each assignment adds about this much to it. */
const MAX_STATE_BYTES = 4 * 1024 * 1024;
const STATE_BYTES_PER_ASSIGNMENT = 200;
/** After a resume, how long retained execution statuses have to arrive before lost gateways' devices move on. */
export const RESUME_SETTLE_MS = 2000;

type ControlAction = CampaignControl['action'];

interface OtherCampaign {
  coordinator: string;
  state: CampaignRunState;
  /** Devices not yet finished in it. */
  active: Set<string>;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** A status's before/after, when well-formed (a gateway's garbage never enters the record). */
/** A status's optional before/after/error as the record keeps them (null when absent; the schema checked them). */
function versionPair(value: ExecutionStatus['after']): { version: string | null; sha256: string | null } | null {
  return value ? { version: value.version, sha256: value.sha256 } : null;
}

function errorOf(value: ExecutionStatus['error']): { code: string; message: string } | null {
  return value ? { code: value.code, message: value.message } : null;
}

function isActive(state: CampaignRunState): boolean {
  return state === 'running' || state === 'paused';
}

export class RolloutCoordinator extends EventEmitter {
  private readonly bus: PlantBus;
  private readonly topics: PlantTopics;
  private readonly clock: Clock;
  private readonly id: string;
  private readonly progressEveryMs: number;
  private readonly sightingFreshMs: number;
  private readonly assignFreshMs: number;
  private readonly view = new PlantView();
  private readonly runs = new Map<string, CampaignRun>();
  private readonly others = new Map<string, OtherCampaign>();
  private readonly claims = new Map<string, DeviceClaim>();
  private readonly stateOut: Coalescer;
  private readonly progressOut: Coalescer;
  private readonly lastProgressAt = new Map<string, number>();
  private unsubscribes: Unsubscribe[] = [];
  private imageServer: ImageServing | null = null;
  private housekeeping: TimerHandle | null = null;
  private readonly timers = new Set<TimerHandle>();
  private started = false;
  private stopped = false;
  private readonly onBusError = (err: Error) => this.busError(err);

  constructor(private readonly options: CoordinatorOptions) {
    super();
    this.bus = options.bus;
    this.topics = options.topics;
    this.clock = options.clock;
    this.id = options.coordinatorId;
    this.progressEveryMs = options.progressEveryMs ?? 5000;
    this.sightingFreshMs = options.sightingFreshMs ?? 60_000;
    this.assignFreshMs = options.assignFreshMs ?? 30_000;
    this.stateOut = new Coalescer(this.clock, PUBLISH_INTERVAL_MS);
    this.progressOut = new Coalescer(this.clock, PUBLISH_INTERVAL_MS);
  }

  // ---- public API ---------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.bus.on('error', this.onBusError);
    const t = this.topics;
    this.unsubscribes.push(await this.bus.subscribe(t.allPresence, this.handler('presence', (m) => this.onPresence(m))));
    this.unsubscribes.push(await this.bus.subscribe(t.allSightings, this.handler('sightings', (m) => this.onSightings(m))));
    this.unsubscribes.push(await this.bus.subscribe(t.allClaims, (message) => this.onClaim(message)));
    this.unsubscribes.push(await this.bus.subscribe(t.allCampaignStates, this.handler('campaignState', (m, raw) => this.onCampaignState(m, raw))));
    this.unsubscribes.push(await this.bus.subscribe(t.allCampaignControls, this.handler('control', (m, raw) => this.onControl(m, raw))));
    const imageServer = this.options.imageServer ?? plantImageServer;
    this.imageServer = imageServer(this.bus, this.topics, (sha) => this.imageBytes(sha), (level, text) => this.log(level, text));
    await this.imageServer.start();
  }

  async startCampaign(input: CampaignSpec): Promise<CampaignState> {
    if (!this.started || this.stopped) throw new OtaError('COORDINATOR_NOT_RUNNING', 'the rollout coordinator is not started (or was stopped): start it before starting a campaign');
    const now = this.clock.now();
    const spec = normalizeSpec(input, now);
    if (this.runs.has(spec.id) || this.others.has(spec.id)) {
      throw new OtaError('CAMPAIGN_INVALID', `campaign spec: a campaign with id "${spec.id}" exists already; give a new id or none`);
    }
    const image = await this.whileClockHeld(() => loadCampaignImage(spec.image, this.options.images.firmwareDir));
    if (spec.target.chip !== undefined && spec.target.chip !== image.ref.chip) {
      throw new OtaError('CHIP_MISMATCH', `the selector asks for ${spec.target.chip} devices but the image is built for ${image.ref.chip}`);
    }
    const seen = this.view.latestDevices(this.clock.now() - this.sightingFreshMs);
    const selection = selectDevices(spec.target, seen, image.ref.sha256, image.appSha256);
    const missingAddresses = selection.missing.map((m) => m.toLowerCase()).filter((m) => ADDRESS.test(m));
    for (const name of selection.missing.filter((m) => !ADDRESS.test(m.toLowerCase()))) {
      this.warn(`campaign ${spec.id}: no gateway sees a device named "${name}"; it is not part of the campaign`);
    }
    if (selection.install.length === 0) {
      throw new OtaError(
        'CAMPAIGN_NO_DEVICES',
        `no device to update: ${seen.length} devices seen in the last ${Math.round(this.sightingFreshMs / 1000)} s, ${selection.skipped.length} matching ones already run the image, ${selection.missing.length} listed ones not seen`,
      );
    }
    const conflicts = this.conflictsOf(spec.id, selection.install.map((d) => d.address.toLowerCase()));
    if (conflicts.length > 0) {
      throw new OtaError('CAMPAIGN_CONFLICT', `devices held by another running campaign: ${conflicts.map((c) => `${c.address} (${c.campaign})`).join(', ')}`, { conflicts });
    }
    // Loading the image awaited: the coordinator may have stopped, or a campaign with this id started, meanwhile.
    if (this.stopped) throw new OtaError('COORDINATOR_NOT_RUNNING', 'the rollout coordinator was stopped while the campaign was being prepared');
    if (this.runs.has(spec.id)) throw new OtaError('CAMPAIGN_INVALID', `campaign spec: a campaign with id "${spec.id}" exists already`);
    const record = buildCampaignState(spec, image.ref, this.id, selection, missingAddresses, this.clock.now());
    const expected = Buffer.byteLength(JSON.stringify(record)) + record.devices.length * (spec.maxReassignments + 2) * STATE_BYTES_PER_ASSIGNMENT;
    if (expected > MAX_STATE_BYTES) {
      throw new OtaError(
        'CAMPAIGN_INVALID',
        `campaign spec: its retained record could grow to ${expected} bytes, over the ${MAX_STATE_BYTES}-byte limit of a campaign state${spec.image.base64 !== undefined ? ' (the base64 image is part of it: give the image as a file in the firmware directory)' : ': split the devices over several campaigns'}`,
      );
    }
    const run: CampaignRun = { record, spec, image, runtime: new Map(), claimed: new Set(), unsubscribe: null, ended: false };
    for (const device of record.devices) run.runtime.set(device.address, this.newRuntime());
    this.runs.set(spec.id, run);
    await Promise.all(record.devices.filter((d) => d.state === 'pending').map((d) => this.publishClaim(d.address, spec.id)));
    this.log('info', `campaign ${spec.id}: ${selection.install.length} devices in ${record.waves.length} waves, ${selection.skipped.length} skipped, image ${image.ref.version} (${image.ref.sha256.slice(0, 12)})`);
    await this.subscribeExecutions(run);
    // The record is in the broker before any task goes out: a coordinator restarted from here knows every task.
    this.changed(run);
    await this.stateOut.flush(run.record.id);
    for (const device of record.devices.filter((d) => isFinal(d.state))) this.emitSafe('device', deviceResult(run, device));
    this.advance(run);
    this.ensureHousekeeping();
    return clone(run.record);
  }

  async control(campaignId: string, action: ControlAction, reason?: string): Promise<CampaignState> {
    const run = this.runs.get(campaignId);
    if (!run) throw new OtaError('CAMPAIGN_UNKNOWN', `this coordinator runs no campaign "${campaignId}"`);
    const state = run.record.state;
    if (!isActive(state)) throw new OtaError('CAMPAIGN_ENDED', `campaign "${campaignId}" has ended (${state}): it cannot be ${action}d`);
    if (action === 'pause') {
      if (state === 'running') {
        run.record.state = 'paused';
        run.record.reason = reason ?? null;
        this.log('info', `campaign ${campaignId}: paused${reason ? ` (${reason})` : ''}`);
      }
    } else if (action === 'resume') {
      if (state === 'paused') {
        run.record.state = 'running';
        run.record.reason = null;
        for (const rt of run.runtime.values()) rt.waitingSince = this.clock.now();
        this.log('info', `campaign ${campaignId}: resumed`);
        this.advance(run);
      }
    } else if (action === 'cancel') {
      this.stopCampaign(run, 'cancelled', reason ?? 'cancelled by request');
    } else {
      throw new OtaError('CAMPAIGN_INVALID', `unknown control action ${JSON.stringify(action)}: use pause, resume or cancel`);
    }
    this.changed(run);
    return clone(run.record);
  }

  campaign(id: string): CampaignState | undefined {
    const run = this.runs.get(id);
    return run ? clone(run.record) : undefined;
  }

  campaigns(): CampaignState[] {
    return [...this.runs.values()].map((run) => clone(run.record));
  }

  /** Publishes the latest state of every campaign, then drops every timer and subscription (the bus stays open). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.housekeeping?.cancel();
    this.housekeeping = null;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    for (const run of this.runs.values()) {
      for (const rt of run.runtime.values()) {
        rt.timer?.cancel();
        rt.timer = null;
      }
    }
    await this.stateOut.flushAll().catch(() => undefined);
    this.stateOut.clear();
    this.progressOut.clear();
    this.imageServer?.stop();
    this.imageServer = null;
    const unsubscribes = [...this.unsubscribes, ...[...this.runs.values()].flatMap((r) => (r.unsubscribe ? [r.unsubscribe] : []))];
    this.unsubscribes = [];
    await Promise.all(unsubscribes.map((u) => u().catch(() => undefined)));
    this.bus.off('error', this.onBusError);
  }

  // ---- messages in ------------------------------------------------------------------------------------

  /** Decodes, hands over, and turns anything thrown into a warning (a bad message never stops the coordinator). */
  private handler<K extends PlantMessageKind>(kind: K, handle: (message: MessageOf<K>, raw: BusMessage) => void): (raw: BusMessage) => void {
    return (raw) => {
      if (this.stopped) return;
      // An empty retained payload is a cleared topic (MQTT 3.1.1 §3.3.1.3), not a malformed message.
      if (raw.payload.length === 0) {
        if (kind === 'campaignState') this.onCampaignStateCleared(raw.topic);
        return;
      }
      let message: MessageOf<K>;
      try {
        message = parsePlantMessage(kind, raw.payload);
      } catch (err) {
        const e = toOtaError(err);
        this.warn(`dropped a ${kind} message on ${raw.topic}: ${e.code}: ${e.message}`);
        return;
      }
      try {
        handle(message, raw);
      } catch (err) {
        this.warn(`a ${kind} message on ${raw.topic} could not be handled: ${(err as Error).message}`);
      }
    };
  }

  private onPresence(p: GatewayPresence): void {
    // No ordering by `at`: a will carries the time its connection began, older than the presences after it.
    this.view.setPresence(p);
    if (p.state === 'offline') {
      for (const run of this.runs.values()) {
        for (const device of run.record.devices) {
          if (isInFlight(device) && device.gateway === p.gateway) this.gatewayLost(run, device, 'gateway-offline', `gateway ${p.gateway} went offline`);
        }
      }
    }
    this.pumpAll();
  }

  private onSightings(message: MessageOf<'sightings'>): void {
    this.view.setSightings(message);
    this.pumpAll();
  }

  private onClaim(raw: BusMessage): void {
    if (this.stopped) return;
    const address = raw.topic.split('/').slice(-2)[0];
    if (raw.payload.length === 0) {
      for (const key of [...this.claims.keys()]) if (addressLevel(key) === address) this.claims.delete(key);
      return;
    }
    try {
      const claim = parsePlantMessage('claim', raw.payload);
      this.claims.set(claim.address.toLowerCase(), claim);
    } catch (err) {
      const e = toOtaError(err);
      this.warn(`dropped a claim message on ${raw.topic}: ${e.code}: ${e.message}`);
    }
  }

  /** What the bus reports: a message it dropped for its size is a warning (a campaign record it hides is named). */
  private busError(err: Error): void {
    const e = toOtaError(err);
    const topic = typeof e.details?.topic === 'string' ? e.details.topic : '';
    if (e.code !== 'PAYLOAD_TOO_LARGE') {
      this.log('warn', `plant bus: ${e.code}: ${e.message}`);
      return;
    }
    const hidden = topicMatches(this.topics.allCampaignStates, topic) ? ` — the campaign record ${topic} cannot be read (resumed, or its devices seen as claimed): open the coordinator's bus with maxPayloadBytes ${COORDINATOR_MAX_PAYLOAD_BYTES}` : '';
    this.warn(`plant bus: ${e.code}: ${e.message}${hidden}`);
  }

  /** Another coordinator's campaign record was removed: it holds no devices any more. */
  private onCampaignStateCleared(topic: string): void {
    const id = topic.split('/').slice(-2)[0];
    if (!this.runs.has(id)) this.others.delete(id);
  }

  private onCampaignState(state: CampaignState, raw: BusMessage): void {
    if (this.runs.has(state.id)) return; // ours, live: the broker echoes what we publish
    const devices = Array.isArray(state.devices) ? state.devices : [];
    if (state.coordinator === this.id) {
      const inFlight = devices.some((d) => d && isInFlight(d));
      if (isActive(state.state) || inFlight) {
        this.resume(state, raw.topic);
        return;
      }
    }
    const active = new Set<string>();
    for (const d of devices) if (d && typeof d.address === 'string' && !isFinal(d.state)) active.add(d.address.toLowerCase());
    this.others.set(state.id, { coordinator: state.coordinator, state: state.state, active });
  }

  private onControl(message: CampaignControl, raw: BusMessage): void {
    const campaignId = raw.topic.slice(`${this.topics.root}/campaigns/`.length).split('/')[0];
    if (!this.runs.has(campaignId)) {
      if (this.others.get(campaignId)?.coordinator !== undefined) return; // another coordinator's campaign
      this.warn(`control "${message.action}" for campaign "${campaignId}" that this coordinator does not run`);
      return;
    }
    this.control(campaignId, message.action, message.reason).catch((err: unknown) => {
      const e = toOtaError(err);
      this.warn(`control "${message.action}" for campaign ${campaignId} refused: ${e.code}: ${e.message}`);
    });
  }

  private onExecution(run: CampaignRun, status: ExecutionStatus): void {
    if (status.campaign !== run.record.id) {
      this.warn(`an execution status on campaign ${run.record.id}'s topic names campaign ${status.campaign}; ignored`);
      return;
    }
    const device = run.record.devices.find((d) => d.address === String(status.device.address).toLowerCase());
    const assignment = device?.assignments.find((a) => a.taskId === status.taskId);
    if (!device || !assignment || assignment.gateway !== status.gateway) {
      this.warn(`campaign ${run.record.id}: ignored a ${status.state} status of task ${status.taskId} from ${status.gateway}: no such task for that gateway and device`);
      return;
    }
    const final = status.state !== 'queued' && status.state !== 'in-progress';
    if (currentAssignment(device) !== assignment || assignment.ended !== null || !isInFlight(device)) {
      // A late word from an earlier assignment: recorded, but the device's outcome is the current task's.
      if (final && assignment.ended !== status.state) {
        assignment.ended = assignment.ended === null ? status.state : `${assignment.ended}, then ${status.state}`;
        this.changed(run);
      }
      return;
    }
    const rt = this.runtimeOf(run, device);
    const before = versionPair(status.before);
    if (before) device.before = before;
    switch (status.state) {
      case 'queued':
      case 'in-progress':
        device.state = 'in-progress';
        if (typeof status.progress === 'object' && status.progress !== null && Number.isFinite(status.progress.percent)) {
          device.progress = Math.max(0, Math.min(100, status.progress.percent));
        }
        this.changed(run);
        return;
      case 'succeeded':
        rt.installed = status.installed !== false;
        device.after = versionPair(status.after) ?? { version: run.record.image.version, sha256: run.record.image.sha256 };
        device.progress = 100;
        this.finish(run, device, 'succeeded', null, 'succeeded');
        return;
      case 'rolled-back':
        this.finish(run, device, 'rolled-back', errorOf(status.error) ?? { code: 'ROLLED_BACK', message: 'the device rolled back to its previous image' }, 'rolled-back');
        return;
      case 'failed':
        if (rt.cancel === 'reassign') {
          this.gatewayLost(run, device, 'failed', `gateway ${status.gateway} failed the task after a timeout`);
          this.pumpAll();
        } else {
          this.finish(run, device, 'failed', errorOf(status.error) ?? { code: 'TASK_FAILED', message: 'the gateway reported a failure without a code' }, 'failed');
        }
        return;
      case 'cancelled':
        if (rt.cancel === 'campaign') {
          this.finish(run, device, 'cancelled', errorOf(status.error) ?? { code: 'TASK_CANCELLED', message: `cancelled by the campaign (${run.record.state}): ${run.record.reason ?? ''}` }, 'cancelled');
        } else {
          if (rt.cancel === null) this.warn(`campaign ${run.record.id}: gateway ${status.gateway} cancelled task ${status.taskId} by itself; the device goes to another gateway`);
          this.gatewayLost(run, device, 'cancelled', `gateway ${status.gateway} cancelled the task`);
          this.pumpAll();
        }
        return;
    }
  }

  // ---- campaign life --------------------------------------------------------------------------------

  private resume(state: CampaignState, topic: string): void {
    let spec: NormalizedSpec;
    try {
      spec = normalizeSpec(state.spec, this.clock.now());
    } catch (err) {
      this.warn(`the retained campaign on ${topic} cannot be resumed: ${(err as Error).message}`);
      return;
    }
    const problem = resumeProblem(state);
    if (problem) {
      this.warn(`the retained campaign on ${topic} cannot be resumed: ${problem}`);
      return;
    }
    const record = clone(state);
    const run: CampaignRun = { record, spec, image: null, runtime: new Map(), claimed: new Set(), unsubscribe: null, ended: false };
    for (const device of record.devices) run.runtime.set(device.address, this.newRuntime());
    this.runs.set(record.id, run);
    this.log('info', `campaign ${record.id}: resumed from its retained state (${record.state})`);
    this.whileClockHeld(() => loadCampaignImage(spec.image, this.options.images.firmwareDir)).then(
      (image) => {
        run.image = image;
      },
      (err: unknown) => this.warn(`campaign ${record.id}: its image cannot be loaded again, gateways that lack it will fail: ${(err as Error).message}`),
    );
    const stopping = !isActive(record.state);
    for (const device of record.devices) {
      if (!isInFlight(device)) continue;
      const rt = this.runtimeOf(run, device);
      if (stopping) {
        this.sendCancel(run, device, 'campaign', record.reason ?? 'campaign ended');
      } else {
        rt.timer = this.after(() => this.onTaskTimeout(run, device), spec.deviceTimeoutMs + TASK_TIMEOUT_GRACE_MS);
      }
    }
    // A gateway offline now may have finished the device before it died: its retained status, delivered after
    // the subscription below, says so. Only what is still in flight after that goes to another gateway.
    const settle = this.after(() => {
      this.timers.delete(settle);
      if (this.stopped || run.ended) return;
      for (const device of record.devices) {
        if (isInFlight(device) && device.gateway && this.view.presenceOf(device.gateway)?.state === 'offline') {
          this.gatewayLost(run, device, 'gateway-offline', `gateway ${device.gateway} is offline`);
        }
      }
      this.pumpAll();
    }, RESUME_SETTLE_MS);
    this.timers.add(settle);
    // Retained execution statuses of in-flight tasks catch the record up once the subscription delivers them.
    this.subscribeExecutions(run).catch((err: unknown) => this.warn(`campaign ${record.id}: cannot subscribe to its executions: ${(err as Error).message}`));
    this.advance(run);
    this.changed(run);
    this.ensureHousekeeping();
  }

  private async subscribeExecutions(run: CampaignRun): Promise<void> {
    run.unsubscribe = await this.bus.subscribe(
      this.topics.allExecutions(run.record.id),
      this.handler('execution', (status) => {
        if (!run.ended) this.onExecution(run, status);
      }),
    );
  }

  /** Moves through the waves: a done wave lets the next start (unless paused); the last one completes the campaign. */
  private advance(run: CampaignRun): void {
    const record = run.record;
    while (isActive(record.state) && record.currentWave < record.waves.length) {
      const wave = record.waves[record.currentWave];
      const members = record.devices.filter((d) => d.wave === record.currentWave && d.state !== 'skipped');
      if (wave.state === 'waiting') {
        if (record.state !== 'running') break;
        wave.state = 'running';
        for (const d of members) this.runtimeOf(run, d).waitingSince = this.clock.now();
      }
      if (members.some((d) => !isFinal(d.state))) break;
      wave.state = 'done';
      if (record.currentWave === record.waves.length - 1) {
        record.state = 'completed';
        record.reason = null;
        this.log('info', `campaign ${record.id}: completed`);
        break;
      }
      record.currentWave++;
    }
    this.pump(run);
    this.maybeEnd(run);
  }

  private pumpAll(): void {
    for (const run of this.runs.values()) if (!run.ended) this.pump(run);
  }

  /** Gives pending devices of the current wave to gateways while the campaign's concurrency allows. */
  private pump(run: CampaignRun): void {
    const record = run.record;
    if (this.stopped || record.state !== 'running') return;
    const now = this.clock.now();
    let inFlight = record.devices.filter(isInFlight).length;
    const perGateway = this.inFlightPerGateway();
    // First every device whose best gateway has a free slot, then the rest onto any free gateway that sees
    // them: a gateway never takes a neighbour's device while devices it sees best wait (that would leave
    // them for the campaign's tail while the neighbour idles).
    for (const device of record.devices) {
      if (device.state !== 'pending' || device.wave !== record.currentWave) continue;
      if (inFlight >= run.spec.maxConcurrent) break;
      const tried = new Set(device.assignments.map((a) => a.gateway));
      const choice = chooseGateway(this.view, { address: device.address, now, freshMs: this.assignFreshMs, triedBefore: tried, inFlight: (g) => perGateway.get(g) ?? 0, bestOnly: true });
      if (!choice) continue;
      this.assign(run, device, choice.gateway);
      perGateway.set(choice.gateway, (perGateway.get(choice.gateway) ?? 0) + 1);
      inFlight++;
    }
    for (const device of record.devices) {
      if (device.state !== 'pending' || device.wave !== record.currentWave) continue;
      if (inFlight >= run.spec.maxConcurrent) break;
      const tried = new Set(device.assignments.map((a) => a.gateway));
      const choice = chooseGateway(this.view, { address: device.address, now, freshMs: this.assignFreshMs, triedBefore: tried, inFlight: (g) => perGateway.get(g) ?? 0 });
      if (choice) {
        this.assign(run, device, choice.gateway);
        perGateway.set(choice.gateway, (perGateway.get(choice.gateway) ?? 0) + 1);
        inFlight++;
        continue;
      }
      if (!isSeen(this.view, device.address, now, this.assignFreshMs)) {
        const rt = this.runtimeOf(run, device);
        const since = Math.max(rt.waitingSince, this.view.lastSeen(device.address));
        if (now - since >= run.spec.deviceTimeoutMs) {
          this.finish(run, device, 'failed', { code: 'DEVICE_NOT_SEEN', message: `no online gateway saw ${device.address} for ${Math.round((now - since) / 1000)} s` }, null);
          return; // finish() advanced and pumped again
        }
      }
    }
  }

  /** This coordinator's tasks in flight per gateway, over all its campaigns. */
  private inFlightPerGateway(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const run of this.runs.values()) {
      for (const d of run.record.devices) if (isInFlight(d) && d.gateway) counts.set(d.gateway, (counts.get(d.gateway) ?? 0) + 1);
    }
    return counts;
  }

  private assign(run: CampaignRun, device: CampaignDevice, gateway: string): void {
    const now = this.clock.now();
    const taskId = `${device.address.replace(/:/g, '')}-${device.assignments.length + 1}`;
    device.state = 'assigned';
    device.gateway = gateway;
    device.taskId = taskId;
    device.progress = null;
    device.startedAt ??= now;
    device.assignments.push({ gateway, taskId, at: now, ended: null });
    this.view.noteTaskSent(gateway);
    const rt = this.runtimeOf(run, device);
    rt.cancel = null;
    rt.timer?.cancel();
    rt.timer = this.after(() => this.onTaskTimeout(run, device), run.spec.deviceTimeoutMs + TASK_TIMEOUT_GRACE_MS);
    const task: InstallTask = {
      v: 1,
      type: 'install',
      taskId,
      campaign: run.record.id,
      device: { address: device.address, name: device.name },
      image: run.record.image,
      timeoutMs: run.spec.deviceTimeoutMs,
      options: { encoding: run.spec.encoding, confirm: run.spec.confirm, maxAttempts: run.spec.maxAttempts },
    };
    this.log('info', `campaign ${run.record.id}: ${device.address} -> ${gateway} (task ${taskId})`);
    this.send(this.topics.tasks(gateway), () => encodePlantMessage('task', task), `task ${taskId} to ${gateway}`);
    this.changed(run);
  }

  private sendCancel(run: CampaignRun, device: CampaignDevice, purpose: 'reassign' | 'campaign', reason: string): void {
    const rt = this.runtimeOf(run, device);
    rt.cancel = purpose;
    rt.timer?.cancel();
    rt.timer = this.after(() => this.onCancelUnanswered(run, device), CANCEL_ANSWER_MS);
    if (!device.gateway || !device.taskId) return;
    const cancel = { v: 1 as const, type: 'cancel' as const, taskId: device.taskId, campaign: run.record.id, reason };
    this.send(this.topics.tasks(device.gateway), () => encodePlantMessage('task', cancel), `cancel of task ${device.taskId} to ${device.gateway}`);
  }

  private onTaskTimeout(run: CampaignRun, device: CampaignDevice): void {
    if (this.stopped || !isInFlight(device)) return;
    this.runtimeOf(run, device).timer = null;
    this.log('warn', `campaign ${run.record.id}: task ${device.taskId} of ${device.address} on ${device.gateway} timed out; cancelling it before another gateway gets the device`);
    this.sendCancel(run, device, 'reassign', 'timeout');
    this.changed(run);
  }

  /** The gateway said nothing to our cancel: the install may still run there, so the device is not handed on. */
  private onCancelUnanswered(run: CampaignRun, device: CampaignDevice): void {
    if (this.stopped || !isInFlight(device)) return;
    const rt = this.runtimeOf(run, device);
    rt.timer = null;
    const error = { code: 'TASK_TIMEOUT', message: `gateway ${device.gateway} did not answer the cancel of task ${device.taskId} within ${CANCEL_ANSWER_MS / 1000} s` };
    this.finish(run, device, rt.cancel === 'campaign' ? 'cancelled' : 'failed', error, 'no answer to cancel');
  }

  /** The device's gateway is gone (offline, or it gave the task back): another gateway gets it, within maxReassignments. */
  private gatewayLost(run: CampaignRun, device: CampaignDevice, ended: string, why: string): void {
    const rt = this.runtimeOf(run, device);
    const assignment = currentAssignment(device);
    if (assignment && assignment.ended === null) assignment.ended = ended;
    if (rt.cancel === 'campaign' || !isActive(run.record.state)) {
      this.finish(run, device, 'cancelled', { code: 'GATEWAY_LOST', message: `${why} while the campaign was stopping` }, null);
      return;
    }
    if (device.assignments.length - 1 >= run.spec.maxReassignments) {
      this.finish(run, device, 'failed', { code: 'GATEWAY_LOST', message: `${why}; the device was handed to another gateway ${device.assignments.length - 1} times, the limit is ${run.spec.maxReassignments}` }, null);
      return;
    }
    rt.timer?.cancel();
    rt.timer = null;
    rt.cancel = null;
    rt.waitingSince = this.clock.now();
    device.state = 'pending';
    device.gateway = null;
    device.taskId = null;
    device.progress = null;
    this.log('warn', `campaign ${run.record.id}: ${why}; ${device.address} goes to another gateway`);
    this.changed(run);
  }

  /** A device's end: recorded once, reported once, counted against its wave's thresholds. */
  private finish(run: CampaignRun, device: CampaignDevice, state: CampaignDevice['state'], error: CampaignDevice['error'], ended: string | null): void {
    if (isFinal(device.state)) return;
    const rt = this.runtimeOf(run, device);
    rt.timer?.cancel();
    rt.timer = null;
    rt.cancel = null;
    const assignment = currentAssignment(device);
    if (assignment && assignment.ended === null && ended !== null) assignment.ended = ended;
    device.state = state;
    device.error = error;
    device.endedAt = this.clock.now();
    const wave = run.record.waves[device.wave];
    if (wave) {
      if (state === 'succeeded') wave.succeeded++;
      if (countsAsFailure(device)) wave.failed++;
    }
    this.emitSafe('device', deviceResult(run, device));
    this.changed(run);
    if (wave && isActive(run.record.state) && countsAsFailure(device)) {
      const reason = abortReason(run.spec.waves[device.wave], device.wave, wave.size, wave.failed);
      if (reason) {
        wave.state = 'aborted';
        this.stopCampaign(run, 'aborted', reason);
        return;
      }
    }
    this.advance(run);
  }

  /** Abort or cancel: pending devices are cancelled, tasks in flight get a cancel; the end comes when none is in flight. */
  private stopCampaign(run: CampaignRun, state: 'aborted' | 'cancelled', reason: string): void {
    const record = run.record;
    record.state = state;
    record.reason = reason;
    this.log('warn', `campaign ${record.id}: ${state}: ${reason}`);
    for (const device of record.devices) {
      if (device.state === 'pending') {
        device.state = 'cancelled';
        // A pending device ends with the campaign's reason, so every device that was not updated says why.
        device.error = { code: state === 'aborted' ? 'CAMPAIGN_ABORTED' : 'CAMPAIGN_CANCELLED', message: `campaign ${state} before this device was started: ${reason}` };
        device.endedAt = this.clock.now();
        this.emitSafe('device', deviceResult(run, device));
      } else if (isInFlight(device) && this.runtimeOf(run, device).cancel !== 'campaign') {
        this.sendCancel(run, device, 'campaign', `campaign ${state}: ${reason}`);
      }
    }
    this.changed(run);
    this.maybeEnd(run);
  }

  private maybeEnd(run: CampaignRun): void {
    const record = run.record;
    if (run.ended || isActive(record.state) || record.devices.some(isInFlight)) return;
    run.ended = true;
    for (const device of record.devices) {
      // Only our own claim: a campaign that took over a device this one finished holds it now.
      const claim = this.claims.get(device.address);
      if (claim ? claim.campaign === record.id : run.claimed.has(device.address)) {
        this.claims.delete(device.address);
        this.send(this.topics.deviceClaim(device.address), Buffer.alloc(0), `claim clear of ${device.address}`, true);
      }
    }
    this.changed(run);
    const unsubscribe = run.unsubscribe;
    run.unsubscribe = null;
    unsubscribe?.().catch(() => undefined);
    this.emitSafe('campaign', clone(record));
  }

  // ---- publishing --------------------------------------------------------------------------------

  /** The record changed: retained state and progress go out, coalesced. */
  private changed(run: CampaignRun): void {
    if (this.stopped) return;
    run.record.updatedAt = this.clock.now();
    const id = run.record.id;
    this.stateOut.schedule(id, async () => {
      await this.publishSafe(this.topics.campaignState(id), () => encodePlantMessage('campaignState', run.record), `state of ${id}`, true);
    });
    this.progressOut.schedule(id, async () => this.publishProgress(run));
  }

  private async publishProgress(run: CampaignRun): Promise<void> {
    const progress = computeProgress(run.record, this.clock.now());
    this.lastProgressAt.set(run.record.id, this.clock.now());
    this.emitSafe('progress', progress);
    await this.publishSafe(this.topics.campaignProgress(run.record.id), () => encodePlantMessage('campaignProgress', progress), `progress of ${run.record.id}`, false);
  }

  private async publishClaim(address: string, campaign: string): Promise<void> {
    const claim: DeviceClaim = { v: 1, campaign, address, at: this.clock.now() };
    this.claims.set(address, claim);
    this.runs.get(campaign)?.claimed.add(address);
    await this.publishSafe(this.topics.deviceClaim(address), () => encodePlantMessage('claim', claim), `claim of ${address}`, true);
  }

  private send(topic: string, payload: Buffer | (() => Buffer), what: string, retain = false): void {
    void this.publishSafe(topic, payload, what, retain);
  }

  private async publishSafe(topic: string, payload: Buffer | (() => Buffer), what: string, retain: boolean): Promise<void> {
    try {
      await this.bus.publish(topic, typeof payload === 'function' ? payload() : payload, { retain, qos: 1 });
    } catch (err) {
      const e = toOtaError(err);
      this.warn(`could not publish the ${what}: ${e.code}: ${e.message}`);
    }
  }

  /** Every second while a campaign is live: devices waiting unseen, progress at least every progressEveryMs. */
  private ensureHousekeeping(): void {
    if (this.housekeeping || this.stopped) return;
    this.housekeeping = this.after(() => {
      this.housekeeping = null;
      if (this.stopped) return;
      const live = [...this.runs.values()].filter((r) => !r.ended);
      for (const run of live) {
        this.pump(run);
        if (!run.ended && this.clock.now() - (this.lastProgressAt.get(run.record.id) ?? Number.NEGATIVE_INFINITY) >= this.progressEveryMs) {
          this.progressOut.schedule(run.record.id, async () => this.publishProgress(run));
        }
      }
      if ([...this.runs.values()].some((r) => !r.ended)) this.ensureHousekeeping();
    }, HOUSEKEEPING_MS);
  }

  // ---- helpers -----------------------------------------------------------------------------------

  private conflictsOf(campaignId: string, addresses: string[]): Array<{ address: string; campaign: string }> {
    const out: Array<{ address: string; campaign: string }> = [];
    for (const address of addresses) {
      const holder = this.holderOf(address, campaignId);
      if (holder) out.push({ address, campaign: holder });
    }
    return out;
  }

  /** The other campaign holding the device: it is unfinished in one of ours or in another's retained state, or claimed by an unknown one. */
  private holderOf(address: string, campaignId: string): string | null {
    for (const run of this.runs.values()) {
      if (run.ended || run.record.id === campaignId) continue;
      if (run.record.devices.some((d) => d.address === address && !isFinal(d.state))) return run.record.id;
    }
    for (const [id, other] of this.others) {
      if (id !== campaignId && other.active.has(address)) return id;
    }
    // A claim speaks for a campaign whose record is unknown here (its state not retained, or not yet received).
    const claim = this.claims.get(address);
    if (claim && claim.campaign !== campaignId && !this.runs.has(claim.campaign) && !this.others.has(claim.campaign)) return claim.campaign;
    return null;
  }

  private imageBytes(sha256: string): Promise<Buffer | null> {
    for (const run of this.runs.values()) {
      if (run.image && run.image.ref.sha256 === sha256.toLowerCase()) return Promise.resolve(run.image.bytes);
    }
    return Promise.resolve(null);
  }

  private newRuntime(): DeviceRuntime {
    return { timer: null, cancel: null, waitingSince: this.clock.now(), installed: null };
  }

  private runtimeOf(run: CampaignRun, device: CampaignDevice): DeviceRuntime {
    let rt = run.runtime.get(device.address);
    if (!rt) {
      rt = this.newRuntime();
      run.runtime.set(device.address, rt);
    }
    return rt;
  }

  /**
   * Runs file I/O with a simulated clock's time held (a clock that has hold(), as the virtual one): modeled
   * time must not run on while the coordinator waits for the disk. A real clock has no hold.
   */
  private async whileClockHeld<T>(work: () => Promise<T>): Promise<T> {
    const release = (this.clock as Clock & { hold?: () => () => void }).hold?.();
    try {
      return await work();
    } finally {
      release?.();
    }
  }

  /** A clock timer whose callback never throws out of the timer (a bug becomes a warning, not a crash). */
  private after(fn: () => void, ms: number): TimerHandle {
    return this.clock.setTimer(() => {
      try {
        fn();
      } catch (err) {
        this.warn(`internal error in a coordinator timer: ${(err as Error).stack ?? String(err)}`);
      }
    }, ms);
  }

  private warn(text: string): void {
    this.log('warn', text);
    try {
      this.emit('warning', text);
    } catch {
      // a listener's own failure is not the coordinator's
    }
  }

  /** A listener that throws does not stop the coordinator: its failure becomes a warning. */
  private emitSafe(event: 'device' | 'progress' | 'campaign', value: unknown): void {
    try {
      this.emit(event, value);
    } catch (err) {
      this.warn(`a '${event}' listener threw: ${(err as Error).message}`);
    }
  }

  private log(level: CoordinatorLogLevel, text: string): void {
    this.options.log?.(level, text);
  }
}
