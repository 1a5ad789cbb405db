/**
 * The firmware's writer task for one v2 session. Data payloads land in a ring buffer the size of the
 * window; the writer takes bytes out of the ring (DATA_ACK covers only taken bytes, so the device never
 * acknowledges what it could not queue), inflates them, hashes them, checks the image header before the
 * first flash write, and programs 256-byte pages; a write erases what it needs first, and whenever the
 * writer has nothing else to do it erases ahead, one command at a time (64 KiB blocks where aligned), up to
 * eraseAhead bytes in front of the write position (the firmware core asks its port, ota_erase_ahead, each
 * time its ring is empty: firmware/components/ble_ota/core/ble_ota_writer.c). Flash work takes clock time (flash-timing.ts), and
 * each erase and each write window keeps the cache disabled, which stalls the BLE host for its duration
 * (options.stall): while stalled the device neither takes Data into the ring nor sends notifications
 * (the radio holds them, PeripheralHost.hostStall).
 */
import { createHash, Hash } from 'crypto';
import { PatchApplier, isPatchError } from '../../delta';
import { ErrorCode } from '../../protocol/constants';
import { FlashOpError } from './flash-faults';
import { BLOCK_SIZE, FlashTiming, PAGE_SIZE, SECTOR_SIZE, eraseEnd, writeWindowsMs } from './flash-timing';
import { EARLY_HEADER_SIZE, HeaderVerdict } from './header-check';
import { DeviceFlash } from './image-slots';
import { InflateError, StreamInflater } from './inflate';
import { SlotIndex } from './ota-data';
import { TimerGroup } from './timers';

/** Largest piece the writer takes out of the ring at once (its working buffer). */
export const WRITER_TAKE_BYTES = 4096;
/** esp_flash_read's MAX_READ_CHUNK: bytes read per cache-disabled window (ESP-IDF v5.3.2 components/spi_flash/esp_flash_api.c:37). */
export const BASE_READ_CHUNK = 16384;
/** Default of CONFIG_BLE_OTA_ERASE_AHEAD_BYTES (firmware/components/ble_ota/Kconfig). */
export const DEFAULT_ERASE_AHEAD = 262144;

export interface WriterOptions {
  timers: TimerGroup;
  timing: FlashTiming;
  flash: DeviceFlash;
  slot: SlotIndex;
  imageSize: number;
  transferSize: number;
  /** The transfer is a zlib stream (deflate, and delta: the stream of a patch). */
  deflate: boolean;
  /** Delta (encoding 2): the running image's bytes the patch reads (base_len of them) and their read rate. */
  delta?: { base: Buffer; readBytesPerMs: number };
  /**
   * A job the writer runs first, before it takes anything out of the ring (so before anything is erased or
   * written): the manifest's signature check. It keeps the writer busy for `ms`; a failure ends the session.
   */
  firstJob?: { ms: number; run(): { err: number; message: string } | null };
  ackInterval: number;
  eraseAhead?: number;
  checkHeader(head: Buffer): HeaderVerdict;
  /** A cache-disabled flash window of ms starts now (the BLE host stops for it). */
  stall(ms: number): void;
  onAck(nextOffset: number): void;
  onFailure(err: number, message: string): void;
}

const NO_BYTES = Buffer.alloc(0);

export class UpdateWriter {
  /** The RAM ring the Data payloads are copied into (grown to the window the client may fill). */
  private ring: Buffer = NO_BYTES;
  private ringStart = 0;
  private ringBytes = 0;
  /** The writer's working buffer: what it takes out of the ring at once. */
  private readonly takeBuffer = Buffer.allocUnsafe(WRITER_TAKE_BYTES);
  /** Transfer bytes taken out of the ring (what DATA_ACK may cover). */
  taken = 0;
  private lastAck = 0;
  /** Decoded image bytes so far. */
  decoded = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly inflater: StreamInflater | null;
  private readonly applier: PatchApplier | null;
  /** Base bytes read since the last flash step (their read windows go with it). */
  private baseReadBytes = 0;
  private head: Buffer[] = [];
  private headerOk = false;
  /** Decoded bytes to program next; a view valid until the next take (flushPages consumes it). */
  private staged: Buffer = NO_BYTES;
  /** A page not complete yet (decoded bytes waiting for the rest of their 256). */
  private readonly page = Buffer.alloc(PAGE_SIZE);
  private pageLen = 0;
  private writePos = 0;
  private erasedEnd = 0;
  private busy = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  /** Where the session's erasing ends (a whole last block when that is faster: flash-timing.ts eraseEnd). */
  private readonly eraseLimit: number;
  private readonly eraseAhead: number;

  constructor(private readonly o: WriterOptions) {
    this.inflater = o.deflate || o.delta ? new StreamInflater() : null;
    this.applier = o.delta ? new PatchApplier(o.delta.base, o.imageSize) : null;
    this.eraseLimit = eraseEnd(o.imageSize, o.flash.slots[o.slot].size);
    this.eraseAhead = o.eraseAhead ?? DEFAULT_ERASE_AHEAD;
    if (o.firstJob) this.startFirstJob(o.firstJob);
  }

