/**
 * Test harness for the device model at the VirtualPeripheral level: a fake PeripheralHost that records
 * what the device sends, and a tiny v2 central that speaks PROTOCOL.md through the codec. No radio.
 */
import { sleep } from '../../lib/clock';
import {
  ControlNotification,
  decodeNotification,
  encodeCommand,
  encodeDataChunk,
} from '../../lib/protocol/codec';
import { CONTROL_CHAR_UUID, DATA_CHAR_UUID, OTA_SERVICE_UUID, Op, STATUS_CHAR_UUID, TaggedOp } from '../../lib/protocol/constants';
import { StatusV2, beginTagV21, commandTagV21, decodeStatusV2, encodeBeginV21, withTag } from '../helpers/v21-wire';
import type { PeripheralHost, SimDeviceConfig } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { CreateSimDeviceOptions, SimDevice, createSimDevice } from '../../lib/sim/device';
import { V2Firmware } from '../../lib/sim/device/v2-firmware';
import { createHash } from 'crypto';
import { deflateSync } from 'zlib';
import { devBuild } from '../helpers/dev-build';
import { SHARED_VECTORS_DIR, vectorPath } from '../helpers/paths';
export { vectorPath };

/** ../shared/vectors next to the repository. */
export const VECTORS_DIR = SHARED_VECTORS_DIR;

export interface Sent {
  service: string;
  characteristic: string;
  data: Buffer;
  conn: number | undefined;
  at: number;
}

export class FakeHost implements PeripheralHost {
  readonly sent: Sent[] = [];
  readonly drops: Array<{ reason: string; at: number }> = [];
  /** hostStall calls: when and how long the device's BLE host could not run. */
  readonly stalls: Array<{ at: number; ms: number }> = [];
  advertisingChanges = 0;

  constructor(readonly clock: VirtualClock) {}

  notify(service: string, characteristic: string, data: Buffer, conn?: number): void {
    this.sent.push({ service, characteristic, data: Buffer.from(data), conn, at: this.clock.now() });
  }

  dropConnection(reason: string): void {
    this.drops.push({ reason, at: this.clock.now() });
  }

  advertisingChanged(): void {
    this.advertisingChanges++;
  }

  hostStall(durationMs: number): void {
    this.stalls.push({ at: this.clock.now(), ms: durationMs });
  }

  control(conn = 0): ControlNotification[] {
    return this.sent
      .filter((s) => s.characteristic === CONTROL_CHAR_UUID && (s.conn === undefined || s.conn === conn))
      .map((s) => decodeNotification(s.data));
  }

  statusNotifications(): StatusV2[] {
    return this.sent.filter((s) => s.characteristic === STATUS_CHAR_UUID).map((s) => decodeStatusV2(s.data));
  }
}


export interface Rig {
  clock: VirtualClock;
  host: FakeHost;
  device: SimDevice;
}

/**
 * A device on a fake host. Without keys in `config` it is a development build (allowUnauthenticated),
 * as most tests here are about the update itself; security tests give keys or set the flag false.
 */
export function makeRig(config: Partial<SimDeviceConfig> = {}, options: CreateSimDeviceOptions = {}): Rig {
  const clock = new VirtualClock();
  const host = new FakeHost(clock);
  const device = createSimDevice(devBuild({ name: 'sim-01', chip: 'esp32c3', version: '1.0.0', ...config }), clock, options);
  device.attach(host);
  return { clock, host, device };
}

/** Polls pred on the virtual clock; fails after limitMs of modeled time. */
export async function until(clock: VirtualClock, pred: () => boolean, limitMs = 120000, stepMs = 5): Promise<void> {
  const start = clock.now();
  while (!pred()) {
    if (clock.now() - start > limitMs) throw new Error(`condition not met within ${limitMs} ms of modeled time`);
    await sleep(clock, stepMs);
  }
}

export function sha256(buf: Buffer): Buffer {
  return createHash('sha256').update(buf).digest();
}

export interface Transfer {
  image: Buffer;
  /** Bytes written to Data (the zlib stream for deflate). */
  payload: Buffer;
  encoding: 0 | 1 | 2;
  sha256: Buffer;
}

export function rawTransfer(image: Buffer, announcedSha = sha256(image)): Transfer {
  return { image, payload: image, encoding: 0, sha256: announcedSha };
}

export function deflateTransfer(image: Buffer): Transfer {
  return { image, payload: deflateSync(image), encoding: 1, sha256: sha256(image) };
}

/** A Control response with every field any response may carry (tests read what they expect). */
export interface Reply {
  op: number;
  err: number;
  nonce?: Buffer;
  caps?: number;
  chunkSize: number;
  window: number;
  ackInterval: number;
  resumeOffset: number;
  imageSize: number;
}

/** A v2 central on one connection of the device. */
export class Central {
  private seen = 0;
  nonce: Buffer | null = null;

  constructor(
    readonly rig: Rig,
    readonly conn = 0,
    readonly mtu = 247,
    readonly fleetKey?: Buffer,
  ) {}

  connect(): this {
    this.rig.device.onConnect(this.mtu, this.conn);
    this.seen = this.rig.host.control(this.conn).length;
    return this;
  }

  disconnect(): void {
    this.rig.device.onDisconnect(this.conn);
  }

  /** Control notifications to this connection not consumed yet. */
  fresh(): ControlNotification[] {
    const all = this.rig.host.control(this.conn);
    const out = all.slice(this.seen);
    this.seen = all.length;
    return out;
  }

