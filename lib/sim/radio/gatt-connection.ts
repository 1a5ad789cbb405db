/**
 * One connection's ATT traffic over the link layer: the client side mirrors noble's hci-socket gatt.js
 * (one outstanding request; write commands queued behind it and reported written as soon as they are
 * handed to the controller; long reads by Read Blob while a response fills the MTU; long writes by
 * Prepare/Execute; ATT errors never reported to noble: a failed read yields the data so far, a failed
 * write never completes), the server side calls the VirtualPeripheral. The MTU exchange is the first
 * request, as hci-socket noble sends it on connect.
 */
import { AttError, type VirtualCharacteristic, type VirtualPeripheral, type VirtualService } from '../types';
import type { LinkConnection, LinkLayer } from './link-layer';
import { ATT, characteristicDiscoveryResponses, serviceDiscoveryResponses } from './att-sizes';

/** ATT error "Unlikely Error": what a device bug (a non-AttError exception) turns into. */
const ATT_UNLIKELY_ERROR = 0x0e;
const ATT_ATTRIBUTE_NOT_FOUND = 0x0a;

export type WriteVerdict = { action: 'deliver'; data: Buffer } | { action: 'drop' } | { action: 'loseLink' };

export interface GattCounters {
  attErrors: number;
  /** Write commands longer than MTU-3: a server discards them. */
  oversizeWritesDropped: number;
  /** Notifications the device sent while the central was not subscribed. */
  notificationsDropped: number;
  valueBytesToPeripheral: number;
  valueBytesToCentral: number;
  lastAttError?: { code: number; message: string };
}

export interface GattConnectionOptions {
  /** noble's peripheral id. */
  id: string;
  /** The device's id for this link (one per central; VirtualPeripheral connectionId). */
  connectionId: number;
  device: VirtualPeripheral;
  link: LinkLayer;
  conn: LinkConnection;
  centralMtu: number;
  /** The bindings' emit. */
  emit: (event: string, ...args: unknown[]) => void;
  /** Fault injection on every write as it reaches the device. */
  filterWrite: (data: Buffer, withoutResponse: boolean, characteristic: string) => WriteVerdict;
  onLinkLost: () => void;
  /** Traffic observer (benchmark timing): writes as noble hands them over, notifications as noble gets them. */
  observe?: (kind: 'write' | 'notification', characteristicUuid: string, data: Buffer) => void;
}

type Served = { ok: true; bytes: number; value?: Buffer } | { ok: false; code: number };

interface Command {
  reqBytes: number;
  /** Request: runs at the peripheral on arrival; its result is the response. */
  serve?: () => Served | Promise<Served>;
  onResponse?: (r: Served) => void;
  /** Command (no response): runs at the peripheral on arrival. */
  arrive?: () => void;
  /** noble's writeCallback: the command was handed to the controller. */
  onSent?: () => void;
}

export class GattConnection {
  mtu = 23;
  readonly counters: GattCounters = { attErrors: 0, oversizeWritesDropped: 0, notificationsDropped: 0, valueBytesToPeripheral: 0, valueBytesToCentral: 0 };
  private readonly subscriptions = new Set<string>();
  private readonly queue: Array<Command | undefined> = [];
  private queueHead = 0;
  private current: Command | null = null;
  private ended = false;
  private readonly services: VirtualService[];

  constructor(private readonly o: GattConnectionOptions) {
    this.services = o.device.gatt();
  }

  get id(): string {
    return this.o.id;
  }

  /** Called once the link is up: the MTU exchange goes first. */
  start(): void {
    let agreed = 23;
    this.request(
      ATT.mtuReq,
      () => {
        agreed = Math.max(23, Math.min(this.o.centralMtu, this.o.device.maxMtu));
        this.o.device.onConnect(agreed, this.o.connectionId);
        return { ok: true, bytes: ATT.mtuRsp };
      },
      () => {
        this.mtu = agreed;
        this.o.emit('onMtu', this.o.id, agreed);
      },
    );
  }

