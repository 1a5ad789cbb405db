import { strict as assert } from 'assert';
import { createNobleCentral } from '../../lib/ble/noble-central';
import type { Noble } from '../../lib/ble/noble-types';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { MAX_SETUP_PRIORITY_MS } from '../../lib/ble/setup-priority';
import { FakeBindings, INFO_CHAR, TEST_SERVICE } from './fake-bindings';
import { codeOf } from '../helpers/errors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const withBindings = require('@abandonware/noble/with-bindings') as (b: unknown) => Noble;

const DEVICES = ['d1', 'd2', 'd3', 'd4', 'd5'].map((id, i) => ({ id, address: `aa:00:00:00:00:0${i + 1}`, name: `node-${id}` }));

function setup(options: ConstructorParameters<typeof AdapterScheduler>[1] = {}) {
  const bindings = new FakeBindings([...DEVICES, { id: 'ghost', address: 'aa:00:00:00:00:99', name: 'ghost', unresponsive: true }]);
  const central = createNobleCentral(withBindings(bindings), { adapterName: 'test adapter' });
  const scheduler = new AdapterScheduler(central, { findTimeoutMs: 500, ...options } as ConstructorParameters<typeof AdapterScheduler>[1]);
  return { bindings, central, scheduler };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ble/scheduler', () => {
  let env: ReturnType<typeof setup>;
  afterEach(async () => {
    await env?.scheduler.close();
    await env?.central.close();
    env?.bindings.stop();
  });

  it('scans for a duration and caches what it saw for name resolution', async () => {
    env = setup();
    const found = await env.scheduler.scan({ durationMs: 40, services: [TEST_SERVICE] });
    assert.equal(found.length, 6);
    assert.equal(env.bindings.scanning, false, 'scan stops after its duration');
    const d = await env.scheduler.findDevice('node-d3', { timeoutMs: 10 });
    assert.equal(d.id, 'd3');
    assert.equal(await codeOf(env.scheduler.findDevice('nobody', { timeoutMs: 40 })), 'DEVICE_NOT_FOUND');
  });

  it('holds a session\'s data bursts while another link of the adapter is being set up, not while it waits for a slot', async () => {
    env = setup({ maxConnections: 2 });
    const events: string[] = [];
    const bSetUp = deferred();
    const aReady = deferred();
    const aBurst = env.scheduler.session('node-d1', async (s) => {
      await s.connect();
      await s.yieldToSetups(); // its own set-up ends here; nobody else is setting up
      events.push('a: first burst');
      aReady.resolve();
      await bSetUp.promise.then(() => undefined);
      await new Promise((r) => setTimeout(r, 5));
      await s.yieldToSetups();
      events.push('a: burst after b');
    });
    await aReady.promise;
    const b = env.scheduler.session('node-d2', async (s) => {
      await s.connect();
      bSetUp.resolve();
      await new Promise((r) => setTimeout(r, 60)); // discovery, Status, BEGIN ...
      events.push('b: set up');
      await s.yieldToSetups();
    });
    await Promise.all([aBurst, b]);
    assert.deepEqual(events, ['a: first burst', 'b: set up', 'a: burst after b']);
    // A session waiting for a connection slot is not a set-up: it holds nobody back.
    await env.scheduler.close();
    await env.central.close();
    env.bindings.stop();
    env = setup({ maxConnections: 1 });
    const held = deferred();
    const c = env.scheduler.session('node-d3', async (s) => {
      await s.connect();
      await s.yieldToSetups();
      await held.promise;
      await s.yieldToSetups();
    });
    const d = env.scheduler.withConnection('node-d4', async () => undefined);
    await new Promise((r) => setTimeout(r, 30));
    held.resolve();
    const released = Date.now();
    await c;
    // d's queued connect would have held c's burst for MAX_SETUP_PRIORITY_MS (2 s) had it counted.
    assert.ok(Date.now() - released < MAX_SETUP_PRIORITY_MS / 2, `c's burst waited ${Date.now() - released} ms`);
    await d;
  });

  it('never opens more than maxConnections links and serves the queue in FIFO order', async () => {
    env = setup({ maxConnections: 2 });
    const order: string[] = [];
    const gates = DEVICES.map(() => deferred());
    const runs = DEVICES.map((d, i) =>
      env.scheduler.withConnection(d.name, async (c) => {
        order.push(d.id);
        assert.equal((await c.read(TEST_SERVICE, INFO_CHAR)).toString(), `${d.name}:${INFO_CHAR}`);
        await gates[i].promise;
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(env.scheduler.stats().connections, 2);
    assert.equal(env.scheduler.stats().waitingForSlot, 3);
    for (const g of gates) g.resolve();
    await Promise.all(runs);
    assert.equal(env.bindings.maxSimultaneous, 2);
    assert.deepEqual(order.slice(2), ['d3', 'd4', 'd5']);
    assert.equal(env.scheduler.stats().connections, 0);
  });

  it('runs one session per device: a second request waits, or fails DEVICE_BUSY when told not to wait', async () => {
    env = setup();
    const gate = deferred();
    const events: string[] = [];
    const first = env.scheduler.withConnection('node-d1', async () => {
      events.push('first');
      await gate.promise;
      events.push('first done');
    });
    await new Promise((r) => setTimeout(r, 50));
    // Same device by address: the session is keyed by every alias of the device.
    assert.equal(await codeOf(env.scheduler.withConnection('aa:00:00:00:00:01', async () => undefined, { wait: false })), 'DEVICE_BUSY');
    const second = env.scheduler.withConnection('d1', async () => void events.push('second'));
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(events, ['first']);
    gate.resolve();
    await Promise.all([first, second]);
    assert.deepEqual(events, ['first', 'first done', 'second']);
  });

  it('cancels a queued request through its AbortSignal without touching the device', async () => {
    env = setup({ maxConnections: 1 });
    const gate = deferred();
    const busy = env.scheduler.withConnection('node-d1', () => gate.promise);
    await new Promise((r) => setTimeout(r, 50));
    const controller = new AbortController();
    const queued = env.scheduler.withConnection('node-d2', async () => assert.fail('must not run'), { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 20));
    const requests = env.bindings.connectRequests;
    controller.abort();
    assert.equal(await codeOf(queued), 'CANCELLED');
    gate.resolve();
    await busy;
    assert.equal(env.bindings.connectRequests, requests);
  });

  it('fails a connection that never comes up with CONNECT_TIMEOUT and frees the slot', async () => {
    env = setup({ maxConnections: 1, connectTimeoutMs: 40 });
    assert.equal(await codeOf(env.scheduler.withConnection('ghost', async () => undefined)), 'CONNECT_TIMEOUT');
    await env.scheduler.withConnection('node-d1', async (c) => assert.ok(c.connected));
  });

  it('pauses scanning while connecting when the adapter needs it', async () => {
    env = setup({ pauseScanWhileConnecting: true, continuousScan: true });
    await env.scheduler.ready();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(env.bindings.scanning, true);
    const states: boolean[] = [];
    const origConnect = env.bindings.connect.bind(env.bindings);
    env.bindings.connect = (id: string) => {
      states.push(env.bindings.scanning);
      origConnect(id);
    };
    await env.scheduler.withConnection('node-d2', async () => undefined);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(states, [false]);
    assert.equal(env.bindings.scanning, true, 'background scan resumes');
  });

  it('reports adapter problems as typed errors', async () => {
    env = setup({ readyTimeoutMs: 50 });
    await env.scheduler.ready();
    env.bindings.setState('poweredOff');
    assert.equal(await codeOf(env.scheduler.scan({ durationMs: 10 })), 'ADAPTER_OFF');
  });

  it('shuts down cleanly: aborts queued and running work and disconnects every link', async () => {
    env = setup({ maxConnections: 1 });
    let runningSignal: AbortSignal | undefined;
    const running = env.scheduler.session('node-d1', async (s) => {
      runningSignal = s.signal;
      await s.connect();
      await new Promise((_r, reject) => s.signal.addEventListener('abort', () => reject(s.signal.reason)));
    });
    await new Promise((r) => setTimeout(r, 50));
    const queued = env.scheduler.withConnection('node-d2', async () => undefined);
    await new Promise((r) => setTimeout(r, 10));
    await env.scheduler.close();
    assert.equal(await codeOf(running), 'ADAPTER_CLOSED');
    assert.equal(await codeOf(queued), 'ADAPTER_CLOSED');
    assert.equal(runningSignal?.aborted, true);
    assert.equal(env.bindings.connected.size, 0);
    assert.equal(await codeOf(env.scheduler.scan({ durationMs: 10 })), 'ADAPTER_CLOSED');
  });
});
