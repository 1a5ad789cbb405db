/**
 * Client for devices running the seed firmware (shared/seed/seed-protocol.md, docs/PROTOCOL.md §4.6):
 * packet size to Data, REQUEST, the image in packet-size writes with response, DONE. The seed has no
 * resume, no abort and no integrity check: a failed transfer is simply started again from 0.
 * The seed handles DONE inside its write callback and restarts there on success, so the DONE write is
 * never answered: the client sends it and waits for the DONE_ACK / DONE_NAK notification only.
 */
import type { BleConnection } from '../ble/central';
import type { Clock, TimerHandle } from '../clock';
import { OtaError } from '../errors';
import { abortError } from '../ble/abort';
import { ATT_HEADER_SIZE, LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LEGACY_MAX_PACKET, LEGACY_SERVICE_UUIDS, LegacyOp } from './constants';
import type { TransferProgress } from './progress';

export interface LegacyClientOptions {
  clock: Clock;
  /** The service holding the seed's characteristics (detectProtocol's serviceUuid). */
  serviceUuid?: string;
  signal?: AbortSignal;
  onProgress?: (p: TransferProgress) => void;
  /** Wait for REQUEST_ACK (default 10000 ms: esp_ota_begin may erase). */
  requestTimeoutMs?: number;
  /** Wait for DONE_ACK (default 30000 ms: esp_ota_end reads the whole image). */
  doneTimeoutMs?: number;
  /** The seed's OTA partition size (default SEED_PARTITION_SIZE): larger images are refused before any write. */
  partitionSize?: number;
}

/** The seed's app partitions: ESP-IDF's partitions_two_ota.csv, 1 MiB each (docs/PROTOCOL.md §4.6). */
export const SEED_PARTITION_SIZE = 0x100000;

/** The seed's packet size for an ATT MTU: one ATT write value, capped by its 512-byte buffer. */
export function legacyPacketSize(mtu: number): number {
  return Math.min(mtu - ATT_HEADER_SIZE, LEGACY_MAX_PACKET);
}

/**
 * Refuses an image the seed's partition cannot hold (it would be sent whole, then DONE_NAK'd); the
 * check needs no link.
 */
export function checkLegacyImageSize(imageLength: number, partitionSize: number = SEED_PARTITION_SIZE): void {
  if (!Number.isInteger(partitionSize) || partitionSize <= 0) {
    throw new OtaError('BAD_OPTION', `legacyPartitionSize must be a positive whole number of bytes; got ${String(partitionSize)}`);
  }
  if (imageLength > partitionSize) {
    throw new OtaError(
      'LEGACY_IMAGE_TOO_LARGE',
      `the image (${imageLength} bytes) is ${imageLength - partitionSize} bytes larger than the seed firmware's ${partitionSize}-byte OTA partition; nothing was sent (set legacyPartitionSize if this device's partition table differs)`,
      { imageSize: imageLength, partitionSize },
    );
  }
}

/**
 * The packet size to announce: the seed writes packet_size bytes for every packet, the last one padded
 * with stale bytes, so the padded end must stay inside the partition (else that write fails and
 * esp_ota_end rejects the image). The largest size <= the MTU's that keeps it there.
 */
export function legacyPacketPlan(mtu: number, imageLength: number, partitionSize: number = SEED_PARTITION_SIZE): number {
  checkLegacyImageSize(imageLength, partitionSize);
  for (let size = legacyPacketSize(mtu); size > 1; size--) {
    if (Math.ceil(imageLength / size) * size <= partitionSize) return size;
  }
  return 1;
}

export class LegacyClient {
  /** ATT value bytes written (packet size, commands, image). */
  bytesOnAir = 0;
  /** DONE was sent: from here a lost link leaves the outcome unknown (the device may have taken the image). */
  doneSent = false;
  private readonly service: string;
  private readonly values: number[] = [];
  private waiter: (() => void) | null = null;
  private disconnected: OtaError | null = null;
  private subscribed = false;
  private readonly onDisconnect = (reason?: string) => {
    this.disconnected = new OtaError('DISCONNECTED', `The device disconnected${reason ? ` (${reason})` : ''}.`);
    this.wake();
  };
  private readonly onAbortSignal = () => this.wake();

  constructor(
    readonly connection: BleConnection,
    private readonly opts: LegacyClientOptions,
  ) {
    this.service = opts.serviceUuid ?? LEGACY_SERVICE_UUIDS[0];
    connection.on('disconnect', this.onDisconnect);
    opts.signal?.addEventListener('abort', this.onAbortSignal);
  }

  async open(): Promise<void> {
    if (this.subscribed) return;
    await this.connection.subscribe(this.service, LEGACY_CONTROL_UUID, (data) => {
      if (data.length === 1) this.values.push(data[0]);
      this.wake();
    });
    this.subscribed = true;
  }

  close(): void {
    this.connection.removeListener('disconnect', this.onDisconnect);
    this.opts.signal?.removeEventListener('abort', this.onAbortSignal);
  }

