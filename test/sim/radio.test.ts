/**
 * The virtual radio driven through REAL noble objects (noble's own hci-socket layer on the virtual HCI controller).
 */
import { strict as assert } from 'assert';
import { createSimRadio, HCI_REASON, type SimRadio } from '../../lib/sim/radio';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import type { LinkScenarioName } from '../../lib/sim/link-model';
import type { AdapterState } from '../../lib/ble/central';
import { TinyPeripheral, TINY_SERVICE, CHAR_RW, CHAR_SINK, CHAR_LONG, CHAR_STRICT } from './tiny-peripheral';

import { createHciNoble } from '../../lib/sim/hci/noble-hci-loader';

/* Loose views of noble's objects, enough for these tests. */
interface NobleLike {
  state: string;
  on(e: string, f: (...a: never[]) => void): void;
  once(e: string, f: (...a: never[]) => void): void;
  removeListener(e: string, f: (...a: never[]) => void): void;
  startScanning(uuids: string[], dup: boolean, cb?: (err: Error | null) => void): void;
  stopScanning(cb?: () => void): void;
}
interface Char {
  uuid: string;
  properties: string[];
  on(e: string, f: (...a: never[]) => void): void;
  read(cb: (err: unknown, data: Buffer) => void): void;
  write(data: Buffer, withoutResponse: boolean, cb?: (err: unknown) => void): void;
  subscribe(cb: (err: unknown) => void): void;
}
interface Svc {
  uuid: string;
  discoverCharacteristics(uuids: string[], cb: (err: unknown, c: Char[]) => void): void;
}
interface Periph {
  id: string;
  address: string;
  rssi: number;
  mtu: number | null;
  state: string;
  advertisement: { localName?: string; manufacturerData?: Buffer; serviceUuids: string[]; txPowerLevel?: number };
  connect(cb: (err?: unknown) => void): void;
  disconnect(cb?: () => void): void;
  once(e: string, f: (...a: never[]) => void): void;
  discoverServices(uuids: string[], cb: (err: unknown, s: Svc[]) => void): void;
}

interface Rig {
  clock: VirtualClock;
  radio: SimRadio;
  noble: NobleLike;
  device: TinyPeripheral;
}

/** The device's MTU defaults to 256, ESP-IDF's CONFIG_BT_NIMBLE_ATT_PREFERRED_MTU default. */
function rig(link: LinkScenarioName = 'reference', adapterState?: AdapterState, deviceMtu = 256): Rig {
  const clock = new VirtualClock();
  const radio = createSimRadio({ clock, link, adapterState });
  const device = new TinyPeripheral(undefined, undefined, deviceMtu);
  radio.addDevice(device, { rssi: -48 });
  const noble = createHciNoble(radio.controller) as unknown as NobleLike;
  return { clock, radio, noble, device };
}

function poweredOn(noble: NobleLike): Promise<string> {
  return new Promise((resolve) => noble.once('stateChange', (s: string) => resolve(s)));
}

async function find(r: Rig, services: string[] = [], id = 'aabbcc000001'): Promise<Periph> {
  if (r.noble.state !== 'poweredOn') await poweredOn(r.noble);
  return new Promise((resolve, reject) => {
    const onDiscover = (p: Periph) => {
      if (p.id !== id) return;
      r.noble.removeListener('discover', onDiscover);
      r.noble.stopScanning();
      resolve(p);
    };
    r.noble.on('discover', onDiscover);
    r.noble.startScanning(services, false, (err) => err && reject(err));
  });
}