  /** The link is gone: nothing queued will happen. */
  end(): void {
    this.ended = true;
    this.queue.length = 0;
    this.queueHead = 0;
    this.current = null;
  }

  discoverServices(uuids: string[]): void {
    const sizes = serviceDiscoveryResponses(this.services, this.mtu);
    this.chain(ATT.readByGroupTypeReq, sizes, () => {
      const found = this.services.map((s) => s.uuid).filter((u) => uuids.length === 0 || uuids.includes(u));
      this.o.emit('servicesDiscover', this.o.id, found);
    });
  }

  discoverCharacteristics(serviceUuid: string, uuids: string[]): void {
    const service = this.services.find((s) => s.uuid === serviceUuid);
    if (!service) return; // noble never asks for a service it has not discovered
    const sizes = characteristicDiscoveryResponses(service, this.mtu);
    this.chain(ATT.readByTypeReq, sizes, () => {
      const found = service.characteristics
        .filter((c) => uuids.length === 0 || uuids.includes(c.uuid))
        .map((c) => ({ uuid: c.uuid, properties: [...c.properties] }));
      this.o.emit('characteristicsDiscover', this.o.id, serviceUuid, found);
    });
  }

  discoverDescriptors(serviceUuid: string, characteristicUuid: string): void {
    const c = this.characteristic(serviceUuid, characteristicUuid);
    const descriptors = c && hasCccd(c) ? ['2902'] : [];
    this.chain(ATT.findInformationReq, [...(descriptors.length ? [2 + 4] : []), ATT.errorRsp], () => {
      this.o.emit('descriptorsDiscover', this.o.id, serviceUuid, characteristicUuid, descriptors);
    });
  }

  read(serviceUuid: string, characteristicUuid: string): void {
    let value: Buffer | null = null;
    let received = Buffer.alloc(0);
    const finish = () => this.o.emit('read', this.o.id, serviceUuid, characteristicUuid, received, false);
    const onPart = (r: Served) => {
      if (!r.ok || !r.value) {
        finish();
        return;
      }
      received = Buffer.concat([received, r.value]);
      // noble asks for the next part while a response fills the MTU.
      if (r.bytes === this.mtu) this.request(ATT.readBlobReq, () => blob(received.length), onPart);
      else finish();
    };
    const blob = (offset: number): Served => {
      const all = value ?? Buffer.alloc(0);
      const part = all.subarray(offset, offset + this.mtu - 1);
      this.counters.valueBytesToCentral += part.length;
      return { ok: true, bytes: 1 + part.length, value: Buffer.from(part) };
    };
    this.request(
      ATT.readReq,
      async () => {
        value = Buffer.from(await this.o.device.onRead(serviceUuid, characteristicUuid, this.o.connectionId));
        return blob(0);
      },
      onPart,
    );
  }

  write(serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean): void {
    const value = Buffer.from(data);
    this.o.observe?.('write', characteristicUuid, value);
    if (withoutResponse) {
      this.command(ATT.writeHeader + value.length, () => this.deliverWrite(serviceUuid, characteristicUuid, value, true), () => this.o.emit('write', this.o.id, serviceUuid, characteristicUuid));
      return;
    }
    const done = (r: Served) => {
      if (r.ok) this.o.emit('write', this.o.id, serviceUuid, characteristicUuid);
    };
    if (value.length + ATT.writeHeader <= this.mtu) {
      this.request(ATT.writeHeader + value.length, () => this.deliverWrite(serviceUuid, characteristicUuid, value, false), done);
      return;
    }
    // Long write: Prepare Write requests of MTU-5 bytes, echoed back, then Execute Write.
    const limit = this.mtu - ATT.prepareWriteHeader;
    for (let offset = 0; offset < value.length; offset += limit) {
      const chunk = value.length - offset < limit ? value.length - offset : limit;
      this.request(ATT.prepareWriteHeader + chunk, () => ({ ok: true, bytes: ATT.prepareWriteHeader + chunk }), () => undefined);
    }
    this.request(ATT.executeWriteReq, () => this.deliverWrite(serviceUuid, characteristicUuid, value, false), done);
  }

