import { strict as assert } from 'assert';
import { OtaError } from '../../lib/errors';
import type { BusMessage, PlantBus } from '../../lib/plant/bus';
import { connectMqttBus, type MqttBusOptions } from '../../lib/plant/mqtt-bus';
import { codeOf } from '../helpers/errors';
import { closedPort, startAedes, type TestBroker } from './aedes-broker';

/** Resolves once check() is true; fails after ms with what. */
async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function once(bus: PlantBus, event: 'connect' | 'offline'): Promise<void> {
  return new Promise((resolve) => {
    const listener = () => {
      bus.off(event, listener);
      resolve();
    };
    bus.on(event, listener);
  });
}

describe('connectMqttBus (mqtt.js against an in-process aedes broker)', function () {
  this.timeout(20000);
  let broker: TestBroker;
  const buses: PlantBus[] = [];

  async function connect(clientId: string, extra: Partial<MqttBusOptions> = {}): Promise<PlantBus> {
    const bus = await connectMqttBus({ url: broker.url, clientId, keepaliveS: 5, ...extra });
    buses.push(bus);
    return bus;
  }

  beforeEach(async () => {
    broker = await startAedes();
  });

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
    await broker.close();
  });

  it('connects, publishes and delivers; retained messages come first on subscribe, marked retained', async () => {
    const a = await connect('a');
    const b = await connect('b');
    assert.equal(a.connected, true);
    assert.equal(a.clientId, 'a');
    await a.publish('plant/v1/gateways/gw-a/presence', 'online', { retain: true });
    const got: BusMessage[] = [];
    await b.subscribe('plant/v1/gateways/+/presence', (m) => got.push(m));
    await eventually(() => got.length === 1, 'the retained presence');
    assert.equal(got[0].retain, true);
    assert.equal(got[0].payload.toString(), 'online');
    await a.publish('plant/v1/gateways/gw-a/presence', Buffer.from('busy'));
    await eventually(() => got.length === 2, 'the live message');
    assert.deepEqual([got[1].topic, got[1].payload.toString(), got[1].retain], ['plant/v1/gateways/gw-a/presence', 'busy', false]);

    // An empty retained payload clears it: a new subscriber gets nothing.
    await a.publish('plant/v1/gateways/gw-a/presence', '', { retain: true });
    const late: BusMessage[] = [];
    const c = await connect('c');
    await c.subscribe('plant/v1/#', (m) => late.push(m));
    await c.publish('plant/v1/marker', 'm');
    await eventually(() => late.some((m) => m.topic === 'plant/v1/marker'), 'the marker');
    assert.deepEqual(
      late.map((m) => m.topic),
      ['plant/v1/marker'],
    );
  });

  it('dispatches by filter: overlapping subscriptions each get their messages; unsubscribe stops one', async () => {
    const bus = await connect('d');
    const plus: string[] = [];
    const hash: string[] = [];
    const unsubscribePlus = await bus.subscribe('x/+/y', (m) => plus.push(m.payload.toString()));
    await bus.subscribe('x/#', (m) => hash.push(m.payload.toString()));
    await bus.publish('x/1/y', '1');
    await bus.publish('x/2', '2');
    await eventually(() => hash.length === 2, 'both messages');
    await unsubscribePlus();
    await bus.publish('x/3/y', '3');
    await eventually(() => hash.length === 3, 'the third');
    assert.deepEqual(plus, ['1']);
    assert.deepEqual(hash, ['1', '2', '3']);
  });

  it('the broker publishes the will when the connection is lost, not after close(); the bus reconnects', async () => {
    const watcher = await connect('watcher');
    const wills: string[] = [];
    await watcher.subscribe('will/+', (m) => wills.push(`${m.topic}=${m.payload.toString()}`));
    const gw = await connect('gw-a', { will: { topic: 'will/gw-a', payload: 'offline', retain: true } });
    const polite = await connect('polite', { will: { topic: 'will/polite', payload: 'offline', retain: false } });

    const offline = once(gw, 'offline');
    const back = once(gw, 'connect');
    broker.cut('gw-a');
    await offline;
    assert.equal(gw.connected, false);
    await eventually(() => wills.includes('will/gw-a=offline'), 'the will of the cut client');
    await back;
    assert.equal(gw.connected, true, 'reconnected by itself');

    const gone = new Promise<void>((resolve) => broker.aedes.on('clientDisconnect', (c) => c.id === 'polite' && resolve()));
    await polite.close();
    await gone;
    await watcher.publish('will/marker', 'm');
    await eventually(() => wills.includes('will/marker=m'), 'the marker');
    assert.deepEqual(wills, ['will/gw-a=offline', 'will/marker=m']);
    assert.equal(await codeOf(polite.publish('x', 'y')), 'BROKER_UNAVAILABLE');
  });

  it('reconnects after the broker restarts and restores every subscription', async () => {
    const port = broker.port;
    const bus = await connect('sub');
    const got: string[] = [];
    await bus.subscribe('r/+', (m) => got.push(m.payload.toString()));
    await bus.subscribe('s/#', (m) => got.push(m.payload.toString()));
    const events: string[] = [];
    bus.on('offline', () => events.push('offline'));
    bus.on('connect', () => events.push('connect'));
    const back = once(bus, 'connect');
    await broker.close();
    await eventually(() => events.includes('offline'), 'offline');
    broker = await startAedes(port);
    await back;
    // 'connect' comes once the subscriptions are back: a message published now arrives.
    const pub = await connect('pub');
    await pub.publish('r/1', 'r');
    await pub.publish('s/1/2', 's');
    await eventually(() => got.includes('r') && got.includes('s'), 'messages on both restored subscriptions');
    assert.deepEqual(events, ['offline', 'connect']);
    assert.deepEqual(got, ['r', 's']);
  });

  it('queues publishes while the broker is away up to maxQueuedPublishes, sends them on reconnect, and closes while away (refusing what is still queued)', async () => {
    const port = broker.port;
    const bus = await connect('q', { maxQueuedPublishes: 2 });
    const errors: Error[] = [];
    bus.on('error', (e) => errors.push(e));
    const offline = once(bus, 'offline');
    await broker.close();
    await offline;
    const queued = [bus.publish('q/1', '1', { retain: true }), bus.publish('q/2', '2', { retain: true })];
    assert.equal(await codeOf(bus.publish('q/3', '3')), 'BROKER_UNAVAILABLE');
    broker = await startAedes(port);
    await Promise.all(queued);
    const watcher = await connect('w');
    const got: string[] = [];
    await watcher.subscribe('q/+', (m) => got.push(m.payload.toString()));
    await eventually(() => got.length === 2, 'the two queued messages, retained');
    assert.ok(errors.length <= 1, `one error report per outage, got ${errors.length}`);

    const offlineAgain = once(bus, 'offline');
    await broker.close();
    await offlineAgain;
    const stranded = bus.publish('q/4', '4');
    const strandedSubscription = bus.subscribe('q/#', () => undefined);
    await bus.close();
    assert.equal(await codeOf(stranded), 'BROKER_UNAVAILABLE', 'a message the broker never took is refused on close');
    assert.equal(await codeOf(strandedSubscription), 'BROKER_UNAVAILABLE', 'so is a subscription');
    assert.equal(bus.connected, false);
    broker = await startAedes(port);
  });

  it('rejects BROKER_UNAVAILABLE within connectTimeoutMs when nothing listens, naming the URL and the cause', async () => {
    const port = await closedPort();
    const started = Date.now();
    const url = `mqtt://127.0.0.1:${port}`;
    const err = await connectMqttBus({ url, clientId: 'lonely', connectTimeoutMs: 1500 }).then(
      () => assert.fail('connected to a closed port'),
      (e: unknown) => e as OtaError,
    );
    const took = Date.now() - started;
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'BROKER_UNAVAILABLE');
    assert.ok(err.message.includes(url), err.message);
    assert.match(err.message, /ECONNREFUSED|within 1500 ms/);
    assert.ok(took >= 1400 && took < 5000, `rejected after ${took} ms`);
  });

  it('rejects at once when the broker refuses the credentials, without the password in the message', async () => {
    await broker.close();
    broker = await startAedes(0, {
      authenticate: (_client, username, password, done) => done(null, username === 'gw' && password?.toString() === 'right'),
    });
    const started = Date.now();
    const err = await connectMqttBus({ url: broker.url.replace('mqtt://', 'mqtt://gw:wrong@'), clientId: 'x', username: 'gw', password: 'wrong', connectTimeoutMs: 8000 }).then(
      () => assert.fail('connected with a wrong password'),
      (e: unknown) => e as OtaError,
    );
    assert.equal(err.code, 'BROKER_UNAVAILABLE');
    assert.match(err.message, /refused/i);
    assert.ok(!err.message.includes('wrong'), err.message);
    assert.ok(Date.now() - started < 4000, 'not after the whole timeout');
    const ok = await connect('y', { username: 'gw', password: 'right' });
    assert.equal(ok.connected, true);
  });

  it('drops a payload above maxPayloadBytes with a PAYLOAD_TOO_LARGE error event, delivers the rest', async () => {
    const small = await connect('small', { maxPayloadBytes: 1024 });
    const errors: Error[] = [];
    small.on('error', (e) => errors.push(e));
    const got: number[] = [];
    await small.subscribe('big/#', (m) => got.push(m.payload.length));
    const pub = await connect('pub');
    await pub.publish('big/1', Buffer.alloc(5000));
    await pub.publish('big/2', Buffer.alloc(1024));
    await eventually(() => got.length === 1 && errors.length === 1, 'one delivered, one dropped');
    assert.deepEqual(got, [1024]);
    assert.equal((errors[0] as OtaError).code, 'PAYLOAD_TOO_LARGE');
    assert.match(errors[0].message, /5000 bytes on big\/1/);
  });

  it('survives a handler that throws (error event) and refuses wildcard publishes', async () => {
    const bus = await connect('h');
    const errors: Error[] = [];
    bus.on('error', (e) => errors.push(e));
    const got: string[] = [];
    await bus.subscribe('h', () => {
      throw new Error('handler bug');
    });
    await bus.subscribe('h', (m) => got.push(m.payload.toString()));
    await bus.publish('h', '1');
    await bus.publish('h', '2');
    await eventually(() => got.length === 2, 'both');
    assert.ok(errors.length >= 2);
    assert.match(errors[0].message, /handler bug/);
    assert.equal(bus.connected, true);
    assert.equal(await codeOf(bus.publish('a/#', 'x')), 'PLANT_BAD_ID');
  });
});
