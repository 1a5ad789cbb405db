/**
 * The radio's per-central range and own air (what the plant simulator gives each gateway): a central
 * hears a device at its own RSSI or not at all (no advertising reports, a connect attempt never gets a
 * CONNECT_IND out), a link to a device that leaves the range is lost, and centrals with their own air
 * run their connection events independently (two bulk transfers take the time of one, and their
 * overlapping exchanges lose a few PDUs to co-channel collisions), while centrals sharing the air
 * take turns and lose nothing.
 */
import { strict as assert } from 'assert';
import type { BleCentral, DiscoveredDevice } from '../../lib/ble/central';
import { createNobleCentral } from '../../lib/ble/noble-central';
import { sleep } from '../../lib/clock';
import { createSimRadio, type SimRadio } from '../../lib/sim/radio';
import { createHciNoble } from '../../lib/sim/hci/noble-hci-loader';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { CHAR_SINK, TINY_SERVICE, TinyPeripheral } from './tiny-peripheral';

async function scanAll(central: BleCentral, clock: VirtualClock, ms = 1000): Promise<Map<string, DiscoveredDevice>> {
  const seen = new Map<string, DiscoveredDevice>();
  const scan = await central.startScan({}, (d) => seen.set(d.name, d));
  await sleep(clock, ms);
  await scan.stop();
  return seen;
}

describe('sim/radio: per-central range and own air', () => {
  let clock: VirtualClock;
  let radio: SimRadio;
  const centrals: BleCentral[] = [];

  beforeEach(() => {
    clock = new VirtualClock();
    radio = createSimRadio({ clock, link: 'reference' });
  });

  afterEach(async () => {
    for (const c of centrals.splice(0)) await c.close();
    radio.close();
    clock.stop();
  });

  async function central(options: Parameters<SimRadio['addCentral']>[0]): Promise<BleCentral> {
    const c = createNobleCentral(createHciNoble(radio.addCentral(options)), { clock });
    centrals.push(c);
    await c.waitReady(2000);
    return c;
  }

  it('a central hears only the devices in its range, at its own RSSI; out of range no connection is ever made', async () => {
    const near = new TinyPeripheral('aa:bb:cc:00:00:01', 'near');
    const far = new TinyPeripheral('aa:bb:cc:00:00:02', 'far');
    radio.addDevice(near);
    radio.addDevice(far);
    const range = new Map<string, number>([[near.address, -42]]);
    const gw = await central({ hears: (address) => range.get(address) ?? null, ownAir: true });
    const seen = await scanAll(gw, clock);
    assert.deepEqual([...seen.keys()], ['near']);
    assert.equal(seen.get('near')?.rssi, -42);

    // An initiator for the far device waits: it never hears it advertise, so no CONNECT_IND goes out.
    const controller = radio.controllerOf(centrals.length);
    radio.initiate(controller, far.address);
    await sleep(clock, 5000);
    assert.equal(radio.stats().devices[far.address].connections, 0);
    assert.equal(far.connects.length, 0);
    assert.equal(radio.cancelInitiate(controller), true, 'the attempt was still pending');

    // In range now: seen at the new RSSI.
    range.set(far.address, -70);
    radio.rangeChanged();
    const again = await scanAll(gw, clock);
    assert.equal(again.get('far')?.rssi, -70);
  });

  it('a link to a device that leaves the range is lost (both sides notice by the supervision timeout)', async () => {
    const device = new TinyPeripheral();
    radio.addDevice(device);
    const range = new Map<string, number>([[device.address, -50]]);
    const gw = await central({ hears: (address) => range.get(address) ?? null, ownAir: true });
    const found = (await scanAll(gw, clock)).get('tiny-1');
    assert.ok(found);
    const conn = await gw.connect(found.id);
    let disconnectedAt = -1;
    conn.on('disconnect', () => (disconnectedAt = clock.now()));
    const leftAt = clock.now();
    range.delete(device.address);
    radio.rangeChanged();
    await sleep(clock, 1000);
    assert.ok(disconnectedAt >= leftAt + radio.profile.supervisionTimeoutMs - 1, `disconnect after the supervision timeout (${disconnectedAt - leftAt} ms)`);
    assert.equal(device.disconnects, 1);
  });

  /** n centrals, each with one device in its range, each writing the same bulk data to it at once. */
  async function transfers(n: number, ownAir: boolean, writes = 300, size = 200): Promise<{ ms: number; lost: number }> {
    const devices: TinyPeripheral[] = [];
    for (let i = 0; i < n; i++) {
      const d = new TinyPeripheral(`aa:bb:cc:00:00:${(0x11 + i).toString(16)}`, `dev-${i}`);
      radio.addDevice(d);
      devices.push(d);
    }
    const links = [];
    for (const d of devices) {
      const g = await central({ ownAir, hears: (address) => (address === d.address ? -50 : null) });
      const link = await g.connect((await scanAll(g, clock)).get(d.name)!.id);
      await link.discover();
      links.push(link);
    }
    await sleep(clock, 200);
    const start = clock.now();
    const value = Buffer.alloc(size, 0x33);
    for (let i = 0; i < writes; i++) for (const link of links) void link.write(TINY_SERVICE, CHAR_SINK, value, true);
    while (devices.some((d) => d.writes.length < writes)) await sleep(clock, 5);
    const totals = radio.stats().totals;
    return { ms: clock.now() - start, lost: totals.toPeripheral.lost + totals.toCentral.lost };
  }

  async function freshRadio(): Promise<void> {
    for (const c of centrals.splice(0)) await c.close();
    radio.close();
    clock.stop();
    clock = new VirtualClock();
    radio = createSimRadio({ clock, link: 'reference' });
  }

  it('centrals with their own air transfer at once (co-channel losses on overlap); sharing one air they take turns, lossless', async () => {
    const own = await transfers(2, true, 1000, 240);
    await freshRadio();
    const shared = await transfers(2, false, 1000, 240);
    assert.equal(shared.lost, 0, 'one air: no collisions');
    assert.ok(own.lost > 0, 'own airs: overlapping exchanges collide now and then');
    assert.ok(own.lost < 200, `a few losses only (${own.lost})`);
    assert.ok(own.ms < shared.ms * 0.75, `own airs ${own.ms.toFixed(0)} ms vs shared ${shared.ms.toFixed(0)} ms`);
  });

  it('four gateways on their own airs move at least 3.5 x the bytes per second of one', async () => {
    const one = await transfers(1, true, 1000, 240);
    await freshRadio();
    const four = await transfers(4, true, 1000, 240);
    const speedup = (4 * one.ms) / four.ms;
    assert.ok(speedup >= 3.5, `4 gateways: ${speedup.toFixed(2)} x one (${one.ms.toFixed(0)} ms vs ${four.ms.toFixed(0)} ms for 4 x the data)`);
    assert.ok(four.lost > 0, 'their overlapping exchanges collide now and then');
  });
});