const p = <T>(fn: (cb: (err: unknown, v: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));

async function connected(r: Rig, id?: string): Promise<{ periph: Periph; chars: Map<string, Char> }> {
  const periph = await find(r, [], id);
  await p<void>((cb) => periph.connect((e) => cb(e, undefined)));
  const services = await p<Svc[]>((cb) => periph.discoverServices([], cb));
  const chars = new Map<string, Char>();
  for (const s of services) for (const c of await p<Char[]>((cb) => s.discoverCharacteristics([], cb))) chars.set(c.uuid, c);
  return { periph, chars };
}

describe('sim/radio through real noble', () => {
  it('scans: finds the device with its name, manufacturer data (Buffer), services, RSSI and tx power', async () => {
    const r = rig();
    const periph = await find(r);
    assert.equal(periph.id, 'aabbcc000001');
    assert.equal(periph.address, 'aa:bb:cc:00:00:01');
    assert.equal(periph.rssi, -48);
    assert.equal(periph.advertisement.localName, 'tiny-1');
    assert.ok(Buffer.isBuffer(periph.advertisement.manufacturerData));
    assert.equal(periph.advertisement.manufacturerData?.toString('hex'), 'e502012a');
    assert.deepEqual(periph.advertisement.serviceUuids, [TINY_SERVICE]);
    assert.equal(periph.advertisement.txPowerLevel, 3);
    // the first advertisement is heard within one advertising interval
    assert.ok(r.clock.now() <= 100, `heard at ${r.clock.now()} ms`);
  });

  it('scans with a service filter: only matching devices are reported', async () => {
    const r = rig();
    const other = new TinyPeripheral('aa:bb:cc:00:00:02', 'tiny-2');
    r.radio.addDevice(other);
    await poweredOn(r.noble);
    const seen = new Set<string>();
    r.noble.on('discover', (x: Periph) => seen.add(x.id));
    r.noble.startScanning(['180a'], true);
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 500));
    r.noble.stopScanning();
    assert.equal(seen.size, 0, 'no device advertises 180a');
    r.noble.startScanning([TINY_SERVICE], true);
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 500));
    r.noble.stopScanning();
    assert.deepEqual([...seen].sort(), ['aabbcc000001', 'aabbcc000002']);
  });

  it('connects, exchanges the MTU as noble does (asks 256, stores the answer), discovers the GATT table', async () => {
    const r = rig();
    const small = new TinyPeripheral('aa:bb:cc:00:00:03', 'tiny-3', 185);
    r.radio.addDevice(small);
    const { periph, chars } = await connected(r);
    assert.equal(periph.state, 'connected');
    assert.equal(periph.mtu, 256);
    assert.equal(r.radio.attServer('aa:bb:cc:00:00:01')?.mtu, 256);
    assert.deepEqual(r.device.connects, [23], 'the device learns the link at the default MTU, before the exchange');
    assert.deepEqual(chars.get(CHAR_RW)?.properties, ['read', 'write', 'notify']);
    assert.deepEqual(chars.get(CHAR_SINK)?.properties, ['writeWithoutResponse']);
    assert.ok(chars.has('2a29'));
    assert.deepEqual(r.radio.connectedDevices(), ['aa:bb:cc:00:00:01']);
    assert.equal((await connected(r, 'aabbcc000003')).periph.mtu, 185, 'the device offers less');
    assert.equal(r.radio.attServer('aa:bb:cc:00:00:03')?.mtu, 185);
    // A device answering 517: noble stores 517 verbatim (gatt.js:342-346) while the link's MTU is min(256, 517).
    const wide = rig('reference', undefined, 517);
    assert.equal((await connected(wide)).periph.mtu, 517);
    assert.equal(wide.radio.attServer('aa:bb:cc:00:00:01')?.mtu, 256);
  });

  it('reads short and long values (long reads by Read Blob) and writes with and without response', async () => {
    const r = rig();
    const { chars } = await connected(r);
    const rw = chars.get(CHAR_RW) as Char;
    assert.equal((await p<Buffer>((cb) => rw.read(cb))).toString(), 'hello');
    const long = await p<Buffer>((cb) => (chars.get(CHAR_LONG) as Char).read(cb));
    assert.deepEqual(long, r.device.longValue);
    await p<void>((cb) => rw.write(Buffer.from('abc'), false, (e) => cb(e, undefined)));
    assert.equal((await p<Buffer>((cb) => rw.read(cb))).toString(), 'abc');
    const sink = chars.get(CHAR_SINK) as Char;
    for (let i = 0; i < 5; i++) sink.write(Buffer.alloc(244, i), true);
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 100));
    const sunk = r.device.writes.filter((w) => w.characteristic === CHAR_SINK);
    assert.equal(sunk.length, 5);
    assert.ok(sunk.every((w, i) => w.withoutResponse && w.data.equals(Buffer.alloc(244, i))));
    // 5 full PDUs queued together go out back to back in one event
    assert.ok(Math.abs(sunk[4].at - sunk[0].at - 4 * 2.468) < 1e-6, `${sunk.map((w) => w.at)}`);
  });

  it('long writes (value > MTU-3) arrive once, whole; too long write commands are discarded', async () => {
    const r = rig();
    const { chars } = await connected(r);
    const value = Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7) & 0xff));
    await p<void>((cb) => (chars.get(CHAR_RW) as Char).write(value, false, (e) => cb(e, undefined)));
    const got = r.device.writes.filter((w) => w.characteristic === CHAR_RW);
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].data, value);
    (chars.get(CHAR_SINK) as Char).write(Buffer.alloc(300), true);
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 100));
    assert.equal(r.device.writes.filter((w) => w.characteristic === CHAR_SINK).length, 0);
    assert.equal(r.radio.stats().devices['aa:bb:cc:00:00:01'].gatt.oversizeWritesDropped, 1);
  });

  it('an ATT error response leaves the write unacknowledged, as on hci-socket', async () => {
    const r = rig();
    const { chars } = await connected(r);
    const strict = chars.get(CHAR_STRICT) as Char;
    let acknowledged = false;
    strict.write(Buffer.alloc(11), false, () => (acknowledged = true));
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 1000));
    assert.equal(acknowledged, false);
    const gatt = r.radio.stats().devices['aa:bb:cc:00:00:01'].gatt;
    assert.equal(gatt.attErrors, 1);
    assert.equal(gatt.lastAttError?.code, 0x0d);
    // the ATT bearer is free again: the next request goes through
    await p<void>((cb) => strict.write(Buffer.alloc(4), false, (e) => cb(e, undefined)));
  });

  it('delivers notifications after subscribing, timed on air; drops them before', async () => {
    const r = rig();
    const { chars } = await connected(r);
    const rw = chars.get(CHAR_RW) as Char;
    const got: Array<{ data: Buffer; at: number }> = [];
    rw.on('data', (data: Buffer, isNotification: boolean) => isNotification && got.push({ data, at: r.clock.now() }));
    r.device.notify(Buffer.from('early'));
    await p<void>((cb) => rw.subscribe((e) => cb(e, undefined)));
    const sentAt = r.clock.now();
    r.device.notify(Buffer.from('n1'));
    r.device.notify(Buffer.from('n2'));
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 50));
    assert.deepEqual(got.map((g) => g.data.toString()), ['n1', 'n2']);
    assert.ok(got[0].at > sentAt && got[0].at <= sentAt + 15 + 1, 'in the next connection event');
    assert.equal(r.radio.stats().devices['aa:bb:cc:00:00:01'].gatt.notificationsDropped, 1);
  });

  it('reports disconnects: local (0x16), by the device (0x13); the device is told when the central leaves', async () => {
    const r = rig();
    const { periph } = await connected(r);
    const reason = new Promise<number>((resolve) => periph.once('disconnect', (x: number) => resolve(x)));
    periph.disconnect();
    assert.equal(await reason, HCI_REASON.localHostTerminated);
    assert.equal(r.device.disconnects, 1);
    assert.deepEqual(r.radio.connectedDevices(), []);
    // reconnect (the device advertises again) and let the device drop the link
    await p<void>((cb) => periph.connect((e) => cb(e, undefined)));
    const second = new Promise<number>((resolve) => periph.once('disconnect', (x: number) => resolve(x)));
    r.device.host?.dropConnection('reboot');
    assert.equal(await second, HCI_REASON.remoteUserTerminated);
    assert.equal(r.device.disconnects, 1, 'a device that drops the link already knows');
    assert.equal(r.radio.stats().devices['aa:bb:cc:00:00:01'].connections, 2);
  });

  it('counts bytes on air per direction', async () => {
    const r = rig();
    const { chars } = await connected(r);
    const before = r.radio.stats();
    const sink = chars.get(CHAR_SINK) as Char;
    for (let i = 0; i < 10; i++) sink.write(Buffer.alloc(244), true);
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 100));
    const after = r.radio.stats();
    // 10 PDUs of 251 B payload: (10 + 251) bytes each on 1M, the peripheral answers with empty PDUs (10 B)
    assert.equal(after.bytesOnAir.toPeripheral - before.bytesOnAir.toPeripheral, 10 * 261);
    assert.equal(after.totals.toPeripheral.llPayloadBytes - before.totals.toPeripheral.llPayloadBytes, 10 * 251);
    assert.equal(after.bytesOnAir.toCentral - before.bytesOnAir.toCentral, 10 * 10);
  });

  it('adapter off: noble reports poweredOff and scanning fails; powering on recovers', async () => {
    const r = rig('reference', 'poweredOff');
    assert.equal(await poweredOn(r.noble), 'poweredOff');
    await assert.rejects(
      new Promise<void>((resolve, reject) => r.noble.startScanning([], false, (err) => (err ? reject(err) : resolve()))),
      /state is poweredOff/,
    );
    const next = new Promise<string>((resolve) => r.noble.once('stateChange', (s: string) => resolve(s)));
    r.radio.setAdapterState('poweredOn');
    assert.equal(await next, 'poweredOn');
    const missing = rig('reference', 'unsupported');
    assert.equal(await poweredOn(missing.noble), 'unsupported');
  });

  it('adapter switched off while connected: noble sees poweredOff at its next isDevUp poll, the device after its supervision timeout', async () => {
    const r = rig();
    await connected(r);
    const off = new Promise<string>((resolve) => r.noble.on('stateChange', (s: string) => s === 'poweredOff' && resolve(s)));
    const t0 = r.clock.now();
    r.radio.setAdapterState('poweredOff');
    assert.equal(r.device.disconnects, 0);
    await off;
    assert.ok(r.clock.now() - t0 <= 1000, 'hci.js polls isDevUp every second');
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 500));
    assert.equal(r.device.disconnects, 1);
  });

  it('connecting waits for the device to advertise; a non-advertising device never connects', async () => {
    const r = rig();
    const periph = await find(r);
    r.device.advertising = false;
    let done = false;
    periph.connect(() => (done = true));
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 2000));
    assert.equal(done, false);
    r.device.advertising = true;
    r.device.host?.advertisingChanged();
    await new Promise<void>((resolve) => r.clock.setTimer(resolve, 200));
    assert.equal(done, true);
  });

  it('is deterministic: the same session gives the same trace', async () => {
    const session = async () => {
      const r = rig();
      const { chars } = await connected(r);
      const sink = chars.get(CHAR_SINK) as Char;
      for (let i = 0; i < 30; i++) sink.write(Buffer.alloc(200, i), true);
      await p<void>((cb) => (chars.get(CHAR_RW) as Char).write(Buffer.from('x'), false, (e) => cb(e, undefined)));
      return r.device.writes.map((w) => `${w.at.toFixed(6)}:${w.data.length}`).join(',');
    };
    assert.equal(await session(), await session());
  });
});
