/**
 * Transfer-offset bookkeeping of a v2 session (PROTOCOL.md §3): which Data writes are accepted and
 * which NAK the others get. Pure logic: the ring buffer and flash live in UpdateWriter.
 */
import { ErrorCode } from '../../protocol/constants';

export type DataVerdict = { kind: 'accept' } | { kind: 'nak'; err: number; expected: number } | { kind: 'drop' };

const ACCEPT: DataVerdict = Object.freeze({ kind: 'accept' });
const DROP: DataVerdict = Object.freeze({ kind: 'drop' });

export class ReceiveWindow {
  /** Next transfer offset needed. */
  expected = 0;
  private duplicateNakSent = false;
  private gapNakSent = false;

  constructor(
    readonly transferSize: number,
    public chunkSize: number,
    readonly window: number,
  ) {}

  /**
   * PROTOCOL.md §3 order (after EMPTY_WRITE and NO_SESSION, which the caller checks): OVERSIZED,
   * DUPLICATE, GAP, OUT_OF_WINDOW. taken: bytes the writer has taken out of the ring (the ring holds
   * expected - taken, so taken + window is where the ring is full).
   */
  judge(offset: number, payloadLength: number, taken: number): DataVerdict {
    if (payloadLength > this.chunkSize) return this.nak(ErrorCode.OVERSIZED);
    if (offset < this.expected) {
      if (this.duplicateNakSent) return DROP;
      this.duplicateNakSent = true;
      return this.nak(ErrorCode.DUPLICATE);
    }
    if (offset > this.expected) {
      if (this.gapNakSent) return DROP;
      this.gapNakSent = true;
      return this.nak(ErrorCode.GAP);
    }
    const end = offset + payloadLength;
    if (end > this.transferSize || end > taken + this.window) return this.nak(ErrorCode.OUT_OF_WINDOW);
    this.expected = end;
    this.duplicateNakSent = false;
    this.gapNakSent = false;
    return ACCEPT;
  }

  /** Resume: the client continues from here (bytes past it still in the ring are dropped). */
  rewind(offset: number): void {
    this.expected = offset;
    this.duplicateNakSent = false;
    this.gapNakSent = false;
  }

  get complete(): boolean {
    return this.expected === this.transferSize;
  }

  private nak(err: number): DataVerdict {
    return { kind: 'nak', err, expected: this.expected };
  }
}
