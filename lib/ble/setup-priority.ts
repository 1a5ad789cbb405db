/**
 * Link set-up before bulk data on one adapter.
 *
 * noble's HCI layer sends the ACL packets of every link from one FIFO, as long as the packets outstanding
 * on all links together stay under the controller's LE buffer count (@abandonware/noble
 * lib/hci-socket/hci.js:713-735). A device whose BLE host is stopped by a flash erase (cache disabled for
 * up to ~150 ms, docs/DEVICE-MODEL.md §1) acknowledges nothing at the link layer once its own RX buffers
 * are full, so the Data writes queued for it keep the adapter's shared buffers, and the discovery, Status
 * read, CHALLENGE and BEGIN of a link being set up wait behind them (docs/LINK-MODEL.md §4c). A
 * link in set-up needs a handful of small packets; a transfer whose device already holds a window of data
 * loses nothing by waiting for them. So a bulk sender calls yieldTo() before each burst: it returns at
 * once unless another link of the adapter is being set up, else when those set-ups are done.
 *
 * A set-up lasts from the connect request until its session starts bulk data (its first yieldTo) or its
 * link is gone; it counts for at most MAX_SETUP_PRIORITY_MS, so a set-up that hangs (noble has no ATT
 * timeout) holds the other transfers back for that long once, never for good.
 */
import type { Clock, TimerHandle } from '../clock';
import { abortError } from './abort';

/** How long one set-up keeps precedence over the adapter's transfers (ms). */
export const MAX_SETUP_PRIORITY_MS = 2000;

/** One link's set-up; end() is idempotent. */
export interface SetupToken {
  end(): void;
}

export class SetupPriority {
  /** Set-ups in progress: token -> clock time it began. */
  private readonly setups = new Map<SetupToken, number>();
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly clock: Clock,
    private readonly maxSetupMs = MAX_SETUP_PRIORITY_MS,
  ) {}

  /** A link's set-up begins (its connect is requested). */
  begin(): SetupToken {
    const token = this.deferred();
    token.begin();
    return token;
  }

  /** A set-up that begins when begin() is called (once); end() before that only keeps it from beginning. */
  deferred(): SetupToken & { begin(): void } {
    let state: 'waiting' | 'running' | 'ended' = 'waiting';
    const token = {
      begin: () => {
        if (state !== 'waiting') return;
        state = 'running';
        this.setups.set(token, this.clock.now());
      },
      end: () => {
        state = 'ended';
        if (this.setups.delete(token)) this.wake();
      },
    };
    return token;
  }

  /** Set-ups that still have precedence. */
  pending(): number {
    return this.precedenceEnds().length;
  }

  /** Resolves when no set-up has precedence (end the caller's own first); rejects when `signal` aborts. */
  async yieldTo(signal?: AbortSignal): Promise<void> {
    for (let ends = this.precedenceEnds(); ends.length > 0; ends = this.precedenceEnds()) {
      if (signal?.aborted) throw abortError(signal);
      await this.nextChange(Math.min(...ends) - this.clock.now(), signal);
    }
    if (signal?.aborted) throw abortError(signal);
  }

  /** When each set-up that still has precedence loses it (clock time). */
  private precedenceEnds(): number[] {
    const now = this.clock.now();
    const ends: number[] = [];
    for (const since of this.setups.values()) if (since + this.maxSetupMs > now) ends.push(since + this.maxSetupMs);
    return ends;
  }

  /** Waits until a set-up ends, `ms` pass or `signal` aborts. */
  private nextChange(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | null = null;
      const done = () => {
        this.waiters.delete(done);
        timer?.cancel();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      timer = this.clock.setTimer(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
