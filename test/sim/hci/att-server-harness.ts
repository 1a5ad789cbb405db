/**
 * Test harness for the ATT server: a hand-driven clock, a small VirtualPeripheral whose access
 * callbacks the test can hold, and a "central" that sends ATT PDUs as hex and collects the frames the
 * server sends.
 */
import type { Clock, TimerHandle } from '../../../lib/clock';
import { AttServer, type AttServerOptions } from '../../../lib/sim/hci/att-server';
import { l2capFrame, parseL2capFrame } from '../../../lib/sim/hci/l2cap-frames';
import { CHAR_LONG, CHAR_RW, CHAR_SINK, CHAR_STRICT, TINY_SERVICE, tinyGatt } from '../tiny-peripheral';
import { AttError, type PeripheralHost, type VirtualAdvertisement, type VirtualPeripheral, type VirtualService } from '../../../lib/sim/types';

/** A clock that moves only when the test says so; timers fire in order, promises settle in between. */
export class ManualClock implements Clock {
  readonly virtual = true;
  private t = 0;
  private seq = 0;
  private timers: Array<{ at: number; seq: number; fn: () => void; cancelled: boolean }> = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await settle();
    for (;;) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      due.cancelled = true;
      this.t = due.at;
      due.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }
}

/** Lets pending promise callbacks run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export { TINY_SERVICE as SVC, CHAR_RW, CHAR_SINK, CHAR_LONG, CHAR_STRICT };

/** Little-endian wire form of a hex UUID. */
export function le(uuid: string): string {
  return Buffer.from(uuid, 'hex').reverse().toString('hex');
}

export interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Service SVC: RW (read, write, notify), SINK (write without response), LONG (read, 600 bytes),
 * STRICT (write, device rejects more than 10 bytes); then DIS with Manufacturer Name.
 */
export class StubPeripheral implements VirtualPeripheral {
  readonly address = 'aa:bb:cc:00:00:01';
  readonly name = 'tiny-1';
  value = Buffer.from('hello');
  readonly longValue = Buffer.from(Array.from({ length: 600 }, (_, i) => i & 0xff));
  readonly writes: Array<{ characteristic: string; data: string; withoutResponse: boolean; connectionId?: number }> = [];
  readonly reads: string[] = [];
  readonly connects: Array<[number, number | undefined]> = [];
  readonly mtus: Array<[number, number | undefined]> = [];
  readonly disconnects: Array<number | undefined> = [];
  /** When set, the next write's callback returns this promise. */
  hold: Promise<void> | null = null;

  constructor(readonly maxMtu = 517) {}

  attach(_host: PeripheralHost): void {}

  advertisement(): VirtualAdvertisement | null {
    return { localName: this.name, serviceUuids: [TINY_SERVICE] };
  }

  gatt(): VirtualService[] {
    return tinyGatt();
  }

  onConnect(mtu: number, connectionId?: number): void {
    this.connects.push([mtu, connectionId]);
  }

  onMtu(mtu: number, connectionId?: number): void {
    this.mtus.push([mtu, connectionId]);
  }

  onDisconnect(connectionId?: number): void {
    this.disconnects.push(connectionId);
  }

  onRead(_service: string, characteristic: string): Buffer {
    this.reads.push(characteristic);
    if (characteristic === CHAR_LONG) return this.longValue;
    if (characteristic === '2a29') return Buffer.from('Company 42');
    return this.value;
  }

  onWrite(_service: string, characteristic: string, data: Buffer, withoutResponse: boolean, connectionId?: number): void | Promise<void> {
    this.writes.push({ characteristic, data: data.toString('hex'), withoutResponse, connectionId });
    if (characteristic === CHAR_STRICT && data.length > 10) throw new AttError(0x0d, 'value longer than 10 bytes');
    if (characteristic === CHAR_RW) this.value = Buffer.from(data);
    const hold = this.hold;
    this.hold = null;
    if (hold) return hold;
  }

  powerLoss(): void {}

  async shutdown(): Promise<void> {}
}

/** The central's end of one link: sends PDUs, collects what the server sent as "cid:hex". */
export class Central {
  readonly sent: string[] = [];
  readonly server: AttServer;

  constructor(options: Omit<AttServerOptions, 'sendFrame'>) {
    this.server = new AttServer({
      ...options,
      sendFrame: (frame) => {
        const f = parseL2capFrame(frame);
        if (!f) throw new Error(`server sent a malformed frame ${frame.toString('hex')}`);
        this.sent.push(f.cid === 4 ? f.payload.toString('hex') : `${f.cid}:${f.payload.toString('hex')}`);
      },
    });
  }

  /** Sends an ATT PDU given as hex (spaces allowed). */
  att(hex: string): void {
    this.frame(4, hex);
  }

  frame(cid: number, hex: string): void {
    this.server.receiveFrame(l2capFrame(cid, Buffer.from(hex.replace(/\s+/g, ''), 'hex')));
  }

  /** What the server sent since the last take. */
  take(): string[] {
    return this.sent.splice(0, this.sent.length);
  }

  /** Sends a request and returns the one PDU it got back (synchronous device). */
  ask(hex: string): string {
    this.att(hex);
    const out = this.take();
    if (out.length !== 1) throw new Error(`expected one response to ${hex}, got ${JSON.stringify(out)}`);
    return out[0];
  }
}

/** Hex without spaces. */
export function h(hex: string): string {
  return hex.replace(/\s+/g, '').toLowerCase();
}
