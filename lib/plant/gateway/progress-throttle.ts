/**
 * At most one progress report per minIntervalMs: a report inside the interval waits (the newest one
 * replaces it) and goes out when the interval has passed, so the last phase before a long step is seen.
 */
import type { Clock, TimerHandle } from '../../clock';

export class ProgressThrottle<T> {
  private lastSentAt = -Infinity;
  private pending: T | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly minIntervalMs: number,
    private readonly send: (value: T) => void,
  ) {}

  update(value: T): void {
    if (this.stopped) return;
    this.pending = value;
    if (!this.timer) this.sendOrWait();
  }

  /** Sends what waits once the interval has passed (measured as the receiver will: now - last). */
  private sendOrWait(): void {
    this.timer = null;
    const next = this.pending;
    if (next === null || this.stopped) return;
    const since = this.clock.now() - this.lastSentAt;
    if (since >= this.minIntervalMs) {
      this.pending = null;
      this.emit(next);
      return;
    }
    // Whole milliseconds, checked again on firing: on a clock with fractional times, last + interval can
    // land a hair before the interval has passed.
    this.timer = this.clock.setTimer(() => this.sendOrWait(), Math.max(1, Math.ceil(this.minIntervalMs - since)));
  }

  /** Drops what waits; nothing is sent after this. */
  stop(): void {
    this.stopped = true;
    this.pending = null;
    this.timer?.cancel();
    this.timer = null;
  }

  private emit(value: T): void {
    this.lastSentAt = this.clock.now();
    this.send(value);
  }
}
