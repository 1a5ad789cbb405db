/**
 * The firmware's writer task for one v2 session. Data payloads land in a ring buffer the size of the
 * window; the writer takes bytes out of the ring (DATA_ACK covers only taken bytes, so the device never
 * acknowledges what it could not queue), inflates them, hashes them, checks the image header before the
 * first flash write, and programs 256-byte pages, erasing ahead of the write position (64 KiB blocks
 * where aligned) whenever it has nothing else to do. Flash work takes clock time (flash-timing.ts);
 * the ring keeps receiving meanwhile.
 */
import { createHash, Hash } from 'crypto';
import { ErrorCode } from '../../protocol/constants';
import { BLOCK_SIZE, FlashTiming, PAGE_SIZE, SECTOR_SIZE, alignUp } from './flash-timing';
import { EARLY_HEADER_SIZE, HeaderVerdict } from './header-check';
import { DeviceFlash } from './image-slots';
import { InflateError, StreamInflater } from './inflate';
import { SlotIndex } from './ota-data';
import { TimerGroup } from './timers';

/** Largest piece the writer takes out of the ring at once (its working buffer). */
export const WRITER_TAKE_BYTES = 4096;
/** Default of CONFIG_BLE_OTA_ERASE_AHEAD_BYTES. */
export const DEFAULT_ERASE_AHEAD = 65536;

export interface WriterOptions {
  timers: TimerGroup;
  timing: FlashTiming;
  flash: DeviceFlash;
  slot: SlotIndex;
  imageSize: number;
  transferSize: number;
  deflate: boolean;
  ackInterval: number;
  eraseAhead?: number;
  checkHeader(head: Buffer): HeaderVerdict;
  onAck(nextOffset: number): void;
  onFailure(err: number, message: string): void;
}

export class UpdateWriter {
  private ring: Buffer[] = [];
  private ringBytes = 0;
  /** Transfer bytes taken out of the ring (what DATA_ACK may cover). */
  taken = 0;
  private lastAck = 0;
  /** Decoded image bytes so far. */
  decoded = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly inflater: StreamInflater | null;
  private head: Buffer[] = [];
  private headerOk = false;
  private pending: Buffer = Buffer.alloc(0);
  private writePos = 0;
  private erasedEnd = 0;
  private busy = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private readonly eraseLimit: number;
  private readonly eraseAhead: number;

  constructor(private readonly o: WriterOptions) {
    this.inflater = o.deflate ? new StreamInflater() : null;
    this.eraseLimit = alignUp(o.imageSize, SECTOR_SIZE);
    this.eraseAhead = o.eraseAhead ?? DEFAULT_ERASE_AHEAD;
  }

  /** Bytes waiting in the ring. */
  get queued(): number {
    return this.ringBytes;
  }

  /** True when the deflate stream ended properly (raw: always). */
  get streamComplete(): boolean {
    return this.inflater ? this.inflater.finished : true;
  }

  /** Decoded bytes programmed to flash. */
  get written(): number {
    return this.writePos;
  }

  enqueue(payload: Buffer): void {
    this.ring.push(payload);
    this.ringBytes += payload.length;
    this.kick();
  }

  /** Resume: forget ring bytes not yet taken; the client resends from `taken`. */
  discardQueued(): number {
    this.ring = [];
    this.ringBytes = 0;
    return this.taken;
  }

  /** The session ended (abort, error, power loss): no more work. */
  stop(): void {
    this.stopped = true;
    this.idleWaiters = [];
  }

  /** Runs fn once the ring is empty and no flash work is running. */
  whenIdle(fn: () => void): void {
    if (!this.busy && this.ringBytes === 0) fn();
    else this.idleWaiters.push(fn);
  }

  digest(): Buffer {
    return this.hash.copy().digest();
  }

  private kick(): void {
    if (!this.busy && !this.stopped) this.run();
  }

