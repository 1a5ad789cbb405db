/**
 * BleConnection on one connected noble Peripheral. noble signals completions with events that carry
 * no request identity ('write' once per write, 'data' for reads and notifications) and never reports
 * ATT errors (hci-socket: a failed read yields empty data, a failed write never completes), so each
 * characteristic keeps FIFO queues of pending operations matched to its events in order, and every
 * acknowledged operation has a clock timeout.
 */
import { EventEmitter } from 'events';
import type { BleConnection, GattServiceInfo } from './central';
import type { NobleCharacteristic, NoblePeripheral, NobleService } from './noble-types';
import { withTimeout, type Clock } from '../clock';

/** Generic Access (0x1800) and Generic Attribute (0x1801). */
const UNUSED_SERVICES = new Set(['1800', '1801']);
import { OtaError } from '../errors';

/** ATT transaction timeout of the Bluetooth Core specification (Vol 3, Part F, 3.3.3). */
export const ATT_TIMEOUT_MS = 30000;

/**
 * The ATT MTU noble's hci-socket layer asks for (gatt.js `_desired_mtu = 256`). noble stores the
 * server's answer verbatim (gatt.js `this._mtu = newMtu`), but the link's MTU is the smaller of both
 * (Core Vol 3 Part F 3.4.2.2): a server answering 517 still drops PDUs longer than 256 on this link.
 */
export const NOBLE_REQUESTED_MTU = 256;

interface Pending {
  resolve: (value: Buffer) => void;
  reject: (err: Error) => void;
}

/** One characteristic's event adapter: FIFO of reads, FIFO of writes, notification listeners. */
class CharacteristicChannel {
  readonly reads: Pending[] = [];
  readonly writes: Pending[] = [];
  readonly subscribers: Array<(data: Buffer) => void> = [];
  private readonly onData = (data: Buffer, isNotification?: boolean) => {
    if (isNotification) {
      for (const fn of this.subscribers) fn(data);
      return;
    }
    this.reads.shift()?.resolve(data);
  };
  private readonly onWrite = () => this.writes.shift()?.resolve(Buffer.alloc(0));

  constructor(readonly serviceUuid: string, readonly characteristic: NobleCharacteristic) {
    characteristic.on('data', this.onData);
    characteristic.on('write', this.onWrite);
  }

  failAll(err: Error): void {
    for (const p of this.reads.splice(0)) p.reject(err);
    for (const p of this.writes.splice(0)) p.reject(err);
  }

  detach(): void {
    this.characteristic.removeListener('data', this.onData);
    this.characteristic.removeListener('write', this.onWrite);
  }
}

function key(service: string, characteristic: string): string {
  return `${normalizeUuid(service)}/${normalizeUuid(characteristic)}`;
}

export function normalizeUuid(uuid: string): string {
  return uuid.toLowerCase().replace(/-/g, '');
}

export class NobleConnection extends EventEmitter implements BleConnection {
  private isConnected = true;
  private table: GattServiceInfo[] | null = null;
  private discovering: Promise<GattServiceInfo[]> | null = null;
  private readonly channels = new Map<string, CharacteristicChannel>();
  private lastChannel: { service: string; characteristic: string; property: string; key: string; channel: CharacteristicChannel } | null = null;
  private readonly onPeripheralDisconnect = (reason?: unknown) => this.markDisconnected(reason === undefined ? 'link lost' : String(reason));

  constructor(
    private readonly peripheral: NoblePeripheral,
    private readonly clock: Clock,
    readonly deviceName: string,
  ) {
    super();
    peripheral.once('disconnect', this.onPeripheralDisconnect);
  }

  get deviceId(): string {
    return this.peripheral.id;
  }

  /** The link's ATT MTU: min(what noble asked, what the server answered); 23 before the exchange. */
  get mtu(): number {
    const answered = this.peripheral.mtu;
    return answered ? Math.min(NOBLE_REQUESTED_MTU, answered) : 23;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  discover(): Promise<GattServiceInfo[]> {
    if (this.table) return Promise.resolve(this.table);
    if (!this.discovering) {
      this.discovering = this.timed(this.untilDisconnect(this.discoverAll(), 'discovering services'), 'discovering services').then(
        (table) => (this.table = table),
        (err) => {
          this.discovering = null;
          throw err;
        },
      );
    }
    return this.discovering;
  }

  async read(service: string, characteristic: string): Promise<Buffer> {
    const channel = await this.channel(service, characteristic, 'read');
    const done = new Promise<Buffer>((resolve, reject) => channel.reads.push({ resolve, reject }));
    channel.characteristic.read();
    return this.timed(done, `reading ${characteristic}`);
  }

  async write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    const property = withoutResponse ? 'writeWithoutResponse' : 'write';
    // Data chunks go to the same characteristic over and over: once the table is known the lookup
    // needs no await (and no UUID normalising) per chunk.
    const channel = (this.table && this.knownChannel(service, characteristic, property)) || (await this.channel(service, characteristic, property));
    if (!withoutResponse && data.length > this.mtu - 3) this.clampNobleMtu();
    const done = new Promise<Buffer>((resolve, reject) => channel.writes.push({ resolve, reject }));
    channel.characteristic.write(data, withoutResponse);
    // A write without response completes when the stack has queued it; only a lost link can stop it,
    // and that rejects it, so it needs no timer (one timer per data chunk would cost throughput).
    await (withoutResponse ? done : this.timed(done, `writing ${characteristic}`));
  }

