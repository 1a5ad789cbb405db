/**
 * Deterministic discrete-event time for the simulator. Timers fire in (time, insertion) order; time
 * jumps to the next timer only after the process has run everything else that was pending: each
 * timer runs in its own setImmediate turn, so promise chains, nextTicks and the synchronous event
 * emission of noble complete between two timers. Nothing runs (and nothing keeps Node alive) while
 * no timer is pending. Work that waits on real I/O (the firmware twin's stdio) takes a hold(), which
 * stops time from advancing until it is released.
 */
import type { Clock, TimerHandle } from '../clock';
import { realClock } from '../clock';

/** A pending timer; it is also the handle setTimer returns (one object per timer on the hot path). */
class Timer implements TimerHandle {
  /** Cancelled or fired: cancelling then changes nothing. */
  cancelled = false;

  constructor(
    readonly at: number,
    readonly seq: number,
    readonly fn: () => void,
    private readonly clock: VirtualClock,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.clock.timerCancelled();
  }
}

/** Binary min-heap on (at, seq). */
class TimerHeap {
  private readonly items: Timer[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Timer | undefined {
    return this.items[0];
  }

  push(timer: Timer): void {
    const a = this.items;
    a.push(timer);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i], a[parent])) break;
      const t = a[i];
      a[i] = a[parent];
      a[parent] = t;
      i = parent;
    }
  }

  pop(): Timer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        const t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
      }
    }
    return top;
  }
}

function before(x: Timer, y: Timer): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

export interface VirtualClockOptions {
  /** Start time in ms (default 0). */
  startMs?: number;
}

export class VirtualClock implements Clock {
  readonly virtual = true;
  private time: number;
  private seq = 0;
  private readonly heap = new TimerHeap();
  private live = 0;
  private stepScheduled = false;
  private holds = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly stepFn = () => this.step();
  /** Timers fired so far (for tests and the benchmark's cost figures). */
  firedTimers = 0;

  constructor(options: VirtualClockOptions = {}) {
    this.time = options.startMs ?? 0;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer = new Timer(this.time + delay, this.seq++, fn, this);
    this.heap.push(timer);
    this.live++;
    this.schedule();
    return timer;
  }

  /** Called by a Timer the first time it is cancelled. */
  timerCancelled(): void {
    this.live--;
    this.notifyIdleIfDone();
  }

  /** Number of timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.live;
  }

  /**
   * Stops time from advancing until the returned release function is called (idempotent). Use it
   * while waiting for something outside the clock, e.g. a child process's answer.
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.schedule();
    };
  }

  /** Drops every pending timer and stops; later timers run again (used when a simulation closes). */
  stop(): void {
    while (this.heap.pop()) {
      // drained
    }
    this.live = 0;
    this.notifyIdleIfDone();
  }

  /** Resolves once no timer is pending (time stops there). */
  idle(): Promise<void> {
    if (this.live === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Awaits a promise while the clock runs; rejects when it has not settled after limitMs of virtual
   * time or when the clock ran out of timers first (it would then never settle by itself... unless
   * real I/O is pending, which holds the clock).
   */
  runUntil<T>(promise: Promise<T>, limitMs = Number.POSITIVE_INFINITY): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const deadline = Number.isFinite(limitMs)
        ? this.setTimer(() => {
            if (!settled) reject(new Error(`runUntil: not settled after ${limitMs} ms of virtual time`));
          }, limitMs)
        : null;
      promise.then(
        (v) => {
          settled = true;
          deadline?.cancel();
          resolve(v);
        },
        (e) => {
          settled = true;
          deadline?.cancel();
          reject(e);
        },
      );
    });
  }

  private schedule(): void {
    if (this.stepScheduled || this.holds > 0 || this.live === 0) return;
    this.stepScheduled = true;
    setImmediate(this.stepFn);
  }

  private step(): void {
    this.stepScheduled = false;
    if (this.holds > 0) return;
    let timer = this.heap.pop();
    while (timer && timer.cancelled) timer = this.heap.pop();
    if (!timer) {
      this.notifyIdleIfDone();
      return;
    }
    this.live--;
    timer.cancelled = true;
    this.time = timer.at;
    this.firedTimers++;
    try {
      timer.fn();
    } finally {
      // Queued after fn so that setImmediate callbacks fn caused run before the next timer; in a
      // finally so that a throwing timer cannot stop the clock.
      this.schedule();
      this.notifyIdleIfDone();
    }
  }

  private notifyIdleIfDone(): void {
    if (this.live !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

export type ClockMode = 'virtual' | 'real';

/** The clock of a simulation: a fresh VirtualClock, or lib/clock's realClock for demos. */
export function createClock(mode: ClockMode): Clock {
  return mode === 'virtual' ? new VirtualClock() : realClock;
}

export function isVirtualClock(clock: Clock): clock is VirtualClock {
  return clock instanceof VirtualClock;
}
