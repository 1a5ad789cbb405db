/**
 * The reliability campaign (docs/FAULTS.md "Campaign"): seeded random schedules (schedule.ts) run one
 * after another (run-schedule.ts) for a time budget or a number of schedules, summarised as JSON with a
 * replay command for every schedule that broke an invariant or failed.
 */
import * as path from 'path';
import { findTwinBinary } from '../twin-device';
import { runSchedule, MAX_ATTEMPTS, type ScheduleOutcome } from './run-schedule';
import { drawSchedule, loadRealImages, FAULT_COUNT_WEIGHTS, type Implementation } from './schedule';

export interface CampaignOptions {
  seed: number;
  /** Stop starting schedules after this many seconds of real time. */
  seconds?: number;
  /** Stop after this many schedules. */
  schedules?: number;
  /** Run only this schedule index (a replay). */
  replay?: number;
  implementations?: Implementation[];
  /** Share of schedules that first install an earlier update without reboot (default 0). */
  priorUpdates?: number;
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

export async function runCampaign(options: CampaignOptions): Promise<CampaignSummary> {
  const started = Date.now();
  const twinAvailable = findTwinBinary() !== null;
  const allowed = new Set<Implementation>((options.implementations ?? ['model', 'twin']).filter((i) => i !== 'twin' || twinAvailable));
  const real = loadRealImages(options.vectorsDir ?? defaultVectorsDir());
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
  const limit = options.replay !== undefined ? 1 : (options.schedules ?? Infinity);
  for (let index = options.replay ?? 0; summary.schedules < limit && Date.now() < deadline; index++) {
    const schedule = drawSchedule(options.seed, index, real, options.priorUpdates ?? 0);
    if (!allowed.has(schedule.implementation)) {
      if (options.replay !== undefined) throw new Error(`schedule ${index} runs on the ${schedule.implementation}, which is not available`);
      continue;
    }
    const outcome = await runSchedule(schedule);
    options.onSchedule?.(outcome);
    summary.schedules++;
    const bump = (table: Record<string, number>, key: string) => (table[key] = (table[key] ?? 0) + 1);
    bump(summary.perImplementation, outcome.implementation);
    bump(summary.outcomes, outcome.outcome);
    if (outcome.errorCode) bump(summary.errorCodes, outcome.errorCode);
    const ok = outcome.outcome === 'done' && outcome.attempts !== undefined && outcome.attempts - 1 <= 3;
    if (outcome.outcome === 'done' && outcome.attempts !== undefined) bump(summary.retriesHistogram, String(outcome.attempts - 1));
    if (ok) within3++;
    for (const kind of new Set(schedule.faults.map((f) => (f.kind === 'powerCut' ? (f.flashOp !== undefined ? 'powerCut@flashOp' : 'powerCut@atMs') : f.kind)))) {
      const row = (summary.byFaultKind[kind] ??= { schedules: 0, notDoneWithin3Retries: 0 });
      row.schedules++;
      if (!ok) row.notDoneWithin3Retries++;
    }
    summary.violations += outcome.violations.length;
    if (outcome.violations.length > 0 || outcome.outcome !== 'done') {
      summary.failing.push({
        index,
        implementation: outcome.implementation,
        outcome: outcome.outcome,
        errorCode: outcome.errorCode,
        faults: outcome.faults,
        violations: outcome.violations,
        replay: `npm run campaign -- --replay ${options.seed}:${index}${options.priorUpdates ? ` --prior-updates ${options.priorUpdates}` : ''}`,
      });
    }
  }
  summary.doneWithin3RetriesPercent = summary.schedules ? Math.round((within3 / summary.schedules) * 10000) / 100 : 0;
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  return summary;
}
