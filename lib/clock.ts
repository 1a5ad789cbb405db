/**
 * Time source used by every timer in the library (timeouts, backoff, link model). The simulator's
 * virtual clock implements it so that a whole transfer runs as fast as the CPU allows while every
 * timeout still means what it says in modeled time.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary origin (fractional allowed). */
  now(): number;
  /** Runs fn after ms milliseconds of this clock's time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  /** True when time is simulated (results report "modeled" seconds). */
  readonly virtual: boolean;
}

export const realClock: Clock = {
  now: () => performance.now(),
  /**
   * Never fires before now() reaches the due time: Node's timers count whole milliseconds of the
   * event loop's cached time and can fire up to a millisecond earlier than performance.now() says,
   * and code that compares now() with a deadline in its callback would then wait for a timer that
   * no longer exists.
   */
  setTimer(fn, ms) {
    const due = performance.now() + Math.max(0, ms);
    let timer: ReturnType<typeof setTimeout>;
    const fire = () => {
      const left = due - performance.now();
      if (left > 0) timer = setTimeout(fire, Math.ceil(left));
      else fn();
    };
    timer = setTimeout(fire, Math.max(0, ms));
    return { cancel: () => clearTimeout(timer) };
  },
  virtual: false,
};

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}

/** Rejects with `onTimeout()` when `promise` has not settled after ms of clock time. */
export function withTimeout<T>(clock: Clock, promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(() => reject(onTimeout()), ms);
    promise.then(
      (v) => {
        timer.cancel();
        resolve(v);
      },
      (e) => {
        timer.cancel();
        reject(e);
      },
    );
  });
}
