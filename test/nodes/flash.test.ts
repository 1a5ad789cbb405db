/**
 * ble-ota-flash in a real Node-RED runtime on a simulated fleet: results, progress, every bad input
 * (refused before any BLE activity where the file alone tells), queueing, busy devices, cancel,
 * redeploy during a transfer, and what Catch / Status / Complete nodes see.
 */
import { strict as assert } from 'assert';
import * as sinon from 'sinon';
import { adapterNode, backendOf, collect, expectNoInput, helper, helperNode, image, keyedCredentials, loadFlow, nextInput, otaNodes, simAdapter, type FlowNode, type Json } from './support';
import { readDeviceStatus } from '../../lib/ota';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'flash tests' };

function flashFlow(flashSettings: Record<string, unknown> = {}, adapterSettings: Record<string, unknown> = {}): FlowNode[] {
  return [
    TAB,
    simAdapter('adapter', adapterSettings),
    {
      id: 'flash',
      type: 'ble-ota-flash',
      z: 'tab',
      adapter: 'adapter',
      device: '',
      filename: '',
      whenBusy: 'queue',
      progressOutput: true,
      progressInterval: 0.1,
      outputs: 2,
      wires: [['out'], ['progress']],
      ...flashSettings,
    },
    helperNode('out'),
    helperNode('progress'),
    { id: 'catch-errors', type: 'catch', z: 'tab', scope: ['flash'], uncaught: false, wires: [['caught']] },
    helperNode('caught'),
    { id: 'complete-flash', type: 'complete', z: 'tab', scope: ['flash'], uncaught: false, wires: [['completed']] },
    helperNode('completed'),
    { id: 'status-flash', type: 'status', z: 'tab', scope: ['flash'], wires: [['statuses']] },
    helperNode('statuses'),
  ];
}

function flashNode() {
  const node = helper.getNode('flash');
  if (!node) throw new Error('flash node not deployed');
  return node;
}

async function runningVersion(device: string): Promise<string | null> {
  const backend = await backendOf('adapter');
  const report = await readDeviceStatus(backend.scheduler, { device });
  return report.firmware.version;
}

