/**
 * The gateway agent's parts on their own: the sightings table (limit, order, forgetting), the progress
 * throttle, the retained publisher across an outage, and the task check.
 */
import { strict as assert } from 'assert';
import type { DiscoveredDevice } from '../../lib/ble/central';
import { ProgressThrottle } from '../../lib/plant/gateway/progress-throttle';
import { RetainedPublisher } from '../../lib/plant/gateway/retained-publisher';
import { MAX_SIGHTINGS, SightingsTable } from '../../lib/plant/gateway/sightings';
import { schemaGatewayCodec } from '../../lib/plant/gateway/ports';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { MemoryBroker } from '../../lib/plant/memory-bus';
import { ObservedBus } from './support/observed-bus';

function seen(i: number, rssi: number, seenAt: number): DiscoveredDevice {
  const address = `a4:cf:12:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  return { id: address.replace(/:/g, ''), address, name: `dev-${i}`, rssi, advertisement: { serviceUuids: [] }, seenAt };
}

describe('plant/gateway parts', () => {
  it('sightings: at most 1000, strongest first, a stale entry forgotten, an older sighting never replaces a newer one', () => {
    const table = new SightingsTable(30000);
    for (let i = 0; i < 1200; i++) table.add(seen(i, -30 - (i % 70), 1000), 1000);
    const list = table.current(2000);
    assert.equal(list.length, MAX_SIGHTINGS);
    for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].rssi >= list[i].rssi);
    assert.equal(list[0].rssi, -30);
    assert.deepEqual(list[0], { address: list[0].address, name: list[0].name, rssi: -30, version: null, hashPrefix: null, protocol: 'unknown', otaState: null, sessionActive: false, lastSeen: 1000 });
    table.add(seen(5, -90, 500), 500);
    assert.equal(table.current(2000).find((s) => s.name === 'dev-5')?.rssi, -35, 'the older sighting is ignored');
    table.add(seen(5, -40, 40000), 40000);
    assert.deepEqual(table.current(40000).map((s) => s.name), ['dev-5'], 'the others were not seen for 30 s');
    assert.equal(table.size, 1);
  });

  it('progress throttle: one report per interval, the newest waiting one goes out when it has passed, none after stop', async () => {
    const clock = new VirtualClock();
    const sent: Array<[number, number]> = [];
    const throttle = new ProgressThrottle<number>(clock, 500, (v) => sent.push([clock.now(), v]));
    throttle.update(1);
    throttle.update(2);
    throttle.update(3);
    await clock.idle();
    assert.deepEqual(sent, [
      [0, 1],
      [500, 3],
    ]);
    throttle.update(4);
    throttle.stop();
    await clock.idle();
    assert.equal(sent.length, 2);
    assert.equal(clock.pendingTimers, 0);
  });

  it('retained publisher: while offline only the latest state of each topic waits, and goes out on flush', async () => {
    const clock = new VirtualClock();
    const broker = new MemoryBroker(clock);
    const bus = new ObservedBus(broker.connect('gw'));
    const publisher = new RetainedPublisher(bus, () => undefined);
    broker.cut('gw');
    publisher.publish('t/a', Buffer.from('1'));
    publisher.publish('t/a', Buffer.from('2'));
    publisher.publish('t/b', Buffer.from('x'));
    assert.equal(publisher.waiting, 2);
    assert.equal(broker.retained('t/a'), undefined);
    broker.reconnect('gw');
    publisher.flush();
    await clock.runUntil(publisher.settled());
    assert.equal(broker.retained('t/a')?.toString(), '2');
    assert.equal(broker.retained('t/b')?.toString(), 'x');
    assert.deepEqual(bus.published.map((p) => p.payload.toString()), ['2', 'x']);
  });

  it('task check (the plant schema): a valid install and cancel pass, anything else is PAYLOAD_INVALID / PAYLOAD_TOO_LARGE naming the field', () => {
    const parseTask = (payload: Buffer) => schemaGatewayCodec.decodeTask(payload);
    const install = {
      v: 1,
      type: 'install',
      taskId: 't-1',
      campaign: 'c1',
      device: { address: 'a4:cf:12:00:00:01', name: 'dev' },
      image: { sha256: 'ab'.repeat(32), size: 1000, version: '1.1.0', chip: 'esp32' },
      timeoutMs: 60000,
      options: { encoding: 'auto', confirm: true, maxAttempts: 3 },
    };
    const parsed = parseTask(Buffer.from(JSON.stringify(install)));
    assert.equal(parsed.type, 'install');
    assert.equal(parsed.type === 'install' && parsed.device.address, 'a4:cf:12:00:00:01');
    assert.equal(parseTask(Buffer.from(JSON.stringify({ v: 1, type: 'cancel', taskId: 't-1', campaign: 'c1', reason: 'r' }))).type, 'cancel');
    const bad = (m: unknown, field: RegExp, code = 'PAYLOAD_INVALID') =>
      assert.throws(
        () => parseTask(Buffer.isBuffer(m) ? m : Buffer.from(JSON.stringify(m))),
        (e: { code?: string; message?: string }) => e.code === code && field.test(e.message ?? ''),
      );
    // The wire spells addresses in lower case (docs/FLEET.md); another spelling is refused, not guessed.
    bad({ ...install, device: { ...install.device, address: 'A4:CF:12:00:00:01' } }, /device\.address/);
    bad({ ...install, timeoutMs: 5 }, /timeoutMs/);
    bad({ ...install, image: { ...install.image, size: -1 } }, /image\.size/);
    bad({ ...install, image: { ...install.image, manifest: 'not base64!' } }, /image\.manifest/);
    bad({ ...install, campaign: 'a/b' }, /campaign/);
    bad({ ...install, options: { ...install.options, maxAttempts: 0 } }, /maxAttempts/);
    bad({ ...install, v: 2 }, /\$\.v/);
    bad({ ...install, type: 'erase' }, /type/);
    bad([install], /object/);
    bad(Buffer.from('{not json'), /not JSON/);
    bad(Buffer.alloc(256 * 1024 + 1, 0x20), /bytes/, 'PAYLOAD_TOO_LARGE');
  });
});
