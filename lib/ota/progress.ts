/**
 * Turns "bytes acknowledged so far" into the Progress events of lib/ota/types.ts: percent, KB/s over
 * the transfer so far (clock time, so modeled on the virtual clock), ETA, phase and attempt.
 */
import type { Clock } from '../clock';
import type { FlashPhase, Progress } from './types';

export class ProgressTracker {
  private phase: FlashPhase = 'checking';
  private attempt = 0;
  private bytesDone = 0;
  /** Clock time and byte count when the current attempt's transfer started (a resume starts mid-way). */
  private startedAt: number | null = null;
  private startBytes = 0;
  private lastEmit = -Infinity;

  constructor(
    private readonly device: string,
    private readonly totalBytes: number,
    private readonly clock: Clock,
    private readonly listener?: (p: Progress) => void,
    /** Minimum clock ms between two 'transferring' events (phase changes always emit). */
    private readonly intervalMs = 100,
  ) {}

  setPhase(phase: FlashPhase, attempt = this.attempt): void {
    this.phase = phase;
    this.attempt = attempt;
    if (phase === 'transferring') {
      this.startedAt = this.clock.now();
      this.startBytes = this.bytesDone;
    }
    this.emit(true);
  }

  update(bytesDone: number): void {
    this.bytesDone = Math.min(this.totalBytes, Math.max(0, bytesDone));
    this.emit(this.bytesDone === this.totalBytes);
  }

  snapshot(): Progress {
    const elapsedS = this.startedAt === null ? 0 : (this.clock.now() - this.startedAt) / 1000;
    const moved = this.bytesDone - this.startBytes;
    const rate = elapsedS > 0 ? moved / elapsedS : 0;
    const remaining = this.totalBytes - this.bytesDone;
    return {
      device: this.device,
      phase: this.phase,
      bytesDone: this.bytesDone,
      totalBytes: this.totalBytes,
      percent: this.totalBytes > 0 ? Math.floor((this.bytesDone / this.totalBytes) * 1000) / 10 : 0,
      kBps: Math.round(rate / 10) / 100,
      etaSeconds: rate > 0 ? Math.round((remaining / rate) * 10) / 10 : null,
      attempt: this.attempt,
    };
  }

  private emit(force: boolean): void {
    if (!this.listener) return;
    const now = this.clock.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    try {
      this.listener(this.snapshot());
    } catch {
      // A failing progress listener must not break the update.
    }
  }
}
