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
    const wait = this.lastSentAt + this.minIntervalMs - this.clock.now();
    if (wait <= 0) {
      this.emit(value);
      return;
    }
    this.pending = value;
    this.timer ??= this.clock.setTimer(() => {
      this.timer = null;
      const next = this.pending;
      this.pending = null;
      if (next !== null && !this.stopped) this.emit(next);
    }, wait);
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
