/**
 * AbortSignal helpers shared by the scheduler and the OTA operations: one error for "cancelled",
 * signals combined without AbortSignal.any (Node 18 lacks it), and abortable waits.
 */
import { OtaError } from '../errors';
import type { Clock } from '../clock';

/** The error an aborted operation rejects with: the signal's reason when it is an OtaError. */
export function abortError(signal: AbortSignal | undefined): OtaError {
  const reason: unknown = signal?.reason;
  if (reason instanceof OtaError) return reason;
  const detail = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new OtaError('CANCELLED', `the operation was cancelled${detail}`);
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Listeners a combined signal of the fallback left on its sources, removed by releaseSignal. */
const fallbackCleanups = new WeakMap<AbortSignal, () => void>();

/**
 * A signal that aborts when any of the given ones does (with that one's reason). Call releaseSignal
 * when the operation using it is over (or use withAnySignal): without AbortSignal.any the combined
 * signal holds a listener on every source, and a long-lived source would collect one per operation.
 */
export function anySignal(signals: Array<AbortSignal | undefined>): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return present[0];
  // Node >= 20.3: dependent signals are held weakly, so long-lived sources (a scheduler's shutdown
  // signal) do not accumulate listeners from every operation.
  const native = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (native) return native(present);
  const controller = new AbortController();
  for (const s of present) {
    if (s.aborted) {
      controller.abort(s.reason);
      return controller.signal;
    }
  }
  const cleanups: Array<() => void> = [];
  const release = () => {
    for (const c of cleanups) c();
    cleanups.length = 0;
  };
  for (const s of present) {
    const onAbort = () => {
      controller.abort(s.reason);
      release();
    };
    s.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => s.removeEventListener('abort', onAbort));
  }
  fallbackCleanups.set(controller.signal, release);
  return controller.signal;
}

/** Removes what anySignal's fallback attached to the sources (nothing to do for AbortSignal.any). */
export function releaseSignal(signal: AbortSignal): void {
  fallbackCleanups.get(signal)?.();
}

/** Runs fn with the combined signal and releases it when fn settles. */
export async function withAnySignal<T>(signals: Array<AbortSignal | undefined>, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = anySignal(signals);
  try {
    return await fn(signal);
  } finally {
    releaseSignal(signal);
  }
}

/** Settles like `promise`, or rejects with abortError as soon as `signal` aborts (onAbort runs then). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    onAbort?.();
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const listener = () => {
      onAbort?.();
      reject(abortError(signal));
    };
    signal.addEventListener('abort', listener, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', listener);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', listener);
        reject(e);
      },
    );
  });
}

/** Waits ms of clock time; rejects early when the signal aborts. */
export function abortableSleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  let timer: { cancel(): void } | undefined;
  const slept = new Promise<void>((resolve) => (timer = clock.setTimer(resolve, ms)));
  return abortable(slept, signal, () => timer?.cancel());
}