  /** noble's notify(true/false): find the CCCD, then write it. */
  setNotify(serviceUuid: string, characteristicUuid: string, enable: boolean): void {
    const c = this.characteristic(serviceUuid, characteristicUuid);
    if (!c || !hasCccd(c)) {
      // Read By Type finds no CCCD: noble's callback never runs (as on hci-socket).
      this.request(ATT.readByTypeReq, () => ({ ok: false, code: ATT_ATTRIBUTE_NOT_FOUND }), () => undefined);
      return;
    }
    this.request(ATT.readByTypeReq, () => ({ ok: true, bytes: 2 + 4 }), () => undefined);
    this.request(
      ATT.writeHeader + 2,
      () => {
        const k = key(serviceUuid, characteristicUuid);
        if (enable) this.subscriptions.add(k);
        else this.subscriptions.delete(k);
        return { ok: true, bytes: ATT.writeRsp };
      },
      () => this.o.emit('notify', this.o.id, serviceUuid, characteristicUuid, enable),
    );
  }

  /** Descriptor read: only the CCCD exists (its value mirrors the subscription). */
  readDescriptor(serviceUuid: string, characteristicUuid: string, descriptorUuid: string): void {
    const value = Buffer.from([this.isSubscribed(serviceUuid, characteristicUuid) ? 1 : 0, 0]);
    this.request(ATT.readReq, () => ({ ok: true, bytes: 1 + value.length }), () => {
      this.o.emit('valueRead', this.o.id, serviceUuid, characteristicUuid, descriptorUuid, value);
    });
  }

  /** Descriptor write: writing the CCCD (un)subscribes. */
  writeDescriptor(serviceUuid: string, characteristicUuid: string, descriptorUuid: string, data: Buffer): void {
    this.request(
      ATT.writeHeader + data.length,
      () => {
        if (descriptorUuid === '2902' && data.length >= 1) {
          const k = key(serviceUuid, characteristicUuid);
          if (data[0] & 0x03) this.subscriptions.add(k);
          else this.subscriptions.delete(k);
        }
        return { ok: true, bytes: ATT.writeRsp };
      },
      () => this.o.emit('valueWrite', this.o.id, serviceUuid, characteristicUuid, descriptorUuid),
    );
  }

  isSubscribed(serviceUuid: string, characteristicUuid: string): boolean {
    return this.subscriptions.has(key(serviceUuid, characteristicUuid));
  }

  /** The device notifies (or indicates): on air from the peripheral in link order. */
  notifyFromDevice(serviceUuid: string, characteristicUuid: string, data: Buffer): void {
    if (this.ended) return;
    const c = this.characteristic(serviceUuid, characteristicUuid);
    if (!c || !this.isSubscribed(serviceUuid, characteristicUuid)) {
      this.counters.notificationsDropped++;
      return;
    }
    // A server sends at most MTU-3 bytes of a value in a notification.
    const value = Buffer.from(data.subarray(0, this.mtu - ATT.writeHeader));
    const indication = !c.properties.includes('notify');
    this.o.link.send(this.o.conn, 'toCentral', ATT.writeHeader + value.length, () => {
      if (this.ended) return;
      this.counters.valueBytesToCentral += value.length;
      this.o.observe?.('notification', characteristicUuid, value);
      this.o.emit('read', this.o.id, serviceUuid, characteristicUuid, value, true);
      if (indication) this.command(ATT.handleValueConfirmation, () => undefined);
    });
  }

