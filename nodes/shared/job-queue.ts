/**
 * A node's own work queue: Node-RED hands a node every message as it arrives, so a flash node that
 * gets a second request while the first transfer runs must hold it. Jobs run up to `limit()` at a
 * time (the adapter's connection limit), one at a time per device key, first in first out.
 */
import { OtaError } from '../../lib/errors';

export interface Job {
  readonly key: string;
  readonly controller: AbortController;
}

interface QueuedJob extends Job {
  run(signal: AbortSignal): Promise<void>;
  /** Called instead of run when the job is cancelled while still waiting. */
  dropped(reason: OtaError): void;
  settled?: Promise<void>;
}

export class JobQueue {
  private readonly waiting: QueuedJob[] = [];
  private readonly running = new Set<QueuedJob>();

  constructor(
    private readonly limit: () => number,
    private readonly onChange: () => void = () => undefined,
  ) {}

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  runningKeys(): string[] {
    return [...this.running].map((j) => j.key);
  }

  /** True when a job for this key runs or waits. */
  has(key: string): boolean {
    return this.waiting.some((j) => j.key === key) || [...this.running].some((j) => j.key === key);
  }

  add(key: string, run: (signal: AbortSignal) => Promise<void>, dropped: (reason: OtaError) => void): Job {
    const job: QueuedJob = { key, controller: new AbortController(), run, dropped };
    this.waiting.push(job);
    this.pump();
    this.onChange();
    return job;
  }

  /** Aborts running jobs and drops waiting ones for `key` (all when undefined); returns how many. */
  cancel(key: string | undefined, reason: OtaError): number {
    let count = 0;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const job = this.waiting[i];
      if (key !== undefined && job.key !== key) continue;
      this.waiting.splice(i, 1);
      job.dropped(reason);
      count++;
    }
    for (const job of this.running) {
      if (key !== undefined && job.key !== key) continue;
      job.controller.abort(reason);
      count++;
    }
    this.onChange();
    return count;
  }

  /** Cancels one job, running or waiting (e.g. its HTTP client went away); false when it is already done. */
  cancelJob(job: Job, reason: OtaError): boolean {
    const index = this.waiting.indexOf(job as QueuedJob);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      (job as QueuedJob).dropped(reason);
      this.onChange();
      return true;
    }
    if (!this.running.has(job as QueuedJob)) return false;
    job.controller.abort(reason);
    return true;
  }

  /** Cancels everything and waits (at most timeoutMs) for running jobs to wind down. */
  async shutdown(reason: OtaError, timeoutMs: number): Promise<void> {
    const settling = [...this.running].map((j) => j.settled);
    this.cancel(undefined, reason);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(settling),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private pump(): void {
    for (let i = 0; i < this.waiting.length && this.running.size < Math.max(1, this.limit()); ) {
      const job = this.waiting[i];
      if ([...this.running].some((r) => r.key === job.key)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.running.add(job);
      job.settled = job
        .run(job.controller.signal)
        .catch(() => undefined)
        .finally(() => {
          this.running.delete(job);
          this.pump();
          this.onChange();
        });
    }
  }
}
