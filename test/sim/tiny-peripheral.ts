/**
 * A small VirtualPeripheral for the radio tests: one service with a readable/writable/notifying
 * characteristic, a write-without-response sink, a long readable value and a characteristic that
 * rejects long writes with an ATT error. It records everything the radio does to it.
 */
import { AttError, type PeripheralHost, type VirtualAdvertisement, type VirtualPeripheral, type VirtualService } from '../../lib/sim/types';

export const TINY_SERVICE = '0000feed00001000800000805f9b34fb';
export const CHAR_RW = 'c0010000000010008000000000000001';
export const CHAR_SINK = 'c0020000000010008000000000000002';
export const CHAR_LONG = 'c0030000000010008000000000000003';
export const CHAR_STRICT = 'c0040000000010008000000000000004';

export interface WriteRecord {
  at: number;
  characteristic: string;
  data: Buffer;
  withoutResponse: boolean;
}

/** The small GATT table the stub peripherals of the radio and ATT server tests share. */
export function tinyGatt(): VirtualService[] {
  return [
    {
      uuid: TINY_SERVICE,
      characteristics: [
        { uuid: CHAR_RW, properties: ['read', 'write', 'notify'] },
        { uuid: CHAR_SINK, properties: ['writeWithoutResponse'] },
        { uuid: CHAR_LONG, properties: ['read'] },
        { uuid: CHAR_STRICT, properties: ['write'] },
      ],
    },
    { uuid: '180a', characteristics: [{ uuid: '2a29', properties: ['read'] }] },
  ];
}

export class TinyPeripheral implements VirtualPeripheral {
  host: PeripheralHost | null = null;
  readonly writes: WriteRecord[] = [];
  readonly connects: number[] = [];
  disconnects = 0;
  powerLosses: number[] = [];
  value = Buffer.from('hello');
  readonly longValue = Buffer.from(Array.from({ length: 600 }, (_, i) => i & 0xff));
  advertising = true;
  /** Time the device needs to answer a write with response (ms of clock time). */
  writeDelayMs = 0;

  constructor(
    readonly address = 'aa:bb:cc:00:00:01',
    readonly name = 'tiny-1',
    readonly maxMtu = 517,
  ) {}

  attach(host: PeripheralHost): void {
    this.host = host;
  }

  advertisement(): VirtualAdvertisement | null {
    if (!this.advertising) return null;
    return { localName: this.name, manufacturerData: Buffer.from([0xe5, 0x02, 0x01, 0x2a]), serviceUuids: [TINY_SERVICE], txPowerLevel: 3 };
  }

  gatt(): VirtualService[] {
    return tinyGatt();
  }

  onConnect(mtu: number): void {
    this.connects.push(mtu);
  }

  onDisconnect(): void {
    this.disconnects++;
  }

  onRead(_service: string, characteristic: string): Buffer {
    if (characteristic === CHAR_LONG) return this.longValue;
    if (characteristic === '2a29') return Buffer.from('Company 42');
    return this.value;
  }

  onWrite(_service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void | Promise<void> {
    const clock = this.host?.clock;
    this.writes.push({ at: clock ? clock.now() : 0, characteristic, data: Buffer.from(data), withoutResponse });
    if (characteristic === CHAR_STRICT && data.length > 10) throw new AttError(0x0d, 'value longer than 10 bytes');
    if (characteristic === CHAR_RW) this.value = Buffer.from(data);
    if (!withoutResponse && this.writeDelayMs > 0 && clock) {
      return new Promise((resolve) => clock.setTimer(resolve, this.writeDelayMs));
    }
  }

  notify(data: Buffer): void {
    this.host?.notify(TINY_SERVICE, CHAR_RW, data);
  }

  powerLoss(offMs: number): void {
    this.powerLosses.push(offMs);
    this.advertising = false;
    this.host?.clock.setTimer(() => {
      this.advertising = true;
      this.host?.advertisingChanged();
    }, offMs);
  }

  async shutdown(): Promise<void> {
    this.advertising = false;
  }
}
