/**
 * The continuous low-duty scan: a scan window of scanWindowMs every scanEveryMs on the adapter's
 * scheduler (shared with the installs: the scheduler fans one central scan out to every consumer), each
 * device it reports handed to onDevice. A failing scan (adapter off, not ready) is logged and tried again
 * next period; stop() aborts the window and the wait.
 */
import { abortableSleep } from '../../ble/abort';
import type { DiscoveredDevice } from '../../ble/central';
import type { AdapterScheduler } from '../../ble/scheduler';
import type { Clock } from '../../clock';
import { toOtaError } from '../../errors';
import type { GatewayLog } from './ports';

export interface ScanLoopOptions {
  clock: Clock;
  windowMs: number;
  everyMs: number;
  onDevice: (device: DiscoveredDevice) => void;
  log: GatewayLog;
}

export class ScanLoop {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly scheduler: AdapterScheduler,
    private readonly options: ScanLoopOptions,
  ) {}

  start(): void {
    if (this.loop || this.stopping.signal.aborted) return;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { clock, windowMs, everyMs, onDevice, log } = this.options;
    const signal = this.stopping.signal;
    let lastProblem = '';
    while (!signal.aborted) {
      const startedAt = clock.now();
      try {
        const seen = await this.scheduler.scan({ durationMs: windowMs, signal }, onDevice);
        // The latest sighting of each device (its RSSI at the window's end), not only the first one.
        for (const d of seen) onDevice(d);
        lastProblem = '';
      } catch (err) {
        if (signal.aborted) break;
        const e = toOtaError(err);
        const problem = `${e.code}: ${e.message}`;
        // One line per kind of trouble, not one per period.
        if (problem !== lastProblem) log('warn', `scan failed (${problem}); trying again every ${everyMs / 1000} s`);
        lastProblem = problem;
      }
      const rest = Math.max(1, everyMs - (clock.now() - startedAt));
      await abortableSleep(clock, rest, signal).catch(() => undefined);
    }
  }
}
