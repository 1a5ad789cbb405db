import { strict as assert } from 'assert';
import { createNobleCentral } from '../../lib/ble/noble-central';
import type { BleConnection, DiscoveredDevice } from '../../lib/ble/central';
import { createSimRadio, HCI_REASON, type SimRadio } from '../../lib/sim/radio';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { sleep } from '../../lib/clock';
import { isOtaError } from '../../lib/errors';
import { TinyPeripheral, TINY_SERVICE, CHAR_SINK, CHAR_RW } from './tiny-peripheral';
import { createHciNoble } from '../../lib/sim/hci/noble-hci-loader';

const ADDRESS = 'aa:bb:cc:00:00:01';

async function setup() {
  const clock = new VirtualClock();
  const radio: SimRadio = createSimRadio({ clock, link: 'reference' });
  const device = new TinyPeripheral(ADDRESS);
  radio.addDevice(device);
  const central = createNobleCentral(createHciNoble(radio.controller), { clock });
  await central.waitReady(1000);
  const seen: DiscoveredDevice[] = [];
  const scan = await central.startScan({}, (d) => seen.push(d));
  await sleep(clock, 300);
  await scan.stop();
  assert.equal(seen.length, 1);
  const conn = await central.connect(ADDRESS);
  await conn.discover();
  return { clock, radio, device, central, conn };
}

const sinkWrites = (d: TinyPeripheral) => d.writes.filter((w) => w.characteristic === CHAR_SINK);
const payload = (i: number) => Buffer.alloc(244, i + 1);

async function writeMany(conn: BleConnection, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await conn.write(TINY_SERVICE, CHAR_SINK, payload(i), true);
}

describe('sim/faults', () => {
  it('drops the nth write without response (a lost packet), only that one', async () => {
    const { clock, radio, device, conn } = await setup();
    const handle = radio.injectFault(ADDRESS, { kind: 'dropWrite', nth: 3 });
    await writeMany(conn, 5);
    await sleep(clock, 100);
    assert.deepEqual(
      sinkWrites(device).map((w) => w.data[0]),
      [1, 2, 4, 5],
    );
    assert.equal(handle.fired, true);
    assert.deepEqual(radio.stats().faults, [{ address: ADDRESS, fault: { kind: 'dropWrite', nth: 3 } }]);
  });

  it('flips one bit of the nth write', async () => {
    const { clock, radio, device, conn } = await setup();
    radio.injectFault(ADDRESS, { kind: 'flipBit', nth: 2, byte: 10, bit: 7 });
    await writeMany(conn, 3);
    await sleep(clock, 100);
    const got = sinkWrites(device).map((w) => w.data);
    assert.deepEqual(got[0], payload(0));
    assert.deepEqual(got[2], payload(2));
    const expected = Buffer.from(payload(1));
    expected[10] ^= 0x80;
    assert.deepEqual(got[1], expected);
  });

  it('disconnects after N bytes: the link dies, both sides notice after the supervision timeout', async () => {
    const { clock, radio, device, conn } = await setup();
    radio.injectFault(ADDRESS, { kind: 'disconnectAfterBytes', bytes: 500 });
    const reason = new Promise<{ reason: string; at: number }>((resolve) => conn.once('disconnect', (r: string) => resolve({ reason: r, at: clock.now() })));
    await writeMany(conn, 4);
    const lostAt = clock.now();
    const gone = await reason;
    assert.equal(sinkWrites(device).length, 2, '2 x 244 B fit under 500 B; the third is lost with the link');
    assert.equal(gone.reason, String(HCI_REASON.connectionTimeout));
    // the writes were queued at lostAt; the third reaches the air within the next connection events
    assert.ok(gone.at - lostAt >= 420 && gone.at - lostAt <= 420 + 30, `noticed after ${gone.at - lostAt} ms`);
    assert.equal(device.disconnects, 1);
    assert.equal(radio.stats().devices[ADDRESS].gatt.valueBytesToPeripheral, 488);
  });

  it('a vanished device stops advertising and its link times out; it comes back after forMs', async () => {
    const { clock, radio, central, conn } = await setup();
    const gone = new Promise<string>((resolve) => conn.once('disconnect', (r: string) => resolve(r)));
    radio.injectFault(ADDRESS, { kind: 'vanish', forMs: 2000 });
    assert.equal(await gone, String(HCI_REASON.connectionTimeout));
    const seen: number[] = [];
    const scan = await central.startScan({ allowDuplicates: true }, (d) => seen.push(d.seenAt));
    await sleep(clock, 3000);
    await scan.stop();
    assert.ok(seen.length > 0 && seen.every((t) => t >= 2000), `heard only after it came back: ${seen.slice(0, 3)}`);
  });

  it('power loss goes to the device; the link times out without telling the device', async () => {
    const { radio, device, conn } = await setup();
    const gone = new Promise<string>((resolve) => conn.once('disconnect', (r: string) => resolve(r)));
    radio.injectFault(ADDRESS, { kind: 'powerLoss', offMs: 1500 });
    assert.deepEqual(device.powerLosses, [1500]);
    await gone;
    assert.equal(device.disconnects, 0);
  });

  it('writes with response count too, and faults are checked before anything happens', async () => {
    const { clock, radio, device, conn } = await setup();
    radio.injectFault(ADDRESS, { kind: 'flipBit', nth: 1, byte: 0, bit: 0 });
    await conn.write(TINY_SERVICE, CHAR_RW, Buffer.from([0x10]), false);
    await sleep(clock, 10);
    assert.deepEqual(device.value, Buffer.from([0x11]));
    const invalid = (e: unknown) => isOtaError(e) && e.code === 'FAULT_INVALID';
    assert.throws(() => radio.injectFault(ADDRESS, { kind: 'dropWrite', nth: 0 }), invalid);
    assert.throws(() => radio.injectFault(ADDRESS, { kind: 'flipBit', nth: 1, bit: 8 }), invalid);
    assert.throws(() => radio.injectFault(ADDRESS, { kind: 'explode' } as never), invalid);
    assert.throws(() => radio.injectFault('aa:aa:aa:aa:aa:aa', { kind: 'vanish' }), (e: unknown) => isOtaError(e) && e.code === 'DEVICE_NOT_FOUND');
  });
});