  /** The first job: the writer is busy (Data still lands in the ring, nothing is taken or ACKed) until it is done. */
  private startFirstJob(job: NonNullable<WriterOptions['firstJob']>): void {
    this.busy = true;
    this.o.timers.set(() => {
      if (this.stopped) return;
      const failure = job.run();
      if (failure) {
        this.fail(failure.err, failure.message);
        return;
      }
      this.busy = false;
      this.run();
    }, job.ms);
  }

  /** Bytes waiting in the ring. */
  get queued(): number {
    return this.ringBytes;
  }

  /** True when the deflate stream ended properly (raw: always). */
  get streamComplete(): boolean {
    return this.inflater ? this.inflater.finished : true;
  }

  /** Delta: the patch is not complete (it ended before its last record; SIZE_MISMATCH at END). Else false. */
  get patchEndsEarly(): boolean {
    if (!this.applier) return false;
    try {
      this.applier.finish();
      return false;
    } catch (err) {
      return isPatchError(err) && err.reason === 'ends-early';
    }
  }

  /** Decoded bytes programmed to flash. */
  get written(): number {
    return this.writePos;
  }

  /** Copies a Data payload into the ring (the caller's buffer is not kept). */
  enqueue(payload: Buffer): void {
    if (this.ringBytes + payload.length > this.ring.length) this.growRing(this.ringBytes + payload.length);
    const cap = this.ring.length;
    const end = (this.ringStart + this.ringBytes) % cap;
    const first = Math.min(payload.length, cap - end);
    payload.copy(this.ring, end, 0, first);
    if (first < payload.length) payload.copy(this.ring, 0, first);
    this.ringBytes += payload.length;
    this.kick();
  }

  /** Resume: forget ring bytes not yet taken; the client resends from `taken`. */
  discardQueued(): number {
    this.ringStart = 0;
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
      let windows: number[] = [];
      try {
        if (this.ringBytes > 0) {
          // Never take past the next ACK point, so ACKs come at least every ack_interval bytes.
          const piece = this.takeFromRing(Math.min(WRITER_TAKE_BYTES, this.lastAck + this.o.ackInterval - this.taken));
          if (!this.process(piece)) return;
          windows = this.flushPages();
        } else if (this.headerOk && this.erasedEnd < Math.min(this.eraseLimit, this.writePos + this.eraseAhead)) {
          windows = [this.eraseNext()];
        }
      } catch (err) {
        // esp_ota_write / the erase ahead returned a flash error: the firmware ends the session (ble_ota_writer.c FLASH_ERROR).
        if (err instanceof FlashOpError) return void this.fail(ErrorCode.FLASH_ERROR, 'flash erase/write failed');
        throw err;
      }
      if (windows.length > 0) {
        this.busy = true;
        this.runWindows(windows, 0);
        return;
      }
      if (this.ringBytes === 0) break;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * The cache-disabled windows of one step, one after the other. Each stalls the BLE host for its
   * duration; between two, the host runs before the writer does: each window ends with
   * spi_flash_enable_interrupts_caches_and_other_cpu resuming the scheduler with xTaskResumeAll
   * (espressif/esp-idf components/spi_flash/cache_utils.c:183-222 on two cores, :270-295 on one), and
   * the NimBLE host task
   * (configMAX_PRIORITIES - 4, espressif/esp-nimble porting/npl/freertos/src/nimble_port_freertos.c:43-44)
   * outranks the writer task (CONFIG_BLE_OTA_WRITER_TASK_PRIORITY, default 5), so it takes what the
   * controller buffered meanwhile. (The host's stall timer is set before the writer's, so at the same
   * instant it ends first.)
   */
  private runWindows(windows: number[], index: number): void {
    const ms = windows[index];
    this.o.stall(ms);
    this.o.timers.set(() => {
      if (this.stopped) return;
      if (index + 1 < windows.length) {
        this.runWindows(windows, index + 1);
        return;
      }
      this.busy = false;
      this.run();
    }, ms);
  }

  /**
   * The base reads of the last step as cache-disabled windows: the applier reads the running partition
   * with esp_partition_read, which for an unencrypted partition is esp_flash_read (ESP-IDF v5.3.2
   * components/esp_partition/partition_target.c:37-38); that reads in chunks of at most MAX_READ_CHUNK
   * (16 KiB), each between the os start()/end() that disable the cache and suspend the scheduler
   * (components/spi_flash/esp_flash_api.c:37, :871, :887-914), so each chunk stalls the BLE host. Charged
   * at the flash read rate of verification (flash-timing.ts VERIFY_READ_BYTES_PER_MS).
   */
  private baseReadWindows(): number[] {
    const windows: number[] = [];
    const rate = this.o.delta?.readBytesPerMs ?? 1;
    for (let left = this.baseReadBytes; left > 0; left -= BASE_READ_CHUNK) windows.push(Math.min(left, BASE_READ_CHUNK) / rate);
    this.baseReadBytes = 0;
    return windows;
  }

  private growRing(need: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(need, 2 * this.ring.length, WRITER_TAKE_BYTES));
    const first = Math.min(this.ringBytes, this.ring.length - this.ringStart);
    this.ring.copy(bigger, 0, this.ringStart, this.ringStart + first);
    this.ring.copy(bigger, first, 0, this.ringBytes - first);
    this.ring = bigger;
    this.ringStart = 0;
  }

