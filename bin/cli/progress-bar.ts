/** A one-line progress bar on a TTY (stderr, so stdout keeps only the JSON result). */
import type { Progress } from '../../lib/ota/types';

export class ProgressBar {
  private lastLine = '';

  constructor(private readonly stream: NodeJS.WriteStream, private readonly width = 30) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  update(p: Progress): void {
    if (!this.enabled) return;
    const filled = Math.round((p.percent / 100) * this.width);
    const bar = '#'.repeat(filled) + '-'.repeat(this.width - filled);
    const eta = p.etaSeconds === null ? '' : ` ETA ${Math.ceil(p.etaSeconds)} s`;
    const attempt = p.attempt > 1 ? ` (attempt ${p.attempt})` : '';
    const line = `${p.device} [${bar}] ${p.percent.toFixed(1).padStart(5)}% ${p.kBps.toFixed(1)} KB/s${eta} ${p.phase}${attempt}`;
    if (line === this.lastLine) return;
    this.lastLine = line;
    this.stream.write(`\r${line.padEnd(100)}`);
  }

  finish(): void {
    if (this.enabled && this.lastLine) this.stream.write('\n');
    this.lastLine = '';
  }
}