  private run(): void {
    for (;;) {
      if (this.stopped) return;
      let cost = 0;
      if (this.ringBytes > 0) {
        // Never take past the next ACK point, so ACKs come at least every ack_interval bytes.
        const piece = this.takeFromRing(Math.min(WRITER_TAKE_BYTES, this.lastAck + this.o.ackInterval - this.taken));
        if (!this.process(piece)) return;
        cost = this.flushPages();
      } else if (this.headerOk && this.erasedEnd < Math.min(this.eraseLimit, this.writePos + this.eraseAhead)) {
        cost = this.eraseNext();
      }
      if (cost > 0) {
        this.busy = true;
        this.o.timers.set(() => {
          this.busy = false;
          this.run();
        }, cost);
        return;
      }
      if (this.ringBytes === 0) break;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private takeFromRing(max: number): Buffer {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && this.ring.length > 0) {
      const first = this.ring[0];
      const want = max - n;
      if (first.length <= want) {
        parts.push(first);
        this.ring.shift();
        n += first.length;
      } else {
        parts.push(first.subarray(0, want));
        this.ring[0] = first.subarray(want);
        n += want;
      }
    }
    this.ringBytes -= n;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }

  /** Decode, hash, header check, ACK. False when the session failed. */
  private process(piece: Buffer): boolean {
    this.taken += piece.length;
    let out: Buffer;
    try {
      out = this.inflater ? this.inflater.push(piece) : piece;
    } catch (err) {
      const why = err instanceof InflateError ? err.message : String(err);
      return this.fail(ErrorCode.DECODE_FAILED, why);
    }
    if (this.decoded + out.length > this.o.imageSize) {
      return this.fail(ErrorCode.DECODE_FAILED, 'decodes to more than image_size');
    }
    this.decoded += out.length;
    this.hash.update(out);
    if (this.headerOk) {
      this.pending = this.pending.length ? Buffer.concat([this.pending, out]) : Buffer.from(out);
    } else {
      this.head.push(Buffer.from(out));
      const headBytes = this.decoded;
      if (headBytes >= EARLY_HEADER_SIZE || headBytes === this.o.imageSize) {
        const head = Buffer.concat(this.head);
        const verdict = this.o.checkHeader(head);
        if (verdict.err !== ErrorCode.OK) return this.fail(verdict.err, verdict.message);
        this.headerOk = true;
        this.head = [];
        this.pending = head;
        this.o.flash.resetExtent(this.o.slot); // esp_ota_begin: the slot's old image is gone from here on
      }
    }
    if (this.taken - this.lastAck >= this.o.ackInterval || this.taken === this.o.transferSize) {
      this.lastAck = this.taken;
      this.o.onAck(this.taken);
    }
    return true;
  }

  /** Programs every complete page (and the last partial one at the image end); returns the time. */
  private flushPages(): number {
    const final = this.decoded === this.o.imageSize;
    let cost = 0;
    let used = 0;
    while (this.pending.length - used >= PAGE_SIZE || (final && this.pending.length - used > 0)) {
      const n = Math.min(PAGE_SIZE, this.pending.length - used);
      while (this.erasedEnd < this.writePos + n) cost += this.eraseNext();
      this.o.flash.program(this.o.slot, this.writePos, this.pending.subarray(used, used + n));
      this.writePos += n;
      used += n;
      cost += this.o.timing.pageProgramMs;
    }
    this.pending = used === this.pending.length ? Buffer.alloc(0) : Buffer.from(this.pending.subarray(used));
    return cost;
  }

  private eraseNext(): number {
    const partition = this.o.flash.slots[this.o.slot];
    if (this.erasedEnd % BLOCK_SIZE === 0 && this.erasedEnd + BLOCK_SIZE <= this.eraseLimit) {
      partition.erase(this.erasedEnd, BLOCK_SIZE);
      this.erasedEnd += BLOCK_SIZE;
      return this.o.timing.blockEraseMs;
    }
    partition.erase(this.erasedEnd, SECTOR_SIZE);
    this.erasedEnd += SECTOR_SIZE;
    return this.o.timing.sectorEraseMs;
  }

  private fail(err: number, message: string): boolean {
    this.stop();
    this.o.onFailure(err, message);
    return false;
  }
}
