/**
 * The reliability campaign (docs/FAULTS.md "Campaign"): seeded random schedules (schedule.ts) run
 * (run-schedule.ts) for a time budget or a number of schedules, summarised as JSON with a replay command
 * for every schedule that broke an invariant or failed. Schedules are independent (each has its own fleet,
 * virtual clock and twin process), so several run at once: `concurrency` in one thread (they overlap while
 * twins compute), and `workers` threads (worker.ts) to use more than one core. A schedule's outcome does not
 * depend on what runs beside it; only which schedules fit in a time budget does.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { findTwinBinary } from '../twin-device';
import { runSchedule, MAX_ATTEMPTS, type ScheduleOutcome } from './run-schedule';
import { drawSchedule, implementationOf, loadRealImages, DEFAULT_PRIOR_UPDATES, FAULT_COUNT_WEIGHTS, type Implementation } from './schedule';

export interface CampaignOptions {
  seed: number;
  /** Stop starting schedules after this many seconds of real time. */
  seconds?: number;
  /** Stop after this many schedules. */
  schedules?: number;
  /** Run only this schedule index (a replay). */
  replay?: number;
  implementations?: Implementation[];
  /** Share of schedules that first install an earlier update without reboot (default DEFAULT_PRIOR_UPDATES). */
  priorUpdates?: number;
  /** Schedules run at once in each thread (default 4). */
  concurrency?: number;
  /** Worker threads (default 0: the calling thread runs the schedules). */
  workers?: number;
  /** Directory of real images (default: ../shared/vectors next to the package, when present). */
  vectorsDir?: string;
  onSchedule?: (outcome: ScheduleOutcome) => void;
}

export interface CampaignSummary {
  seed: number;
  schedules: number;
  perImplementation: Record<string, number>;
  outcomes: Record<string, number>;
  errorCodes: Record<string, number>;
  /** Retries (attempts - 1) of the updates that succeeded. */
  retriesHistogram: Record<string, number>;
  /** Of all schedules, the share whose update succeeded within 3 retries (percent). */
  doneWithin3RetriesPercent: number;
  violations: number;
  /** Per fault kind: schedules that had it, and how many of them were not done within 3 retries. */
  byFaultKind: Record<string, { schedules: number; notDoneWithin3Retries: number }>;
  failing: Array<{ index: number; implementation: string; outcome: string; errorCode?: string; faults: string[]; violations: ScheduleOutcome['violations']; replay: string }>;
  faultDensity: { countWeights: readonly number[]; maxAttempts: number };
  twin: 'available' | 'missing (make -C firmware/test twin)';
  seconds: number;
}

/** $BLE_OTA_VECTORS, else ../shared/vectors beside the package (the project's real image vectors). */
export function defaultVectorsDir(): string {
  if (process.env.BLE_OTA_VECTORS) return process.env.BLE_OTA_VECTORS;
  return path.resolve(__dirname, '..', '..', '..', '..', '..', 'shared', 'vectors');
}

/** Where the campaign's schedule indexes come from: in order, skipping the implementations not run. */
class IndexSource {
  private next: number;
  private started = 0;

  constructor(
    private readonly options: CampaignOptions,
    private readonly allowed: Set<Implementation>,
    private readonly deadline: number,
  ) {
    this.next = options.replay ?? 0;
  }

  take(): number | null {
    const limit = this.options.replay !== undefined ? 1 : (this.options.schedules ?? Infinity);
    for (;;) {
      if (this.started >= limit || Date.now() >= this.deadline) return null;
      const index = this.next++;
      const implementation = implementationOf(index);
      if (!this.allowed.has(implementation)) {
        if (this.options.replay !== undefined) throw new Error(`schedule ${index} runs on the ${implementation}, which is not available`);
        continue;
      }
      this.started++;
      return index;
    }
  }
}

