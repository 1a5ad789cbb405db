/**
 * Timers of one powered-on period of the device. A reboot or power loss cancels them all at once, which
 * is how RAM state (pending reboots, the writer task, the resume timeout) disappears in the model.
 */
import type { Clock, TimerHandle } from '../../clock';

export class TimerGroup {
  private readonly live = new Set<TimerHandle>();

  constructor(private readonly clock: Clock) {}

  set(fn: () => void, ms: number): TimerHandle {
    const handle: TimerHandle = {
      cancel: () => {
        inner.cancel();
        this.live.delete(handle);
      },
    };
    const inner = this.clock.setTimer(() => {
      this.live.delete(handle);
      fn();
    }, ms);
    this.live.add(handle);
    return handle;
  }

  cancelAll(): void {
    for (const handle of [...this.live]) handle.cancel();
  }
}
