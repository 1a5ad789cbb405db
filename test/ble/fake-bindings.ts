/**
 * A deliberately small noble bindings object for testing the central and the scheduler with the real
 * noble Noble/Peripheral/Characteristic objects, independent of the simulator: devices that advertise,
 * accept (or ignore) connections, and serve one read/write/notify characteristic that echoes writes
 * as notifications.
 */
import { EventEmitter } from 'events';

export const TEST_SERVICE = 'aaaa';
export const ECHO_CHAR = 'aaab';
export const INFO_CHAR = 'aaac';

export interface FakeDeviceSpec {
  id: string;
  address: string;
  name: string;
  /** Never answers a connection request. */
  unresponsive?: boolean;
}

export class FakeBindings extends EventEmitter {
  state = 'poweredOn';
  scanning = false;
  readonly connected = new Set<string>();
  readonly writes: Array<{ id: string; data: Buffer; withoutResponse: boolean }> = [];
  connectRequests = 0;
  maxSimultaneous = 0;
  private readonly devices = new Map<string, FakeDeviceSpec & { advertising: boolean }>();
  private readonly subscribed = new Set<string>();
  private advertiser: NodeJS.Timeout | null = null;

  constructor(devices: FakeDeviceSpec[], readonly initialState = 'poweredOn') {
    super();
    this.state = initialState;
    for (const d of devices) this.devices.set(d.id, { ...d, advertising: true });
  }

  init(): void {
    setImmediate(() => this.emit('stateChange', this.state));
  }

  setState(state: string): void {
    this.state = state;
    if (state !== 'poweredOn') {
      this.stopAdvertiser();
      for (const id of [...this.connected]) this.dropLink(id, 'adapter off');
    }
    this.emit('stateChange', state);
  }

  setScanParameters(): void {}

  startScanning(_uuids: string[], allowDuplicates: boolean): void {
    this.scanning = true;
    setImmediate(() => {
      this.emit('scanStart', !allowDuplicates);
      this.advertiseAll();
    });
    this.stopAdvertiser();
    this.advertiser = setInterval(() => this.advertiseAll(), 10);
  }

  stopScanning(): void {
    this.scanning = false;
    this.stopAdvertiser();
    setImmediate(() => this.emit('scanStop'));
  }

  connect(id: string): void {
    this.connectRequests++;
    const device = this.devices.get(id);
    if (!device || device.unresponsive) return;
    setImmediate(() => {
      this.connected.add(id);
      this.maxSimultaneous = Math.max(this.maxSimultaneous, this.connected.size);
      device.advertising = false;
      this.emit('connect', id, null);
      this.emit('onMtu', id, 247);
    });
  }

  cancelConnect(): void {}

  disconnect(id: string): void {
    setImmediate(() => this.dropLink(id, 'local'));
  }

  /** The device side drops the link. */
  dropLink(id: string, reason: string): void {
    if (!this.connected.delete(id)) return;
    const device = this.devices.get(id);
    if (device) device.advertising = true;
    this.emit('disconnect', id, reason);
  }

  discoverServices(id: string): void {
    setImmediate(() => this.emit('servicesDiscover', id, ['1800', '1801', '180a', TEST_SERVICE]));
  }

  /** The services whose characteristics were asked for, in order. */
  readonly characteristicRequests: string[] = [];

  discoverCharacteristics(id: string, service: string): void {
    this.characteristicRequests.push(service);
    const characteristics =
      service === TEST_SERVICE
        ? [
            { uuid: ECHO_CHAR, properties: ['write', 'writeWithoutResponse', 'notify'] },
            { uuid: INFO_CHAR, properties: ['read'] },
          ]
        : [{ uuid: '2a29', properties: ['read'] }];
    setImmediate(() => this.emit('characteristicsDiscover', id, service, characteristics));
  }

  read(id: string, service: string, characteristic: string): void {
    const value = Buffer.from(`${this.devices.get(id)?.name}:${characteristic}`);
    setImmediate(() => this.emit('read', id, service, characteristic, value, false));
  }

  write(id: string, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void {
    this.writes.push({ id, data, withoutResponse });
    setImmediate(() => {
      if (!this.connected.has(id)) return;
      this.emit('write', id, service, characteristic);
      if (this.subscribed.has(`${id}/${characteristic}`)) this.emit('read', id, service, characteristic, data, true);
    });
  }

  notify(id: string, service: string, characteristic: string, on: boolean): void {
    if (on) this.subscribed.add(`${id}/${characteristic}`);
    setImmediate(() => this.emit('notify', id, service, characteristic, on));
  }

  stop(): void {
    this.stopAdvertiser();
  }

  private advertiseAll(): void {
    if (!this.scanning) return;
    for (const d of this.devices.values()) {
      if (!d.advertising) continue;
      this.emit('discover', d.id, d.address, 'public', true, { localName: d.name, serviceUuids: [TEST_SERVICE] }, -50, true);
    }
  }

  private stopAdvertiser(): void {
    if (this.advertiser) clearInterval(this.advertiser);
    this.advertiser = null;
  }
}