/** Runs schedules `concurrency` at a time until the source is dry (also the body of a worker thread). */
export async function runPool(concurrency: number, take: () => Promise<number | null> | number | null, run: (index: number) => Promise<ScheduleOutcome>, record: (outcome: ScheduleOutcome) => void): Promise<void> {
  const lane = async (): Promise<void> => {
    for (let index = await take(); index !== null; index = await take()) record(await run(index));
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
}

/** The fault kinds of a schedule as the summary counts them (powerCut by flash operation or by time apart). */
function faultKindsOf(specs: string[]): Set<string> {
  return new Set(specs.map((spec) => (spec.startsWith('powerCut@') ? (spec.includes('flashOp=') ? 'powerCut@flashOp' : 'powerCut@atMs') : spec.split('@')[0])));
}

export async function runCampaign(options: CampaignOptions): Promise<CampaignSummary> {
  const started = Date.now();
  const twinAvailable = findTwinBinary() !== null;
  const allowed = new Set<Implementation>((options.implementations ?? ['model', 'twin']).filter((i) => i !== 'twin' || twinAvailable));
  const vectorsDir = options.vectorsDir ?? defaultVectorsDir();
  const priorUpdates = options.priorUpdates ?? DEFAULT_PRIOR_UPDATES;
  const summary: CampaignSummary = {
    seed: options.seed,
    schedules: 0,
    perImplementation: {},
    outcomes: {},
    errorCodes: {},
    retriesHistogram: {},
    doneWithin3RetriesPercent: 0,
    violations: 0,
    byFaultKind: {},
    failing: [],
    faultDensity: { countWeights: FAULT_COUNT_WEIGHTS, maxAttempts: MAX_ATTEMPTS },
    twin: twinAvailable ? 'available' : 'missing (make -C firmware/test twin)',
    seconds: 0,
  };
  let within3 = 0;
  const deadline = options.seconds !== undefined ? started + options.seconds * 1000 : Infinity;
  const source = new IndexSource(options, allowed, deadline);
  const record = (outcome: ScheduleOutcome): void => {
    options.onSchedule?.(outcome);
    summary.schedules++;
    const bump = (table: Record<string, number>, key: string) => (table[key] = (table[key] ?? 0) + 1);
    bump(summary.perImplementation, outcome.implementation);
    bump(summary.outcomes, outcome.outcome);
    if (outcome.errorCode) bump(summary.errorCodes, outcome.errorCode);
    const ok = outcome.outcome === 'done' && outcome.attempts !== undefined && outcome.attempts - 1 <= 3;
    if (outcome.outcome === 'done' && outcome.attempts !== undefined) bump(summary.retriesHistogram, String(outcome.attempts - 1));
    if (ok) within3++;
    for (const kind of faultKindsOf(outcome.faults)) {
      const row = (summary.byFaultKind[kind] ??= { schedules: 0, notDoneWithin3Retries: 0 });
      row.schedules++;
      if (!ok) row.notDoneWithin3Retries++;
    }
    summary.violations += outcome.violations.length;
    if (outcome.violations.length > 0 || outcome.outcome !== 'done') {
      summary.failing.push({
        index: outcome.index,
        implementation: outcome.implementation,
        outcome: outcome.outcome,
        errorCode: outcome.errorCode,
        faults: outcome.faults,
        violations: outcome.violations,
        replay: `npm run campaign -- --replay ${options.seed}:${outcome.index}${priorUpdates !== DEFAULT_PRIOR_UPDATES ? ` --prior-updates ${priorUpdates}` : ''}`,
      });
    }
  };
  const concurrency = options.replay !== undefined ? 1 : (options.concurrency ?? 4);
  const workers = options.replay !== undefined ? 0 : (options.workers ?? 0);
  if (workers > 0) {
    await Promise.all(Array.from({ length: workers }, () => runWorker({ seed: options.seed, priorUpdates, vectorsDir, concurrency }, () => source.take(), record)));
  } else {
    const real = loadRealImages(vectorsDir);
    await runPool(concurrency, () => source.take(), (index) => runSchedule(drawSchedule(options.seed, index, real, priorUpdates)), record);
  }
  summary.failing.sort((a, b) => a.index - b.index);
  summary.doneWithin3RetriesPercent = summary.schedules ? Math.round((within3 / summary.schedules) * 10000) / 100 : 0;
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  return summary;
}

/** What a worker thread is told (worker.ts). */
export interface WorkerSetup {
  seed: number;
  priorUpdates: number;
  vectorsDir: string;
  concurrency: number;
}

/** Messages between the campaign and a worker: it asks for indexes and reports outcomes. */
export type WorkerMessage = { type: 'take' } | { type: 'outcome'; outcome: ScheduleOutcome } | { type: 'done' } | { type: 'error'; message: string };

function runWorker(setup: WorkerSetup, take: () => number | null, record: (outcome: ScheduleOutcome) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: setup });
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    };
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'take') {
        let index: number | null;
        try {
          index = take();
        } catch (err) {
          index = null;
          finish(err as Error);
        }
        worker.postMessage({ index });
      } else if (msg.type === 'outcome') record(msg.outcome);
      else if (msg.type === 'error') finish(new Error(`campaign worker: ${msg.message}`));
      else if (msg.type === 'done') {
        finish();
        void worker.terminate();
      }
    });
    worker.on('error', (err) => finish(err));
    worker.on('exit', (code) => finish(code === 0 ? undefined : new Error(`campaign worker exited with code ${code}`)));
  });
}