  async write(value: Buffer): Promise<void> {
    await this.rig.device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, value, false, this.conn);
  }

  /** Writes a command and waits for its response notification (other notifications are skipped). */
  async command(value: Buffer, limitMs = 60000): Promise<Reply> {
    const before = this.rig.host.control(this.conn).length;
    await this.write(value);
    const responseOp = value[0] | 0x80;
    let found: ControlNotification | undefined;
    await until(
      this.rig.clock,
      () => {
        found = this.rig.host
          .control(this.conn)
          .slice(before)
          .find((n) => n.op === responseOp || n.op === Op.UNKNOWN_OPCODE_RESPONSE);
        return found !== undefined;
      },
      limitMs,
    );
    this.seen = this.rig.host.control(this.conn).length;
    return found as unknown as Reply;
  }

  async challenge(): Promise<Reply> {
    const r = await this.command(encodeCommand({ op: Op.CHALLENGE }));
    if (r.nonce) this.nonce = r.nonce;
    return r;
  }

  beginRequest(
    t: Transfer,
    opts: { flags?: number; chunkSize?: number; imageSize?: number; transferSize?: number; tag?: Buffer; manifest?: Buffer; baseSha256?: Buffer } = {},
  ): Buffer {
    const base = encodeBeginV21({
      imageSize: opts.imageSize ?? t.image.length,
      transferSize: opts.transferSize ?? t.payload.length,
      encoding: t.encoding,
      flags: opts.flags ?? 1,
      chunkSize: opts.chunkSize ?? 508,
      sha256: t.sha256,
      baseSha256: opts.baseSha256,
      manifest: opts.manifest,
    });
    return withTag(base, opts.tag ?? (this.fleetKey && this.nonce ? beginTagV21(this.fleetKey, this.nonce, base) : Buffer.alloc(16)));
  }

  async begin(t: Transfer, opts: Parameters<Central['beginRequest']>[1] = {}): Promise<Reply> {
    if (this.fleetKey && !opts.tag) await this.challenge();
    return this.command(this.beginRequest(t, opts));
  }

  async tagged(op: TaggedOp, tag?: Buffer): Promise<Reply> {
    if (this.fleetKey && !tag) await this.challenge();
    const t = tag ?? (this.fleetKey && this.nonce ? commandTagV21(this.fleetKey, this.nonce, op) : Buffer.alloc(16));
    return this.command(encodeCommand({ op, tag: t }));
  }

  async end(flags = 1): Promise<Reply> {
    return this.command(encodeCommand({ op: Op.END, flags }));
  }

  data(offset: number, payload: Buffer): void {
    void this.rig.device.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeDataChunk({ offset, payload }), true, this.conn);
  }

  rawData(value: Buffer): void {
    void this.rig.device.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, value, true, this.conn);
  }

  /**
   * Sends payload[from..stopAt) with at most `window` bytes unacknowledged, following ACKs and going
   * back on GAP. Resolves with the highest ACK seen. Throws on SESSION_ABORTED (message has the code).
   */
  async send(payload: Buffer, params: { chunkSize: number; window: number; from?: number; stopAt?: number }): Promise<number> {
    const total = params.stopAt ?? payload.length;
    let acked = params.from ?? 0;
    let next = acked;
    const { clock } = this.rig;
    for (;;) {
      while (next < total) {
        const len = Math.min(params.chunkSize, total - next);
        if (next + len - acked > params.window) break;
        this.data(next, payload.subarray(next, next + len));
        next += len;
      }
      if (acked >= total) return acked;
      if (params.stopAt !== undefined && next >= total) {
        // Partial send: ACKs only come every ack_interval, so give the device time, then report.
        await sleep(clock, 500);
        for (const n of this.fresh()) if (n.op === Op.DATA_ACK && 'nextOffset' in n) acked = Math.max(acked, n.nextOffset);
        return acked;
      }
      let progressed = false;
      await until(clock, () => {
        for (const n of this.fresh()) {
          if (n.op === Op.DATA_ACK && 'nextOffset' in n) {
            acked = Math.max(acked, n.nextOffset);
            progressed = true;
          } else if (n.op === Op.DATA_NAK && 'expectedOffset' in n && n.err === 15) {
            next = n.expectedOffset;
            progressed = true;
          } else if (n.op === Op.SESSION_ABORTED) {
            throw new Error(`SESSION_ABORTED ${(n as { err: number }).err}`);
          }
        }
        return progressed;
      });
    }
  }

  async readStatus(): Promise<StatusV2> {
    return decodeStatusV2(await this.rig.device.onRead(OTA_SERVICE_UUID, STATUS_CHAR_UUID, this.conn));
  }

  /** CHALLENGE (when keyed) + BEGIN + all data + END(reboot); returns the END response. */
  async update(t: Transfer, endFlags = 1, manifest?: Buffer): Promise<Reply> {
    const begin = await this.begin(t, { manifest });
    if (begin.err !== 0) throw new Error(`BEGIN failed with ${begin.err}`);
    await this.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, from: begin.resumeOffset });
    return this.end(endFlags);
  }
}

/**
 * Waits until the device runs again after a restart and its boot work (first-boot diagnostics and
 * confirm, which take flash time after advertising starts) is over, or it restarted once more.
 */
export async function afterReboot(rig: Rig, limitMs = 5000): Promise<void> {
  await until(rig.clock, () => rig.device.machine.state !== 'running', limitMs);
  await until(rig.clock, () => rig.device.machine.state === 'running', limitMs);
  await bootSettled(rig, limitMs);
}

/** Waits until the running application finished its boot work (or is not running any more). */
export async function bootSettled(rig: Rig, limitMs = 5000): Promise<void> {
  await until(rig.clock, () => {
    const app = rig.device.application;
    return app === null || !(app instanceof V2Firmware) || app.bootSettled;
  }, limitMs);
}
