/**
 * `esp32-ble-ota campaign [--seconds N] [--schedules N] [--seed S] [--replay S:I] [--implementations model,twin]
 * [--prior-updates p] [--workers N] [--concurrency N]`:
 * the reliability campaign of the simulator (docs/FAULTS.md). Prints the JSON summary; exit code 1
 * when an invariant was violated.
 */
import * as os from 'os';
import { OtaError } from '../../lib/errors';
import { numberOption, stringOption, type ParsedArgs } from './args';
import type { Output } from './commands';

export async function campaignCommand(args: ParsedArgs, io: Output): Promise<number> {
  const { runCampaign } = await import('../../lib/sim/campaign/runner');
  const { DEFAULT_PRIOR_UPDATES } = await import('../../lib/sim/campaign/schedule');
  let seed = numberOption(args, 'seed', 1);
  let replay: number | undefined;
  const replayText = stringOption(args, 'replay');
  if (replayText !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(replayText);
    if (!m) throw new OtaError('BAD_ARGUMENT', `--replay takes seed:index (as the campaign prints it), got "${replayText}"`);
    seed = Number(m[1]);
    replay = Number(m[2]);
  }
  if (!Number.isInteger(seed) || seed < 0) throw new OtaError('BAD_ARGUMENT', `--seed must be an integer >= 0, got ${seed}`);
  const implementations = stringOption(args, 'implementations')?.split(',');
  if (implementations && !implementations.every((i) => i === 'model' || i === 'twin')) throw new OtaError('BAD_ARGUMENT', '--implementations is a list of model and twin');
  const seconds = args.options.has('seconds') ? numberOption(args, 'seconds', 60) : undefined;
  const schedules = args.options.has('schedules') ? numberOption(args, 'schedules', 100) : undefined;
  const priorUpdates = numberOption(args, 'prior-updates', DEFAULT_PRIOR_UPDATES);
  // Both cores by default: schedules are independent (docs/FAULTS.md "Campaign").
  const workers = numberOption(args, 'workers', Math.min(2, os.availableParallelism()));
  const concurrency = numberOption(args, 'concurrency', 4);
  if (!(Number.isInteger(workers) && workers >= 0 && workers <= 64)) throw new OtaError('BAD_ARGUMENT', `--workers is a whole number from 0 to 64, got ${workers}`);
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 64)) throw new OtaError('BAD_ARGUMENT', `--concurrency is a whole number from 1 to 64, got ${concurrency}`);
  if (!(priorUpdates >= 0 && priorUpdates <= 1)) throw new OtaError('BAD_ARGUMENT', `--prior-updates is a share from 0 to 1, got ${priorUpdates}`);
  const summary = await runCampaign({
    seed,
    priorUpdates,
    replay,
    workers,
    concurrency,
    seconds: seconds ?? (schedules === undefined && replay === undefined ? 60 : undefined),
    schedules,
    implementations: implementations as Array<'model' | 'twin'> | undefined,
    onSchedule: (o) => {
      if (replay !== undefined || o.violations.length > 0) io.err(JSON.stringify(o));
    },
  });
  io.out(JSON.stringify(summary, null, 2));
  return summary.violations === 0 ? 0 : 1;
}