  private deliverWrite(serviceUuid: string, characteristicUuid: string, value: Buffer, withoutResponse: boolean): Served | Promise<Served> {
    if (withoutResponse && value.length + ATT.writeHeader > this.mtu) {
      this.counters.oversizeWritesDropped++;
      return { ok: true, bytes: 0 };
    }
    const verdict = this.o.filterWrite(value, withoutResponse, characteristicUuid);
    if (verdict.action === 'loseLink') {
      this.o.onLinkLost();
      return new Promise<Served>(() => undefined); // the response never comes
    }
    if (verdict.action === 'drop') return { ok: true, bytes: ATT.writeRsp };
    this.counters.valueBytesToPeripheral += verdict.data.length;
    const onError = (err: unknown): Served => this.attFailure(err);
    try {
      const result = this.o.device.onWrite(serviceUuid, characteristicUuid, verdict.data, withoutResponse, this.o.connectionId);
      if (result && typeof (result as Promise<void>).then === 'function') {
        return (result as Promise<void>).then(() => ({ ok: true as const, bytes: ATT.writeRsp }), onError);
      }
      return { ok: true, bytes: ATT.writeRsp };
    } catch (err) {
      return onError(err);
    }
  }

  private attFailure(err: unknown): Served {
    const code = err instanceof AttError ? err.attCode : ATT_UNLIKELY_ERROR;
    this.counters.attErrors++;
    this.counters.lastAttError = { code, message: err instanceof Error ? err.message : String(err) };
    return { ok: false, code };
  }

  /** A series of identical requests answered with the given response sizes, then done(). */
  private chain(reqBytes: number, responseSizes: number[], done: () => void): void {
    let i = 0;
    const next = () => {
      const bytes = responseSizes[i++];
      this.request(reqBytes, () => ({ ok: true, bytes }), () => (i < responseSizes.length ? next() : done()));
    };
    next();
  }

  private characteristic(serviceUuid: string, characteristicUuid: string): VirtualCharacteristic | undefined {
    return this.services.find((s) => s.uuid === serviceUuid)?.characteristics.find((c) => c.uuid === characteristicUuid);
  }

  private request(reqBytes: number, serve: () => Served | Promise<Served>, onResponse: (r: Served) => void): void {
    this.enqueue({ reqBytes, serve, onResponse });
  }

  private command(reqBytes: number, arrive: () => void, onSent?: () => void): void {
    this.enqueue({ reqBytes, arrive, onSent });
  }

  private enqueue(cmd: Command): void {
    if (this.ended) return;
    this.queue.push(cmd);
    this.pump();
  }

  /** noble's _queueCommand loop: send commands until a request is outstanding. */
  private pump(): void {
    while (!this.current && this.queueHead < this.queue.length && !this.ended) {
      const cmd = this.queue[this.queueHead] as Command;
      // A sent command's slot is cleared: the queue must not keep its closures and data alive.
      this.queue[this.queueHead++] = undefined;
      if (this.queueHead > 256 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      if (cmd.serve) {
        this.current = cmd;
        this.o.link.send(this.o.conn, 'toPeripheral', cmd.reqBytes, () => this.serve(cmd));
      } else {
        this.o.link.send(this.o.conn, 'toPeripheral', cmd.reqBytes, () => {
          if (!this.ended) cmd.arrive?.();
        });
        cmd.onSent?.();
      }
    }
  }

  private serve(cmd: Command): void {
    if (this.ended || !cmd.serve) return;
    let result: Served | Promise<Served>;
    try {
      result = cmd.serve();
    } catch (err) {
      result = this.attFailure(err);
    }
    Promise.resolve(result)
      .catch((err: unknown) => this.attFailure(err))
      .then((r) => {
        if (this.ended) return;
        this.o.link.send(this.o.conn, 'toCentral', r.ok ? r.bytes : ATT.errorRsp, () => {
          if (this.ended || this.current !== cmd) return;
          cmd.onResponse?.(r);
          this.current = null;
          this.pump();
        });
      });
  }
}

function hasCccd(c: VirtualCharacteristic): boolean {
  return c.properties.includes('notify') || c.properties.includes('indicate');
}

function key(service: string, characteristic: string): string {
  return `${service}/${characteristic}`;
}
