/**
 * Client for devices running the seed firmware (shared/seed/seed-protocol.md, docs/PROTOCOL.md §4.6):
 * packet size to Data, REQUEST, the image in packet-size writes with response, DONE. The seed has no
 * resume, no abort and no integrity check: a failed transfer is simply started again from 0.
 */
import type { BleConnection } from '../ble/central';
import type { Clock, TimerHandle } from '../clock';
import { OtaError } from '../errors';
import { abortError } from '../ble/abort';
import { ATT_HEADER_SIZE, LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LEGACY_MAX_PACKET, LEGACY_SERVICE_UUIDS, LegacyOp } from './constants';
import type { TransferProgress } from './v2-client';

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
}

/** The seed's packet size for an ATT MTU: one ATT write value, capped by its 512-byte buffer. */
export function legacyPacketSize(mtu: number): number {
  return Math.min(mtu - ATT_HEADER_SIZE, LEGACY_MAX_PACKET);
}

export class LegacyClient {
  /** ATT value bytes written (packet size, commands, image). */
  bytesOnAir = 0;
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
    const packetSize = legacyPacketSize(this.connection.mtu);
    if (packetSize < 1) throw new OtaError('MTU_TOO_SMALL', `The ATT MTU of ${this.connection.mtu} cannot carry data.`);
    await this.open();
    const sizeValue = Buffer.alloc(2);
    sizeValue.writeUInt16LE(packetSize, 0);
    await this.write(LEGACY_DATA_UUID, sizeValue);
    this.values.length = 0;
    await this.write(LEGACY_CONTROL_UUID, Buffer.from([LegacyOp.REQUEST]));
    await this.expect(LegacyOp.REQUEST_ACK, LegacyOp.REQUEST_NAK, this.opts.requestTimeoutMs ?? 10000, 'LEGACY_REQUEST_NAK',
      'The seed firmware refused to start the update (esp_ota_begin failed).');
    const startedAt = this.opts.clock.now();
    this.progress('transferring', 0, image.length, startedAt);
    for (let offset = 0; offset < image.length; offset += packetSize) {
      const piece = image.subarray(offset, Math.min(offset + packetSize, image.length));
      await this.write(LEGACY_DATA_UUID, piece);
      this.progress('transferring', offset + piece.length, image.length, startedAt);
    }
    this.values.length = 0;
    await this.write(LEGACY_CONTROL_UUID, Buffer.from([LegacyOp.DONE]));
    await this.expect(LegacyOp.DONE_ACK, LegacyOp.DONE_NAK, this.opts.doneTimeoutMs ?? 30000, 'LEGACY_DONE_NAK',
      'The seed firmware rejected the image at the end (esp_ota_end or setting the boot partition failed).');
    this.progress('rebooting', image.length, image.length, startedAt);
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
      this.throwIfStopped();
      while (this.values.length) {
        const v = this.values.shift() as number;
        if (v === ack) return;
        if (v === nak) throw new OtaError(nakCode, nakMessage);
      }
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
