/**
 * ble-ota-scan on a simulated fleet: one message per device or one list, the filters, continuous
 * mode reporting changes, and errors for Catch nodes.
 */
import { strict as assert } from 'assert';
import { collect, helper, helperNode, loadFlow, nextInput, otaNodes, simAdapter, type FlowNode, type Json } from './support';
import { buildFilter, matches } from '../../nodes/ble-ota-scan/scan-filter';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'scan tests' };
const DEVICES = ['esp32-line-01:esp32:1.0.0', 'esp32-line-02:esp32:1.2.0', 'esp32-line-03:esp32c3:2.0.0', 'press-1:esp32:0.9.0', 'old-1:esp32:0.1.0:pass:auto:legacy'].join('\n');

function scanFlow(scanSettings: Record<string, unknown> = {}): FlowNode[] {
  return [
    TAB,
    simAdapter('adapter', { simDevices: DEVICES }),
    { id: 'scan', type: 'ble-ota-scan', z: 'tab', adapter: 'adapter', mode: 'once', duration: 2, output: 'each', namePrefix: '', nameRegex: '', service: '', minRssi: '', olderThan: '', wires: [['out']], ...scanSettings },
    helperNode('out'),
    { id: 'catch-errors', type: 'catch', z: 'tab', scope: ['scan'], uncaught: false, wires: [['caught']] },
    helperNode('caught'),
  ];
}

describe('ble-ota-scan node', function () {
  this.timeout(20000);

  afterEach(() => helper.unload());

  it('sends the device list with firmware and protocol from the advertisements', async () => {
    await loadFlow(otaNodes, scanFlow({ output: 'list' }));
    const out = nextInput(helper.getNode('out'));
    helper.getNode('scan')?.receive({ topic: 'scan-request' });
    const msg = await out;
    assert.equal(msg.topic, 'scan-request');
    const list = msg.payload as Array<Json>;
    // The seed-firmware device "old-1" advertises the seed's fixed name "esp32" and no service UUID.
    assert.deepEqual(list.map((d) => d.name).sort(), ['esp32', 'esp32-line-01', 'esp32-line-02', 'esp32-line-03', 'press-1']);
    const line2 = list.find((d) => d.name === 'esp32-line-02');
    assert.equal(line2?.firmware.version, '1.2.0');
    assert.equal(line2?.protocol, 'v2');
    assert.equal(list.find((d) => d.name === 'esp32')?.protocol, 'unknown', 'its advertisement does not say');
    for (const d of list) {
      assert.equal(typeof d.id, 'string');
      assert.equal(typeof d.rssi, 'number');
    }
  });

  it('sends one message per device, filtered by name prefix and "older than"', async () => {
    await loadFlow(otaNodes, scanFlow({ namePrefix: 'esp32-line-', olderThan: '1.1.0' }));
    const seen = collect(helper.getNode('out'));
    const done = new Promise<void>((resolve) => helper.getNode('scan')?.on('call:status', (call: { args: Array<Record<string, string>> }) => /device/.test(call.args[0]?.text ?? '') && resolve()));
    helper.getNode('scan')?.receive({});
    await done;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen.map((m) => m.device), ['esp32-line-01']);
    assert.equal((seen[0].payload as Json).firmware.version, '1.0.0');
  });

  it('filters by regular expression', async () => {
    await loadFlow(otaNodes, scanFlow({ output: 'list', nameRegex: '^(press-|esp32$)' }));
    const out = nextInput(helper.getNode('out'));
    helper.getNode('scan')?.receive({});
    const list = (await out).payload as Array<Json>;
    assert.deepEqual(list.map((d) => d.name).sort(), ['esp32', 'press-1']);
  });

  it('counts seed-firmware devices and git-hash builds as outdated (one version rule)', () => {
    const filter = buildFilter({ olderThan: '1.0.0' });
    assert.equal(matches({ id: 'a', address: '', name: 'a', rssi: -40, protocol: 'legacy', firmware: null }, filter), true);
    assert.equal(matches({ id: 'b', address: '', name: 'b', rssi: -40, protocol: 'v2', firmware: { version: '6970792-dirty' } }, filter), true);
    assert.equal(matches({ id: 'c', address: '', name: 'c', rssi: -40, protocol: 'v2', firmware: { version: 'v0.9.1' } }, filter), true);
    assert.equal(matches({ id: 'e', address: '', name: 'e', rssi: -40, protocol: 'v2', firmware: { version: '1.0.0-rc1' } }, filter), true);
    assert.equal(matches({ id: 'f', address: '', name: 'f', rssi: -40, protocol: 'v2', firmware: { version: '1.0.0' } }, filter), false);
    assert.equal(matches({ id: 'd', address: '', name: 'd', rssi: -90, protocol: 'v2', firmware: { version: '0.1' } }, buildFilter({ minRssi: '-80' })), false);
  });

  it('refuses a bad filter with a clear error', async () => {
    await loadFlow(otaNodes, scanFlow({ nameRegex: '([' }));
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('scan')?.receive({});
    assert.equal(((await caught).error as Record<string, unknown>).code, 'BAD_FILTER');
  });

  it('scans continuously from deploy on and reports each device once while nothing changes', async () => {
    await loadFlow(otaNodes, scanFlow({ mode: 'continuous', duration: 1 }));
    const seen = collect(helper.getNode('out'));
    await new Promise((r) => setTimeout(r, 1500));
    const names = seen.map((m) => m.device as string);
    assert.deepEqual([...new Set(names)].sort(), ['esp32', 'esp32-line-01', 'esp32-line-02', 'esp32-line-03', 'press-1']);
    assert.equal(names.length, 5, `each device once: ${names.join(',')}`);
  });

  it('reports a missing adapter as NO_ADAPTER', async () => {
    await loadFlow(otaNodes, scanFlow({ adapter: '' }).filter((n) => n.type !== 'ble-ota-adapter'));
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('scan')?.receive({});
    assert.equal(((await caught).error as Record<string, unknown>).code, 'NO_ADAPTER');
  });
});