  /** Up to `max` (<= WRITER_TAKE_BYTES) bytes out of the ring, in the working buffer. */
  private takeFromRing(max: number): Buffer {
    const n = Math.min(max, this.ringBytes, WRITER_TAKE_BYTES);
    const cap = this.ring.length;
    const first = Math.min(n, cap - this.ringStart);
    this.ring.copy(this.takeBuffer, 0, this.ringStart, this.ringStart + first);
    if (first < n) this.ring.copy(this.takeBuffer, first, 0, n - first);
    this.ringStart = (this.ringStart + n) % cap;
    this.ringBytes -= n;
    return this.takeBuffer.subarray(0, n);
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
    if (this.applier && this.o.delta) {
      const readBefore = this.applier.baseBytesRead;
      try {
        out = this.applier.push(out);
      } catch (err) {
        if (!isPatchError(err)) throw err;
        return this.fail(ErrorCode.PATCH_INVALID, err.message);
      }
      this.baseReadBytes += this.applier.baseBytesRead - readBefore;
    }
    if (this.decoded + out.length > this.o.imageSize) {
      return this.fail(ErrorCode.DECODE_FAILED, 'decodes to more than image_size');
    }
    this.decoded += out.length;
    this.hash.update(out);
    if (this.headerOk) {
      this.staged = out;
    } else {
      this.head.push(Buffer.from(out));
      const headBytes = this.decoded;
      if (headBytes >= EARLY_HEADER_SIZE || headBytes === this.o.imageSize) {
        const head = Buffer.concat(this.head);
        const verdict = this.o.checkHeader(head);
        if (verdict.err !== ErrorCode.OK) return this.fail(verdict.err, verdict.message);
        this.headerOk = true;
        this.head = [];
        this.staged = head;
        this.o.flash.resetExtent(this.o.slot); // esp_ota_begin: the slot's old image is gone from here on
      }
    }
    if (this.taken - this.lastAck >= this.o.ackInterval || this.taken === this.o.transferSize) {
      this.lastAck = this.taken;
      this.o.onAck(this.taken);
    }
    return true;
  }

  /**
   * Programs every complete page of the page buffer and the staged bytes (and the last partial page at
   * the image end), keeps the rest in the page buffer; returns its cache-disabled windows (ms). Like
   * esp_ota_write through the port: first the erases this write needs, then one esp_partition_write (its
   * windows, flash-timing.ts).
   */
  private flushPages(): number[] {
    const data = this.staged;
    this.staged = NO_BYTES;
    const final = this.decoded === this.o.imageSize;
    const available = this.pageLen + data.length;
    const programBytes = final ? available : Math.floor(available / PAGE_SIZE) * PAGE_SIZE;
    // Delta: the base reads that decoded these bytes came first.
    const windows: number[] = this.baseReadWindows();
    while (this.erasedEnd < this.writePos + programBytes) windows.push(this.eraseNext());
    const start = this.writePos;
    let used = 0;
    if (this.pageLen > 0) {
      used = Math.min(PAGE_SIZE - this.pageLen, data.length);
      data.copy(this.page, this.pageLen, 0, used);
      this.pageLen += used;
      if (this.pageLen === PAGE_SIZE || (final && used === data.length)) {
        this.programPage(this.page.subarray(0, this.pageLen));
        this.pageLen = 0;
      }
    }
    while (data.length - used >= PAGE_SIZE || (final && data.length - used > 0)) {
      const n = Math.min(PAGE_SIZE, data.length - used);
      this.programPage(data.subarray(used, used + n));
      used += n;
    }
    if (used < data.length) {
      data.copy(this.page, this.pageLen, used);
      this.pageLen += data.length - used;
    }
    for (const ms of writeWindowsMs(this.o.timing, start, this.writePos - start)) if (ms > 0) windows.push(ms);
    return windows;
  }

  /** Programs one page at the write position (already erased). */
  private programPage(bytes: Buffer): void {
    this.o.flash.program(this.o.slot, this.writePos, bytes);
    this.writePos += bytes.length;
  }

  /** One erase command (the flash content changes now, its window runs next): a 64 KiB block where aligned and wholly below eraseLimit, else a 4 KiB sector; returns its time. */
  private eraseNext(): number {
    const partition = this.o.flash.slots[this.o.slot];
    const block = this.erasedEnd % BLOCK_SIZE === 0 && this.erasedEnd + BLOCK_SIZE <= this.eraseLimit;
    const size = block ? BLOCK_SIZE : SECTOR_SIZE;
    const ms = block ? this.o.timing.blockEraseMs : this.o.timing.sectorEraseMs;
    partition.erase(this.erasedEnd, size);
    this.erasedEnd += size;
    return ms;
  }

  private fail(err: number, message: string): boolean {
    this.stop();
    this.o.onFailure(err, message);
    return false;
  }
}
