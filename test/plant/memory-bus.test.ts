import { strict as assert } from 'assert';
import { realClock } from '../../lib/clock';
import { OtaError } from '../../lib/errors';
import type { BusMessage, PlantBus } from '../../lib/plant/bus';
import { MemoryBroker } from '../../lib/plant/memory-bus';
import { checkTopicFilter, topicMatches } from '../../lib/plant/topic-filter';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { codeOf } from '../helpers/errors';

interface Received {
  topic: string;
  text: string;
  retain: boolean;
  at: number;
}

function collect(clock: VirtualClock, into: Received[]): (m: BusMessage) => void {
  return (m) => into.push({ topic: m.topic, text: m.payload.toString(), retain: m.retain, at: clock.now() });
}

describe('MQTT topic filters', () => {
  it('match as MQTT 3.1.1 §4.7 says', () => {
    const cases: Array<[string, string, boolean]> = [
      ['a/b', 'a/b', true],
      ['a/b', 'a/b/c', false],
      ['a/+', 'a/b', true],
      ['a/+', 'a/b/c', false],
      ['a/+', 'a/', true],
      ['a/+/c', 'a/x/c', true],
      ['+/+', '/x', true],
      ['a/#', 'a', true],
      ['a/#', 'a/b/c', true],
      ['a/#', 'ab', false],
      ['#', 'a/b', true],
      ['#', '$SYS/x', false],
      ['+/x', '$SYS/x', false],
      ['$SYS/#', '$SYS/x', true],
      ['ble-ota/plant/v1/gateways/+/presence', 'ble-ota/plant/v1/gateways/gw-a/presence', true],
      ['ble-ota/plant/v1/gateways/+/presence', 'ble-ota/plant/v1/gateways/gw-a/sightings', false],
    ];
    for (const [filter, topic, expected] of cases) assert.equal(topicMatches(filter, topic), expected, `${filter} vs ${topic}`);
  });

  it('refuses filters a broker refuses', () => {
    for (const bad of ['', 'a/#/b', 'a/b#', 'a+/b', 'a/\u0000']) assert.throws(() => checkTopicFilter(bad), (e: OtaError) => e.code === 'PLANT_BAD_ID', bad);
    for (const good of ['#', '+', 'a/+/b/#', '/']) assert.equal(checkTopicFilter(good), good);
  });
});

