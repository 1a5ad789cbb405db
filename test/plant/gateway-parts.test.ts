/**
 * The gateway agent's parts on their own: the sightings table (limit, order, forgetting), the progress
 * throttle, the retained publisher across an outage, and the task check.
 */
import { strict as assert } from 'assert';
import type { DiscoveredDevice } from '../../lib/ble/central';
import { parseTask } from '../../lib/plant/gateway/task-check';
import { ProgressThrottle } from '../../lib/plant/gateway/progress-throttle';
import { RetainedPublisher } from '../../lib/plant/gateway/retained-publisher';
import { MAX_SIGHTINGS, SightingsTable } from '../../lib/plant/gateway/sightings';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { TestBroker } from './support/test-bus';

function seen(i: number, rssi: number, seenAt: number): DiscoveredDevice {
  const address = `a4:cf:12:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  return { id: address.replace(/:/g, ''), address, name: `dev-${i}`, rssi, advertisement: { serviceUuids: [] }, seenAt };
}

describe('plant/gateway parts', () => {
  it('sightings: at most 1000, strongest first, a stale entry forgotten, an older sighting never replaces a newer one', () => {
    const table = new SightingsTable(30000);
    for (let i = 0; i < 1200; i++) table.add(seen(i, -30 - (i % 70), 1000));
    const list = table.current(2000);
    assert.equal(list.length, MAX_SIGHTINGS);
    for (let i = 1; i < list.length; i++) assert.ok(list[i - 1].rssi >= list[i].rssi);
    assert.equal(list[0].rssi, -30);
    assert.deepEqual(list[0], { address: list[0].address, name: list[0].name, rssi: -30, version: null, hashPrefix: null, protocol: 'unknown', otaState: null, sessionActive: false, lastSeen: 1000 });
    table.add(seen(5, -90, 500));
    assert.equal(table.current(2000).find((s) => s.name === 'dev-5')?.rssi, -35, 'the older sighting is ignored');
    table.add(seen(5, -40, 40000));
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
    const broker = new TestBroker();
    const bus = broker.connect('gw');
    const publisher = new RetainedPublisher(bus, () => undefined);
    broker.setOffline(bus);
    publisher.publish('t/a', Buffer.from('1'));
    publisher.publish('t/a', Buffer.from('2'));
    publisher.publish('t/b', Buffer.from('x'));
    assert.equal(publisher.waiting, 2);
    assert.equal(broker.retained('t/a'), undefined);
    broker.setOnline(bus);
    publisher.flush();
    await publisher.settled();
    assert.equal(broker.retained('t/a')?.toString(), '2');
    assert.equal(broker.retained('t/b')?.toString(), 'x');
    assert.deepEqual(bus.published.map((p) => p.payload.toString()), ['2', 'x']);
  });

  it('task check: a valid install and cancel pass (address in lower case), anything else is PAYLOAD_INVALID naming the field', () => {
    const install = {
      v: 1,
      type: 'install',
      taskId: 't-1',
      campaign: 'c1',
      device: { address: 'A4:CF:12:00:00:01', name: 'dev' },
      image: { sha256: 'ab'.repeat(32), size: 1000, version: '1.1.0', chip: 'esp32' },
      timeoutMs: 60000,
      options: { encoding: 'auto', confirm: true, maxAttempts: 3 },
    };
    const parsed = parseTask(Buffer.from(JSON.stringify(install)));
    assert.equal(parsed.type, 'install');
    assert.equal(parsed.type === 'install' && parsed.device.address, 'a4:cf:12:00:00:01');
    assert.equal(parseTask(Buffer.from(JSON.stringify({ v: 1, type: 'cancel', taskId: 't-1', campaign: 'c1', reason: 'r' }))).type, 'cancel');
    const bad = (m: unknown, field: RegExp) =>
      assert.throws(
        () => parseTask(Buffer.from(JSON.stringify(m))),
        (e: { code?: string; message?: string }) => e.code === 'PAYLOAD_INVALID' && field.test(e.message ?? ''),
      );
    bad({ ...install, timeoutMs: 5 }, /timeoutMs/);
    bad({ ...install, image: { ...install.image, size: -1 } }, /image\.size/);
    bad({ ...install, image: { ...install.image, manifest: 'not base64!' } }, /image\.manifest/);
    bad({ ...install, campaign: 'a/b' }, /campaign/);
    bad({ ...install, options: { ...install.options, maxAttempts: 0 } }, /maxAttempts/);
    bad([install], /object/);
  });
});
