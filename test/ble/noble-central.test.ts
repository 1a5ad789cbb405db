import { strict as assert } from 'assert';
import { createHciCentral, createNobleCentral } from '../../lib/ble/noble-central';
import type { Noble } from '../../lib/ble/noble-types';
import { OtaError } from '../../lib/errors';
import { ECHO_CHAR, FakeBindings, INFO_CHAR, TEST_SERVICE } from './fake-bindings';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const withBindings = require('@abandonware/noble/with-bindings') as (b: unknown) => Noble;

const DEVICES = [
  { id: 'dev1', address: 'AA:00:00:00:00:01', name: 'alpha' },
  { id: 'dev2', address: 'aa:00:00:00:00:02', name: 'beta', unresponsive: true },
];

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<OtaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OtaError, `expected an OtaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(err.message.length > 10);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

describe('ble/noble-central', () => {
  let bindings: FakeBindings;
  afterEach(() => bindings?.stop());

  async function ready() {
    bindings = new FakeBindings(DEVICES);
    const central = createNobleCentral(withBindings(bindings), { adapterName: 'test adapter', connectTimeoutMs: 100 });
    await central.waitReady(1000);
    return central;
  }

  it('tracks the adapter state and resolves waitReady once powered on', async () => {
    const central = await ready();
    assert.equal(central.state, 'poweredOn');
    const states: string[] = [];
    central.on('stateChange', (s) => states.push(s));
    bindings.setState('poweredOff');
    assert.deepEqual(states, ['poweredOff']);
    await central.close();
  });

  it('reports ADAPTER_OFF for a powered-off adapter and ADAPTER_MISSING for an unsupported one', async () => {
    bindings = new FakeBindings(DEVICES, 'poweredOff');
    await rejectsWithCode(createNobleCentral(withBindings(bindings)).waitReady(50), 'ADAPTER_OFF');
    const unsupported = new FakeBindings(DEVICES, 'unsupported');
    await rejectsWithCode(createNobleCentral(withBindings(unsupported)).waitReady(5000), 'ADAPTER_MISSING');
  });

  it('turns a noble that cannot load into ADAPTER_MISSING, not a crash', async () => {
    const central = createNobleCentral(() => {
      throw new Error('EAFNOSUPPORT');
    });
    const err = await rejectsWithCode(central.waitReady(100), 'ADAPTER_MISSING');
    assert.match(err.message, /EAFNOSUPPORT/);
    await rejectsWithCode(central.startScan({}, () => undefined), 'ADAPTER_MISSING');
  });

  it('gives a typed error from the real HCI noble on this machine (no Bluetooth here)', async () => {
    const central = createHciCentral({ deviceId: 0 });
    try {
      await central.waitReady(300);
    } catch (err) {
      assert.ok(err instanceof OtaError);
      assert.ok(['ADAPTER_MISSING', 'ADAPTER_OFF', 'ADAPTER_UNAUTHORIZED'].includes(err.code), err.code);
      return;
    } finally {
      await central.close();
    }
    // A machine with a working adapter reaches here; that is fine too.
  });

  it('scans, filters duplicates per consumer, and resolves devices by id, address and name', async () => {
    const central = await ready();
    const seen: string[] = [];
    const handle = await central.startScan({ services: [TEST_SERVICE] }, (d) => seen.push(d.name));
    await new Promise((r) => setTimeout(r, 50));
    await handle.stop();
    assert.deepEqual(seen.sort(), ['alpha', 'beta']);
    assert.equal(bindings.scanning, false);
    for (const ref of ['dev1', 'aa:00:00:00:00:01', 'AA:00:00:00:00:01', 'alpha']) {
      const c = await central.connect(ref);
      assert.equal(c.deviceId, 'dev1');
      await c.disconnect();
    }
    await rejectsWithCode(central.connect('gamma'), 'DEVICE_NOT_FOUND');
    await rejectsWithCode(central.connect('beta', { timeoutMs: 30 }), 'CONNECT_TIMEOUT');
    await central.close();
  });

  it('discovers once, reads, writes with and without response, subscribes, reports MTU and disconnects', async () => {
    const central = await ready();
    const h = await central.startScan({}, () => undefined);
    await new Promise((r) => setTimeout(r, 20));
    await h.stop();
    const c = await central.connect('alpha');
    const table = await c.discover();
    assert.deepEqual(table.map((s) => s.uuid), ['1800', '1801', '180a', TEST_SERVICE]);
    // Generic Access / Generic Attribute are listed, their characteristics not asked for (nothing uses them).
    assert.deepEqual(bindings.characteristicRequests, ['180a', TEST_SERVICE]);
    assert.deepEqual(table[0].characteristics, []);
    assert.equal(await c.discover(), table);
    assert.equal(c.mtu, 247);
    assert.equal((await c.read(TEST_SERVICE, INFO_CHAR)).toString(), `alpha:${INFO_CHAR}`);
    const notified: string[] = [];
    await c.subscribe(TEST_SERVICE, ECHO_CHAR, (d) => notified.push(d.toString()));
    // Pipelined writes complete one by one (noble emits one 'write' per write).
    await Promise.all([1, 2, 3].map((i) => c.write(TEST_SERVICE, ECHO_CHAR, Buffer.from(`w${i}`), true)));
    await c.write(TEST_SERVICE, ECHO_CHAR, Buffer.from('r'), false);
    assert.deepEqual(notified, ['w1', 'w2', 'w3', 'r']);
    await rejectsWithCode(c.write(TEST_SERVICE, INFO_CHAR, Buffer.from('x'), false), 'GATT_NOT_PERMITTED');
    await rejectsWithCode(c.read(TEST_SERVICE, 'ffff'), 'GATT_NOT_FOUND');
    const reasons: string[] = [];
    c.on('disconnect', (r) => reasons.push(r));
    const pending = c.write(TEST_SERVICE, ECHO_CHAR, Buffer.from('lost'), false);
    bindings.dropLink('dev1', 'supervision timeout');
    await rejectsWithCode(pending, 'DISCONNECTED');
    assert.deepEqual(reasons, ['supervision timeout']);
    assert.equal(c.connected, false);
    await rejectsWithCode(c.read(TEST_SERVICE, INFO_CHAR), 'DISCONNECTED');
    await central.close();
  });

  it('drops links when the adapter powers off', async () => {
    const central = await ready();
    const h = await central.startScan({}, () => undefined);
    await new Promise((r) => setTimeout(r, 20));
    await h.stop();
    const c = await central.connect('alpha');
    const dropped = new Promise((r) => c.once('disconnect', r));
    bindings.setState('poweredOff');
    await dropped;
    await rejectsWithCode(central.connect('alpha'), 'ADAPTER_OFF');
    await central.close();
  });
});