describe('MemoryBroker', () => {
  let clock: VirtualClock;
  let broker: MemoryBroker;

  beforeEach(() => {
    clock = new VirtualClock({ startMs: 1000 });
    broker = new MemoryBroker(clock);
  });

  it('delivers latencyMs after the publish, and acknowledges QoS 1 after the same delay', async () => {
    const got: Received[] = [];
    const a = broker.connect('a');
    const b = broker.connect('b');
    await clock.runUntil(b.subscribe('t/1', collect(clock, got)));
    const t0 = clock.now();
    await clock.runUntil(a.publish('t/1', 'hello'));
    assert.equal(clock.now(), t0 + 2);
    await clock.idle();
    assert.deepEqual(got, [{ topic: 't/1', text: 'hello', retain: false, at: t0 + 2 }]);

    const slow = new MemoryBroker(clock, { latencyMs: 25 });
    const later: Received[] = [];
    await clock.runUntil(slow.connect('s').subscribe('#', collect(clock, later)));
    const t1 = clock.now();
    void slow.connect('p').publish('x', '1', { qos: 0 });
    await clock.idle();
    assert.deepEqual(later, [{ topic: 'x', text: '1', retain: false, at: t1 + 25 }]);
  });

  it('keeps one retained message per topic, sends it first on subscribe, and clears it with an empty retained payload', async () => {
    const a = broker.connect('a');
    await clock.runUntil(a.publish('gw/a/presence', 'one', { retain: true }));
    await clock.runUntil(a.publish('gw/a/presence', 'two', { retain: true }));
    await clock.runUntil(a.publish('gw/b/presence', 'b', { retain: true }));
    await clock.runUntil(a.publish('gw/c/presence', 'not kept'));
    assert.equal(broker.retained('gw/a/presence')?.toString(), 'two');
    assert.equal(broker.retained('gw/c/presence'), undefined);

    const got: Received[] = [];
    const b = broker.connect('b');
    await clock.runUntil(b.subscribe('gw/+/presence', collect(clock, got)));
    assert.deepEqual(
      got.map((r) => [r.topic, r.text, r.retain]),
      [
        ['gw/a/presence', 'two', true],
        ['gw/b/presence', 'b', true],
      ],
      'the retained ones, delivered before subscribe resolves',
    );

    await clock.runUntil(a.publish('gw/a/presence', '', { retain: true }));
    await clock.idle();
    assert.equal(broker.retained('gw/a/presence'), undefined);
    assert.deepEqual(got[2], { topic: 'gw/a/presence', text: '', retain: false, at: clock.now() }, 'the clearing message is delivered live');
    const late: Received[] = [];
    await clock.runUntil(broker.connect('c').subscribe('gw/#', collect(clock, late)));
    assert.deepEqual(
      late.map((r) => r.topic),
      ['gw/b/presence'],
    );
  });

  it('an outage (cut, reconnect): offline without a will, publishes refused and messages lost meanwhile, then subscriptions restored with their retained messages and "connect"', async () => {
    const watcher = broker.connect('watcher');
    const wills: Received[] = [];
    await clock.runUntil(watcher.subscribe('will/+', collect(clock, wills)));
    const gw = broker.connect('gw', { topic: 'will/gw', payload: 'offline', retain: true });
    const got: Received[] = [];
    await clock.runUntil(gw.subscribe('state/#', collect(clock, got)));
    const events: string[] = [];
    gw.on('offline', () => events.push('offline'));
    gw.on('connect', () => events.push('connect'));
    await clock.runUntil(watcher.publish('state/a', 'one', { retain: true }));
    await clock.idle();
    broker.cut('gw');
    assert.equal(gw.connected, false);
    assert.deepEqual(broker.connectedClients().sort(), ['gw', 'watcher'], 'the broker has not given up on it');
    assert.equal(await codeOf(gw.publish('x', 'y')), 'BROKER_UNAVAILABLE');
    assert.equal(await codeOf(gw.subscribe('other', () => undefined)), 'BROKER_UNAVAILABLE');
    await clock.runUntil(watcher.publish('state/a', 'two', { retain: true }));
    await clock.runUntil(watcher.publish('state/b', 'lost'));
    await clock.idle();
    assert.deepEqual(got.map((r) => r.text), ['one'], 'nothing reaches a cut connection');
    assert.equal(wills.length, 0, 'no will for an outage');
    broker.reconnect('gw');
    await clock.idle();
    assert.deepEqual(events, ['offline', 'connect']);
    assert.equal(gw.connected, true);
    assert.deepEqual(got.map((r) => [r.text, r.retain]), [['one', false], ['two', true]], 'the retained state again on resubscription; the lost message stays lost');
    await clock.runUntil(watcher.publish('state/c', 'three'));
    await clock.idle();
    assert.equal(got.at(-1)?.text, 'three', 'delivered again after the reconnect');
    broker.reconnect('gw');
    broker.reconnect('nobody');
    await clock.idle();
    assert.deepEqual(events, ['offline', 'connect'], 'reconnecting a connection that is up does nothing');
    broker.cut('gw');
    broker.kill('gw');
    await clock.idle();
    assert.deepEqual(wills.map((r) => r.text), ['offline'], 'the will fires when the broker gives up during an outage');
    assert.deepEqual(events, ['offline', 'connect', 'offline'], "'offline' once per loss");
  });

  it('publishes the will when the broker loses a client (kill), never on a graceful close', async () => {
    const watcher = broker.connect('watcher');
    const got: Received[] = [];
    await clock.runUntil(watcher.subscribe('will/+', collect(clock, got)));
    const polite = broker.connect('polite', { topic: 'will/polite', payload: 'offline', retain: true });
    const rude = broker.connect('rude', { topic: 'will/rude', payload: Buffer.from('offline'), retain: true });
    let offline = 0;
    rude.on('offline', () => offline++);
    await clock.runUntil(polite.close());
    broker.kill('rude');
    await clock.idle();
    assert.deepEqual(
      got.map((r) => [r.topic, r.text]),
      [['will/rude', 'offline']],
    );
    assert.equal(broker.retained('will/rude')?.toString(), 'offline', 'a retained will is kept');
    assert.equal(broker.retained('will/polite'), undefined);
    assert.equal(offline, 1);
    assert.equal(rude.connected, false);
    assert.equal(polite.connected, false);
    assert.equal(await codeOf(rude.publish('x', 'y')), 'BROKER_UNAVAILABLE');
    assert.equal(await codeOf(polite.publish('x', 'y')), 'BROKER_UNAVAILABLE');
    assert.deepEqual(broker.connectedClients(), ['watcher']);
    broker.kill('rude');
    broker.kill('nobody');
    await clock.idle();
    assert.equal(got.length, 1, 'a will fires once');
  });

  it('takes a session over when a client id connects again: the old connection drops and its will fires', async () => {
    const got: Received[] = [];
    await clock.runUntil(broker.connect('w').subscribe('#', collect(clock, got)));
    const first = broker.connect('gw-a', { topic: 'p/gw-a', payload: 'offline', retain: true });
    const second = broker.connect('gw-a');
    await clock.idle();
    assert.equal(first.connected, false);
    assert.equal(second.connected, true);
    assert.deepEqual(
      got.map((r) => r.text),
      ['offline'],
    );
  });

  it('keeps each publisher order for every subscriber, across topics and wildcard filters', async () => {
    const got: Received[] = [];
    const sub = broker.connect('sub');
    await clock.runUntil(sub.subscribe('o/#', collect(clock, got)));
    const a = broker.connect('a');
    const b = broker.connect('b');
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(a.publish(`o/a/${i % 3}`, `a${i}`, { qos: i % 2 === 0 ? 1 : 0 }));
      sent.push(b.publish(`o/b/${i % 5}/x`, `b${i}`));
    }
    await clock.runUntil(Promise.all(sent));
    await clock.idle();
    const fromA = got.filter((r) => r.text.startsWith('a')).map((r) => r.text);
    const fromB = got.filter((r) => r.text.startsWith('b')).map((r) => r.text);
    assert.deepEqual(
      fromA,
      Array.from({ length: 50 }, (_, i) => `a${i}`),
    );
    assert.deepEqual(
      fromB,
      Array.from({ length: 50 }, (_, i) => `b${i}`),
    );
  });

  it('dispatches to every handler whose filter matches, once each, and stops after unsubscribe', async () => {
    const c = broker.connect('c');
    const exact: Received[] = [];
    const plus: Received[] = [];
    const hash: Received[] = [];
    await clock.runUntil(c.subscribe('x/1/y', collect(clock, exact)));
    const unsubscribePlus = await clock.runUntil(c.subscribe('x/+/y', collect(clock, plus)));
    await clock.runUntil(c.subscribe('x/#', collect(clock, hash)));
    const p = broker.connect('p');
    await clock.runUntil(p.publish('x/1/y', 'm1'));
    await clock.runUntil(p.publish('x/2/y', 'm2'));
    await clock.runUntil(p.publish('x', 'm3'));
    await clock.runUntil(p.publish('z', 'nobody'));
    await clock.runUntil(unsubscribePlus());
    await clock.runUntil(p.publish('x/3/y', 'm4'));
    await clock.idle();
    assert.deepEqual(
      exact.map((r) => r.text),
      ['m1'],
    );
    assert.deepEqual(
      plus.map((r) => r.text),
      ['m1', 'm2'],
    );
    assert.deepEqual(
      hash.map((r) => r.text),
      ['m1', 'm2', 'm3', 'm4'],
    );
  });

  it('survives a handler that throws: reports it as an error event and delivers on', async () => {
    const c = broker.connect('c');
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const got: string[] = [];
    await clock.runUntil(
      c.subscribe('t', () => {
        throw new Error('handler bug');
      }),
    );
    await clock.runUntil(c.subscribe('t', (m) => got.push(m.payload.toString())));
    await clock.runUntil(c.publish('t', '1'));
    await clock.runUntil(c.publish('t', '2'));
    await clock.idle();
    assert.deepEqual(got, ['1', '2']);
    assert.equal(errors.length, 2);
    assert.ok(errors[0] instanceof OtaError);
    assert.match(errors[0].message, /a handler of t threw on t: handler bug/);

    // Without an error listener a throwing handler is still contained.
    const quiet = broker.connect('quiet');
    await clock.runUntil(
      quiet.subscribe('q', () => {
        throw new Error('x');
      }),
    );
    await clock.runUntil(quiet.publish('q', '1'));
    await clock.idle();
    assert.equal(quiet.connected, true);
  });

  it('refuses to publish to wildcard topics and to subscribe to bad filters', async () => {
    const c: PlantBus = broker.connect('c');
    assert.equal(await codeOf(c.publish('a/+', 'x')), 'PLANT_BAD_ID');
    assert.equal(await codeOf(c.publish('', 'x')), 'PLANT_BAD_ID');
    assert.equal(await codeOf(c.subscribe('a/#/b', () => undefined)), 'PLANT_BAD_ID');
    assert.throws(() => broker.connect(''), (e: OtaError) => e.code === 'PLANT_BAD_ID');
    assert.throws(() => new MemoryBroker(clock, { latencyMs: -1 }), (e: OtaError) => e.code === 'PLANT_BAD_ID');
  });

  it('runs on the real clock too, in order', async () => {
    const real = new MemoryBroker(realClock, { latencyMs: 1 });
    const got: string[] = [];
    const sub = real.connect('sub');
    await sub.subscribe('t/#', (m) => got.push(m.payload.toString()));
    const pub = real.connect('pub');
    await Promise.all(Array.from({ length: 20 }, (_, i) => pub.publish(`t/${i % 4}`, String(i))));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      got,
      Array.from({ length: 20 }, (_, i) => String(i)),
    );
  });

  it('does not deliver to a killed client what was in flight to it', async () => {
    const got: Received[] = [];
    const victim = broker.connect('victim');
    await clock.runUntil(victim.subscribe('t', collect(clock, got)));
    void broker.connect('p').publish('t', 'in flight', { qos: 0 });
    broker.kill('victim');
    await clock.idle();
    assert.deepEqual(got, []);
  });
});
