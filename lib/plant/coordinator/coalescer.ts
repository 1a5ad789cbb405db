/**
 * Publishes the latest value of each key at most once per interval: the first change goes out at once,
 * changes within the interval after it are folded into one publish at its end (retained campaign state and
 * progress change on every execution status; the broker needs only the latest).
 */
import type { Clock, TimerHandle } from '../../clock';

export class Coalescer {
  private readonly lastSent = new Map<string, number>();
  private readonly timers = new Map<string, TimerHandle>();
  private readonly pending = new Map<string, () => Promise<void>>();

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  /** Sends `send` now or at the end of the key's interval; a later call replaces a waiting one. */
  schedule(key: string, send: () => Promise<void>): void {
    this.pending.set(key, send);
    if (this.timers.has(key)) return;
    const wait = (this.lastSent.get(key) ?? Number.NEGATIVE_INFINITY) + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      void this.flush(key);
      return;
    }
    this.timers.set(
      key,
      this.clock.setTimer(() => {
        this.timers.delete(key);
        void this.flush(key);
      }, wait),
    );
  }

  /** Sends what waits for `key` now. */
  async flush(key: string): Promise<void> {
    const timer = this.timers.get(key);
    timer?.cancel();
    this.timers.delete(key);
    const send = this.pending.get(key);
    if (!send) return;
    this.pending.delete(key);
    this.lastSent.set(key, this.clock.now());
    await send();
  }

  async flushAll(): Promise<void> {
    await Promise.all([...this.pending.keys()].map((key) => this.flush(key)));
  }

  /** Drops everything waiting (no publish). */
  clear(): void {
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
    this.pending.clear();
  }
}