describe('ble-ota-flash node', function () {
  this.timeout(20000);

  afterEach(async () => {
    sinon.restore();
    await helper.unload();
  });

  it('flashes a device and puts the result on the same msg; Complete sees it', async () => {
    await loadFlow(otaNodes, flashFlow());
    const result = nextInput(helper.getNode('out'));
    const completed = nextInput(helper.getNode('completed'));
    flashNode().receive({ _msgid: 'req-1', payload: image('1.1.0'), device: 'esp32-line-01', topic: 'factory/line1/ota/request', keep: 'me' });
    const msg = await result;
    assert.equal(msg._msgid, 'req-1');
    assert.equal(msg.keep, 'me');
    const payload = msg.payload as Json;
    assert.equal(payload.success, true);
    assert.equal(payload.device.name, 'esp32-line-01');
    assert.equal(payload.before.version, '1.0.0');
    assert.equal(payload.after.version, '1.1.0');
    assert.equal(payload.bytes, image('1.1.0').length);
    assert.ok(payload.bytesOnAir > 0);
    assert.ok(payload.kBps > 0);
    assert.equal(payload.secondsKind, 'simulated');
    assert.equal(payload.simulated, true);
    assert.equal((await completed)._msgid, 'req-1');
    assert.equal(await runningVersion('esp32-line-01'), '1.1.0');
  });

  it('sends progress as fresh messages on output 2 and shows phase / percent / KB/s in the status', async () => {
    await loadFlow(otaNodes, flashFlow());
    const progress = collect(helper.getNode('progress'));
    const statuses = collect(helper.getNode('statuses'));
    const done = nextInput(helper.getNode('out'));
    flashNode().receive({ payload: image('1.1.0', 'esp32', 400 * 1024), device: 'esp32-line-02', topic: 'factory/line7/ota/request', req: { fake: true }, res: { fake: true } });
    await done;
    assert.ok(progress.length >= 2, `expected progress messages, got ${progress.length}`);
    for (const p of progress) {
      assert.equal(p.req, undefined);
      assert.equal(p.res, undefined);
      assert.equal(p.topic, 'factory/line7/ota/request');
      assert.equal(p.device, 'esp32-line-02');
    }
    const phases = progress.map((p) => (p.payload as Record<string, unknown>).phase);
    assert.ok(phases.includes('transferring'), `phases: ${phases.join(',')}`);
    const texts = statuses.map((s) => String((s.status as Record<string, unknown>).text));
    assert.ok(texts.some((t) => /esp32-line-02: \d+% [\d.]+ KB\/s/.test(t)), `status texts: ${texts.join(' | ')}`);
    assert.ok(texts.some((t) => /done/.test(t)));
  });

  const badInputs: Array<[string, Record<string, unknown>, string]> = [
    ['a string payload', { payload: 'firmware please', device: 'esp32-line-01' }, 'NOT_A_BUFFER'],
    ['an object payload', { payload: { bin: 1 }, device: 'esp32-line-01' }, 'NOT_A_BUFFER'],
    ['no firmware at all', { device: 'esp32-line-01' }, 'NO_FIRMWARE'],
    ['an empty Buffer', { payload: Buffer.alloc(0), device: 'esp32-line-01' }, 'EMPTY_IMAGE'],
    ['a file outside the (unset) firmware directory', { filename: '/nonexistent/app.bin', device: 'esp32-line-01' }, 'FILE_NOT_ALLOWED'],
    ['no device', { payload: image('1.1.0') }, 'NO_DEVICE'],
    ['a device of the wrong type', { payload: image('1.1.0'), device: 42 }, 'BAD_DEVICE'],
  ];
  for (const [what, input, code] of badInputs) {
    it(`refuses ${what} with ${code} before any BLE activity`, async () => {
      await loadFlow(otaNodes, flashFlow());
      const backend = await backendOf('adapter');
      const connect = sinon.spy(backend.central, 'connect');
      const caught = nextInput(helper.getNode('caught'));
      flashNode().receive(input);
      const msg = await caught;
      const error = msg.error as Record<string, unknown>;
      assert.equal(error.code, code);
      assert.ok(String(error.message).length > 10);
      assert.equal(connect.callCount, 0);
    });
  }

  it('refuses bytes that are not an ESP image before any BLE activity', async () => {
    await loadFlow(otaNodes, flashFlow());
    const backend = await backendOf('adapter');
    const connect = sinon.spy(backend.central, 'connect');
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: Buffer.from('this is not an ESP32 application image at all, just text'.repeat(20)), device: 'esp32-line-01' });
    const error = (await caught).error as Record<string, unknown>;
    assert.match(String(error.code), /NOT_ESP_IMAGE|TRUNCATED_IMAGE/);
    assert.equal(connect.callCount, 0);
  });

  it('refuses an image for the wrong chip with WRONG_CHIP and leaves the device as it was', async () => {
    await loadFlow(otaNodes, flashFlow());
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0', 'esp32c3'), device: 'esp32-line-01' });
    const error = (await caught).error as Record<string, unknown>;
    assert.equal(error.code, 'WRONG_CHIP');
    assert.equal(await runningVersion('esp32-line-01'), '1.0.0');
  });

  it('checks the configured chip and version from the file alone', async () => {
    await loadFlow(otaNodes, flashFlow({ expectedChip: 'esp32', expectedVersion: '2.0.0' }));
    const backend = await backendOf('adapter');
    const connect = sinon.spy(backend.central, 'connect');
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
    assert.equal(((await caught).error as Record<string, unknown>).code, 'VERSION_MISMATCH');
    const caught2 = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('2.0.0', 'esp32s3'), device: 'esp32-line-01' });
    assert.equal(((await caught2).error as Record<string, unknown>).code, 'WRONG_CHIP');
    assert.equal(connect.callCount, 0);
  });

  it('reports an unknown device as DEVICE_NOT_FOUND', async () => {
    await loadFlow(otaNodes, flashFlow());
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-99' });
    assert.equal(((await caught).error as Record<string, unknown>).code, 'DEVICE_NOT_FOUND');
  });

  it('reports a missing adapter configuration as NO_ADAPTER', async () => {
    const flow = flashFlow({ adapter: '' }).filter((n) => n.type !== 'ble-ota-adapter');
    await loadFlow(otaNodes, flow);
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
    assert.equal(((await caught).error as Record<string, unknown>).code, 'NO_ADAPTER');
  });

  it('reports a broken fleet configuration with its own code', async () => {
    await loadFlow(otaNodes, flashFlow({}, { simDevices: 'esp32-line-01:esp8266:1.0.0' }));
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
    const error = (await caught).error as Record<string, unknown>;
    assert.equal(error.code, 'BAD_FLEET_CONFIG');
    assert.match(String(error.message), /esp8266/);
  });

  it('reports an adapter that is powered off as ADAPTER_OFF', async () => {
    await loadFlow(otaNodes, flashFlow());
    const backend = await backendOf('adapter');
    const statuses = collect(helper.getNode('statuses'));
    backend.fleet?.radio.setPowered(false);
    // noble reports the state change asynchronously; the status fan-out shows when it has arrived.
    while (!statuses.some((s) => /adapter off$/.test(String((s.status as Json).text)))) await new Promise((r) => setTimeout(r, 10));
    const caught = nextInput(helper.getNode('caught'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
    assert.equal(((await caught).error as Record<string, unknown>).code, 'ADAPTER_OFF');
  });

  it('queues a second message for the same device and runs it after the first', async () => {
    await loadFlow(otaNodes, flashFlow());
    const results = collect(helper.getNode('out'));
    const both = new Promise<void>((resolve) => helper.getNode('out')?.on('input', () => results.length === 2 && resolve()));
    flashNode().receive({ _msgid: 'first', payload: image('1.1.0'), device: 'esp32-line-03' });
    flashNode().receive({ _msgid: 'second', payload: image('1.2.0'), device: 'esp32-line-03' });
    await both;
    assert.deepEqual(results.map((m) => m._msgid), ['first', 'second']);
    const [first, second] = results.map((m) => m.payload as Json);
    assert.equal(first.before.version, '1.0.0');
    assert.equal(second.before.version, '1.1.0');
    assert.equal(second.after.version, '1.2.0');
    assert.equal(await runningVersion('esp32-line-03'), '1.2.0');
  });

  it('runs different devices in parallel up to the adapter limit', async () => {
    await loadFlow(otaNodes, flashFlow({}, { maxConnections: 2 }));
    const results = collect(helper.getNode('out'));
    const all = new Promise<void>((resolve) => helper.getNode('out')?.on('input', () => results.length === 3 && resolve()));
    for (const device of ['esp32-line-01', 'esp32-line-02', 'esp32-line-03']) flashNode().receive({ payload: image('1.1.0'), device });
    await all;
    assert.deepEqual(results.map((m) => (m.payload as Json).device.name).sort(), ['esp32-line-01', 'esp32-line-02', 'esp32-line-03']);
  });

  it('rejects a request for a busy device with DEVICE_BUSY when set to reject', async () => {
    await loadFlow(otaNodes, flashFlow({ whenBusy: 'reject' }));
    const caught = nextInput(helper.getNode('caught'));
    const result = nextInput(helper.getNode('out'));
    flashNode().receive({ _msgid: 'first', payload: image('1.1.0'), device: 'esp32-line-04' });
    flashNode().receive({ _msgid: 'second', payload: image('1.2.0'), device: 'esp32-line-04' });
    const rejected = await caught;
    assert.equal(rejected._msgid, 'second');
    assert.equal((rejected.error as Record<string, unknown>).code, 'DEVICE_BUSY');
    assert.equal((await result)._msgid, 'first');
  });

  // These two run on the real-time link model so that the cancel lands mid-transfer.
  it('cancels a running transfer with msg.cancel; the device keeps its image', async () => {
    await loadFlow(otaNodes, flashFlow({}, { simClock: 'real' }));
    const caught = nextInput(helper.getNode('caught'));
    const progress = helper.getNode('progress');
    progress?.on('input', (p: Json) => {
      if (p.payload.phase === 'transferring') flashNode().receive({ cancel: true, device: 'esp32-line-05' });
    });
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-05' });
    const msg = await caught;
    assert.equal((msg.error as Record<string, unknown>).code, 'CANCELLED');
    await expectNoInput(helper.getNode('out'), 200);
    assert.equal(await runningVersion('esp32-line-05'), '1.0.0');
  });

  it('drops queued messages on msg.cancel without a device', async () => {
    await loadFlow(otaNodes, flashFlow({}, { maxConnections: 1, simClock: 'real' }));
    const caught = collect(helper.getNode('caught'));
    flashNode().receive({ _msgid: 'a', payload: image('1.1.0'), device: 'esp32-line-01' });
    flashNode().receive({ _msgid: 'b', payload: image('1.1.0'), device: 'esp32-line-02' });
    flashNode().receive({ cancel: true });
    await new Promise((r) => setTimeout(r, 300));
    await expectNoInput(helper.getNode('out'), 300);
    assert.deepEqual(caught.map((m) => m._msgid).sort(), ['a', 'b']);
    assert.ok(caught.every((m) => (m.error as Record<string, unknown>).code === 'CANCELLED'));
  });

  it('aborts a transfer on redeploy within the close timeout; the device still boots and can be updated', async () => {
    const flow = flashFlow();
    await loadFlow(otaNodes, flow);
    const transferring = new Promise<void>((resolve) => {
      helper.getNode('progress')?.on('input', (p: Json) => p.payload.phase === 'transferring' && resolve());
    });
    flashNode().receive({ payload: image('1.1.0', 'esp32', 1024 * 1024), device: 'esp32-line-02' });
    await transferring;
    const adapterBefore = adapterNode('adapter');
    const started = Date.now();
    const changed = flow.map((n) => (n.id === 'flash' ? { ...n, name: 'redeployed' } : n));
    await helper.setFlows(changed, 'nodes', keyedCredentials(changed));
    assert.ok(Date.now() - started < 15000, 'close took too long');
    // Only the flash node was redeployed: the adapter and its simulated devices carry on.
    assert.equal(adapterNode('adapter'), adapterBefore);
    assert.equal(await runningVersion('esp32-line-02'), '1.0.0');
    const result = nextInput(helper.getNode('out'));
    flashNode().receive({ payload: image('1.1.0'), device: 'esp32-line-02' });
    assert.equal(((await result).payload as Json).after.version, '1.1.0');
  });

  it('finishes closing quickly with a queue of transfers when the flow stops', async () => {
    await loadFlow(otaNodes, flashFlow({}, { maxConnections: 1 }));
    for (const device of ['esp32-line-01', 'esp32-line-02', 'esp32-line-03']) {
      flashNode().receive({ payload: image('1.1.0', 'esp32', 1024 * 1024), device });
    }
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await helper.unload();
    assert.ok(Date.now() - started < 15000);
  });
});
