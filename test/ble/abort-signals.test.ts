import { strict as assert } from 'assert';
import { anySignal, releaseSignal, withAnySignal } from '../../lib/ble/abort';

type Listen = (type: string, listener: never, options?: never) => void;

/** Counts the abort listeners on a signal, through its add/removeEventListener. */
function countListeners(signal: AbortSignal): () => number {
  let n = 0;
  const target = signal as unknown as { addEventListener: Listen; removeEventListener: Listen };
  const add = target.addEventListener.bind(signal);
  const remove = target.removeEventListener.bind(signal);
  target.addEventListener = (type, listener, options) => {
    if (type === 'abort') n++;
    add(type, listener, options);
  };
  target.removeEventListener = (type, listener, options) => {
    if (type === 'abort') n--;
    remove(type, listener, options);
  };
  return () => n;
}

describe('abort signals (the fallback for Node without AbortSignal.any, engines >= 18)', () => {
  const native = (AbortSignal as unknown as { any?: unknown }).any;
  beforeEach(() => {
    (AbortSignal as unknown as { any?: unknown }).any = undefined;
  });
  afterEach(() => {
    (AbortSignal as unknown as { any?: unknown }).any = native;
  });

  it('leaves no listener on a long-lived source after 50 operations have released their signals', async () => {
    const shutdown = new AbortController();
    const listeners = countListeners(shutdown.signal);
    for (let i = 0; i < 50; i++) {
      await withAnySignal([new AbortController().signal, shutdown.signal], async () => undefined);
      const s = anySignal([undefined, new AbortController().signal, shutdown.signal]);
      releaseSignal(s);
    }
    assert.equal(listeners(), 0);
  });

  it('still aborts with the source reason until released', () => {
    const a = new AbortController();
    const b = new AbortController();
    const combined = anySignal([a.signal, b.signal]);
    b.abort(new Error('stop'));
    assert.equal(combined.aborted, true);
    assert.equal((combined.reason as Error).message, 'stop');
  });
});
