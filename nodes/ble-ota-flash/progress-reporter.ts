/**
 * Thins the library's progress callbacks (one per ACK) down to what a flow wants: every phase change
 * and at most one update per interval, for node status and the optional progress output.
 */
import type { Progress } from '../../lib/ota/types';

export class ProgressReporter {
  private lastPhase = '';
  private lastAt = 0;
  private finished = false;

  constructor(
    private readonly intervalMs: number,
    private readonly onStatus: (p: Progress) => void,
    private readonly onMessage?: (p: Progress) => void,
  ) {}

  update(p: Progress): void {
    if (this.finished) return;
    const now = Date.now();
    const phaseChanged = p.phase !== this.lastPhase;
    if (!phaseChanged && now - this.lastAt < this.intervalMs && p.percent < 100) return;
    this.lastPhase = p.phase;
    this.lastAt = now;
    this.onStatus(p);
    this.onMessage?.({ ...p });
  }

  finish(): void {
    this.finished = true;
  }
}