  /**
   * A Write Request longer than the link's MTU - 3 must go as Prepare Writes + Execute (a BEGIN with its
   * manifest, 317+ bytes). noble splits only when the value exceeds its stored `_mtu` - 3, and it stores the
   * server's answer (517) instead of min(256, 517) (gatt.js:342-346, 568-576), so it would send one PDU the
   * server drops as longer than its ATT MTU (NimBLE ble_l2cap_rx) and the write would never be answered. Its
   * hci-socket gatt of this link gets the link's real MTU, as upstream PR stoprocent/noble#139 does.
   */
  private clampNobleMtu(): void {
    const internals = this.peripheral as unknown as { _noble?: { _bindings?: { _gatts?: Record<string, { _mtu?: number } | undefined> } } };
    const gatt = internals._noble?._bindings?._gatts?.[this.peripheral.id];
    if (gatt && typeof gatt._mtu === 'number' && gatt._mtu > this.mtu) gatt._mtu = this.mtu;
  }

  /** The channel last used with exactly these arguments, if the link is up and it allows `property`. */
  private knownChannel(service: string, characteristic: string, property: string): CharacteristicChannel | null {
    const last = this.lastChannel;
    if (!this.isConnected || !last || last.service !== service || last.characteristic !== characteristic || last.property !== property) return null;
    return this.channels.get(last.key) === last.channel ? last.channel : null;
  }

  async subscribe(service: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void> {
    const channel = await this.channel(service, characteristic, 'notify');
    channel.subscribers.push(onValue);
    if (channel.subscribers.length > 1) return;
    const done = new Promise<void>((resolve) => channel.characteristic.subscribe(() => resolve()));
    await this.timed(this.untilDisconnect(done, `subscribing to ${characteristic}`), `subscribing to ${characteristic}`);
  }

  async disconnect(): Promise<void> {
    if (!this.isConnected) return;
    const gone = new Promise<void>((resolve) => this.once('disconnect', () => resolve()));
    this.peripheral.disconnect();
    try {
      await withTimeout(this.clock, gone, 5000, () => new OtaError('DISCONNECT_TIMEOUT', `${this.deviceName} did not confirm the disconnect`));
    } catch {
      // The controller lost track of the link; treat it as gone so callers can go on.
      this.markDisconnected('local disconnect (unconfirmed)');
    }
  }

  /** Called by the central when the adapter itself goes away. */
  markDisconnected(reason: string): void {
    if (!this.isConnected) return;
    this.isConnected = false;
    this.peripheral.removeListener('disconnect', this.onPeripheralDisconnect);
    const err = new OtaError('DISCONNECTED', `the connection to ${this.deviceName} dropped (${reason})`, { reason });
    for (const channel of this.channels.values()) {
      channel.failAll(err);
      channel.detach();
    }
    this.channels.clear();
    this.emit('disconnect', reason);
  }

  private async discoverAll(): Promise<GattServiceInfo[]> {
    const services = await new Promise<NobleService[]>((resolve) => this.peripheral.discoverServices([], (_e, s) => resolve(s ?? [])));
    const table: GattServiceInfo[] = [];
    for (const service of services) {
      // Generic Access and Generic Attribute (our firmware registers them, ble_ota.c ble_svc_gap_init /
      // ble_svc_gatt_init, as the seed does: michael-angerer/esp32_ble_ota esp/main/gatt_svr.c:278-279) hold
      // nothing this library uses: their characteristics are not discovered, two Read By Type exchanges
      // each that every connection's set-up would wait for.
      const characteristics = UNUSED_SERVICES.has(normalizeUuid(service.uuid))
        ? []
        : await new Promise<NobleCharacteristic[]>((resolve) => service.discoverCharacteristics([], (_e, c) => resolve(c ?? [])));
      for (const c of characteristics) {
        const k = key(service.uuid, c.uuid);
        if (!this.channels.has(k)) this.channels.set(k, new CharacteristicChannel(normalizeUuid(service.uuid), c));
      }
      table.push({
        uuid: normalizeUuid(service.uuid),
        characteristics: characteristics.map((c) => ({ uuid: normalizeUuid(c.uuid), properties: [...c.properties] })),
      });
    }
    return table;
  }

  private async channel(service: string, characteristic: string, property: string): Promise<CharacteristicChannel> {
    this.assertConnected();
    await this.discover();
    this.assertConnected();
    const channel = this.channels.get(key(service, characteristic));
    if (!channel) {
      throw new OtaError('GATT_NOT_FOUND', `${this.deviceName} has no characteristic ${normalizeUuid(characteristic)} in service ${normalizeUuid(service)}`);
    }
    const props = channel.characteristic.properties;
    const allowed = props.includes(property) || (property === 'notify' && props.includes('indicate'));
    if (!allowed) {
      throw new OtaError('GATT_NOT_PERMITTED', `characteristic ${normalizeUuid(characteristic)} of ${this.deviceName} does not allow ${property}`);
    }
    this.lastChannel = { service, characteristic, property, key: key(service, characteristic), channel };
    return channel;
  }

  /** Pending operations kept in channel queues fail on disconnect; this covers the others. */
  private untilDisconnect<T>(promise: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onLost = (reason: string) => reject(new OtaError('DISCONNECTED', `the connection to ${this.deviceName} dropped while ${what} (${reason})`, { reason }));
      this.once('disconnect', onLost);
      promise.then(resolve, reject).finally(() => this.removeListener('disconnect', onLost));
    });
  }

  private assertConnected(): void {
    if (!this.isConnected) throw new OtaError('DISCONNECTED', `${this.deviceName} is not connected`);
  }

  private timed<T>(promise: Promise<T>, what: string): Promise<T> {
    return withTimeout(this.clock, promise, ATT_TIMEOUT_MS, () => new OtaError('GATT_TIMEOUT', `${this.deviceName} did not answer within ${ATT_TIMEOUT_MS / 1000} s while ${what}`));
  }
}