  /** The whole seed update; the device restarts 500 ms after DONE_ACK. */
  async update(image: Buffer): Promise<void> {
    if (!Buffer.isBuffer(image) || image.length === 0) throw new OtaError('EMPTY_IMAGE', 'The image is empty or not a Buffer.');
    if (legacyPacketSize(this.connection.mtu) < 1) throw new OtaError('MTU_TOO_SMALL', `The ATT MTU of ${this.connection.mtu} cannot carry data.`);
    const packetSize = legacyPacketPlan(this.connection.mtu, image.length, this.opts.partitionSize);
    this.doneSent = false;
    await this.open();
    const sizeValue = Buffer.alloc(2);
    sizeValue.writeUInt16LE(packetSize, 0);
    await this.write(LEGACY_DATA_UUID, sizeValue);
    await this.request();
    const startedAt = this.opts.clock.now();
    this.progress('transferring', 0, image.length, startedAt);
    for (let offset = 0; offset < image.length; offset += packetSize) {
      const piece = image.subarray(offset, Math.min(offset + packetSize, image.length));
      await this.write(LEGACY_DATA_UUID, piece);
      this.progress('transferring', offset + piece.length, image.length, startedAt);
    }
    this.values.length = 0;
    this.sendDone();
    try {
      await this.expect(LegacyOp.DONE_ACK, LegacyOp.DONE_NAK, this.opts.doneTimeoutMs ?? 30000, 'LEGACY_DONE_NAK',
        'The seed firmware rejected the image at the end (esp_ota_end or setting the boot partition failed).');
    } catch (e) {
      if (!(e instanceof OtaError) || e.code === 'LEGACY_DONE_NAK') throw e;
      // Neither DONE_ACK nor DONE_NAK arrived: the device may have taken the image and restarted.
      throw new OtaError(e.code, `${e.message} DONE had been sent; whether the device took the image is not known yet.`, { ...e.details, doneSent: true });
    }
    this.progress('rebooting', image.length, image.length, startedAt);
  }

  /**
   * REQUEST, once more after a REQUEST_NAK: a seed built with ESP-IDF >= 6.1 refuses esp_ota_begin while
   * the handle of an interrupted transfer is open (esp_ota_ops.c ESP_ERR_OTA_ALREADY_IN_PROGRESS), and
   * its NAK path esp_ota_abort()s that handle (gatt_svr.c:144-148), so the second REQUEST starts.
   */
  private async request(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.values.length = 0;
      await this.write(LEGACY_CONTROL_UUID, Buffer.from([LegacyOp.REQUEST]));
      try {
        await this.expect(LegacyOp.REQUEST_ACK, LegacyOp.REQUEST_NAK, this.opts.requestTimeoutMs ?? 10000, 'LEGACY_REQUEST_NAK',
          'The seed firmware refused to start the update twice (esp_ota_begin failed).');
        return;
      } catch (e) {
        if (attempt >= 2 || !(e instanceof OtaError) || e.code !== 'LEGACY_REQUEST_NAK') throw e;
      }
    }
  }

  /**
   * DONE without awaiting its response: on success the seed restarts inside the write callback and
   * never answers (docs/PROTOCOL.md §4.6); DONE_NAK is notified before the answer. The write's own
   * failure (the link drop that follows DONE_ACK) is expected and ignored.
   */
  private sendDone(): void {
    this.throwIfStopped();
    const value = Buffer.from([LegacyOp.DONE]);
    this.bytesOnAir += value.length;
    this.doneSent = true;
    this.connection.write(this.service, LEGACY_CONTROL_UUID, value, false).catch(() => undefined);
  }

  private progress(phase: TransferProgress['phase'], done: number, total: number, startedAt: number): void {
    if (!this.opts.onProgress) return;
    const seconds = (this.opts.clock.now() - startedAt) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    this.opts.onProgress({
      phase,
      bytesDone: done,
      totalBytes: total,
      percent: (100 * done) / total,
      kBps: rate / 1000,
      etaSeconds: rate > 0 ? (total - done) / rate : null,
      transferBytesAcked: done,
      transferSize: total,
    });
  }

  private throwIfStopped(): void {
    if (this.disconnected) throw this.disconnected;
    if (this.opts.signal?.aborted) throw abortError(this.opts.signal);
  }

  private async write(characteristic: string, data: Buffer): Promise<void> {
    this.throwIfStopped();
    this.bytesOnAir += data.length;
    try {
      await this.connection.write(this.service, characteristic, data, false);
    } catch (e) {
      if (this.disconnected || !this.connection.connected) throw this.disconnected ?? new OtaError('DISCONNECTED', 'The device disconnected during a write.');
      throw e;
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Waits for `ack`; `nak` → OtaError nakCode; other values (NOP, stale ones) are skipped. */
  private async expect(ack: number, nak: number, timeoutMs: number, nakCode: string, nakMessage: string): Promise<void> {
    const deadline = this.opts.clock.now() + timeoutMs;
    for (;;) {
      // Values first: a notification that arrived before the link dropped still counts.
      while (this.values.length) {
        const v = this.values.shift() as number;
        if (v === ack) return;
        if (v === nak) throw new OtaError(nakCode, nakMessage);
      }
      this.throwIfStopped();
      const left = deadline - this.opts.clock.now();
      if (left <= 0) throw new OtaError('TIMEOUT', `The seed firmware did not answer within ${timeoutMs} ms.`);
      let timer: TimerHandle | undefined;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        timer = this.opts.clock.setTimer(() => this.wake(), left);
      });
      timer?.cancel();
    }
  }
}
