/**
 * Production safety of the nodes in a real Node-RED runtime: no silent simulator, SIM on every
 * status and in every result, outcomes that stay on the status, texts through RED._ (de included),
 * busy devices by resolved address across nodes, skipping an image the device already runs, and no
 * listener leak with many queued requests.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import adapterModule from '../../nodes/ble-ota-adapter/ble-ota-adapter';
import scanModule from '../../nodes/ble-ota-scan/ble-ota-scan';
import flashModule from '../../nodes/ble-ota-flash/ble-ota-flash';
import verifyModule from '../../nodes/ble-ota-verify/ble-ota-verify';
import { adapterNode, backendOf, collect, helper, helperNode, loadFlow, image, nextInput, otaNodes, simAdapter, type FlowNode, type Json } from './support';
import { repoPath } from '../helpers/paths';
import { forNodeRed } from '../../nodes/shared/adapter-user';
import { OtaError } from '../../lib/errors';
import { nodeRedVersion } from '../helpers/node-red-under-test';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'production tests' };

function flashNodeDef(id: string, settings: Record<string, unknown> = {}): FlowNode {
  return { id, type: 'ble-ota-flash', z: 'tab', adapter: 'adapter', device: '', filename: '', whenBusy: 'queue', progressOutput: false, outputs: 1, wires: [[`${id}-out`]], ...settings };
}

/** The node's output and a helper for the errors Catch nodes would see (one catch node per flow). */
function watch(id: string): FlowNode[] {
  return [helperNode(`${id}-out`), helperNode(`${id}-caught`)];
}

function catchAll(ids: string[]): FlowNode[] {
  return [{ id: 'catch-all', type: 'catch', z: 'tab', scope: ids, uncaught: false, wires: [['caught-router']] }, helperNode('caught-router')];
}

/** Every status a node sets (the test helper reports node.status calls as "call:status"). */
function statusesOf(id: string): Array<{ text?: string }> {
  const list: Array<{ text?: string }> = [];
  helper.getNode(id)?.on('call:status', (call: { args: Array<{ text?: string }> }) => list.push(call.args[0] ?? {}));
  return list;
}

function texts(list: Array<{ text?: string }>): string[] {
  return list.map((s) => String(s.text));
}

/** The next error a Catch node reports for the node with this id. */
function nextError(nodeId: string, ms = 15000): Promise<Json> {
  return new Promise((resolve, reject) => {
    const router = helper.getNode('caught-router');
    if (!router) return reject(new Error('no catch node in the flow'));
    const timer = setTimeout(() => reject(new Error(`no error from ${nodeId} within ${ms} ms`)), ms);
    const onInput = (msg: Json) => {
      if (msg.error?.source?.id !== nodeId) return;
      clearTimeout(timer);
      router.removeListener('input', onInput);
      resolve(msg.error as Json);
    };
    router.on('input', onInput);
  });
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, predicate: () => boolean, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await wait(10);
  }
}

describe(`production safety of the nodes (Node-RED ${nodeRedVersion}, Node.js ${process.version})`, function () {
  this.timeout(30000);
  afterEach(() => helper.unload());

  describe('adapter mode', () => {
    it('treats an adapter saved without a mode as the real HCI adapter, never the simulator', async () => {
      const adapter = simAdapter('adapter');
      delete adapter.mode;
      await loadFlow(otaNodes, [TAB, adapter]);
      const node = adapterNode('adapter');
      assert.equal(node.connection.settings.simulated, false);
      assert.equal(node.connection.settings.label, 'hci0');
    });

    it('refuses an unknown mode as a configuration error', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter', { mode: 'simulator' })]);
      const node = adapterNode('adapter');
      assert.match(String(node.configError?.message), /adapter mode must be "hci".*"sim"/);
      await assert.rejects(node.connection.acquire(), (err: Error & { code?: string }) => err.code === 'BAD_OPTION');
    });

    it('speaks of the adapter setting, not of the CLI, when the BLE library is missing', () => {
      const error = forNodeRed(new OtaError('ADAPTER_MISSING', 'no usable Bluetooth adapter: the BLE library could not be loaded on this machine (x). Use --sim for a simulated fleet.'));
      assert.doesNotMatch(error.message, /--sim/);
      assert.match(error.message, /Pick "simulated fleet" in the adapter settings/);
    });

    it('says SIMULATED in the log when a simulated adapter starts', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter')]);
      const warnings = helper.log().args.map((a) => a[0] as Json).filter((e) => e.level === 30 && e.type === 'ble-ota-adapter');
      assert.ok(warnings.some((e) => /^SIMULATED adapter simulated fleet "test fleet": no real device/.test(String(e.msg))), JSON.stringify(warnings));
    });
  });

  describe('simulated mode is unmistakable', () => {
    it('marks the status of every node with SIM, and every result with simulated: true', async () => {
      const flow: FlowNode[] = [
        TAB,
        simAdapter('adapter'),
        flashNodeDef('flash'),
        ...watch('flash'),
        { id: 'scan', type: 'ble-ota-scan', z: 'tab', adapter: 'adapter', mode: 'once', duration: 1, output: 'list', wires: [['scan-out']] },
        ...watch('scan'),
        { id: 'verify', type: 'ble-ota-verify', z: 'tab', adapter: 'adapter', waitSeconds: 5, wires: [['verify-out'], ['verify-out']] },
        ...watch('verify'),
        ...catchAll(['flash', 'scan', 'verify']),
      ];
      await loadFlow(otaNodes, flow);
      const statuses = { flash: statusesOf('flash'), scan: statusesOf('scan'), verify: statusesOf('verify') };
      const scanned = nextInput(helper.getNode('scan-out'));
      helper.getNode('scan')?.receive({});
      const list = (await scanned).payload as Json[];
      assert.ok(list.length > 0 && list.every((d) => d.simulated === true));
      const flashed = nextInput(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
      const result = (await flashed) as Json;
      assert.equal(result.payload.simulated, true);
      assert.equal(result.payload.secondsKind, 'simulated');
      const verified = nextInput(helper.getNode('verify-out'));
      helper.getNode('verify')?.receive(result);
      assert.equal(((await verified).payload as Json).simulated, true);
      for (const [name, list] of Object.entries(statuses)) {
        const all = texts(list);
        assert.ok(all.length > 0, `${name} showed a status`);
        assert.deepEqual(all.filter((t) => !t.startsWith('SIM · ')), [], `${name}: every status carries SIM`);
      }
    });

    it('reports secondsKind "simulated" on a real-time simulated fleet too (never "measured")', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter', { simClock: 'real', simLink: 'zero' }), flashNodeDef('flash'), ...watch('flash'), ...catchAll(['flash'])]);
      const flashed = nextInput(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0', 'esp32', 16 * 1024), device: 'esp32-line-01' });
      const payload = (await flashed).payload as Json;
      assert.equal(payload.secondsKind, 'simulated');
      assert.equal(payload.simulated, true);
    });
  });

  describe('outcomes on the status', () => {
    it('keeps the outcome until the next job starts, and shows a refusal made before any BLE activity', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('flash'), ...watch('flash'), ...catchAll(['flash'])]);
      const statuses = statusesOf('flash');
      const flashed = nextInput(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
      await flashed;
      await wait(300);
      assert.match(texts(statuses).at(-1) ?? '', /esp32-line-01: done [\d.]+ KB\/s$/);
      const caught = nextError('flash');
      helper.getNode('flash')?.receive({ payload: Buffer.from('not an image'.repeat(50)), device: 'esp32-line-02' });
      await caught;
      await wait(100);
      assert.match(texts(statuses).at(-1) ?? '', /esp32-line-02: (NOT_ESP_IMAGE|TRUNCATED_IMAGE)$/);
    });
  });

  describe('texts through RED._', () => {
    /** A runtime in German: RED._ answers from our de catalogues, as Node-RED's i18n does. */
    function germanRed(module: (RED: never) => unknown) {
      return (RED: { _: (key: string, subs?: Record<string, unknown>) => string }) => {
        RED._ = (key, subs = {}) => {
          const [ns, dotted] = key.includes(':') ? [key.slice(key.indexOf('/') + 1, key.indexOf(':')), key.slice(key.indexOf(':') + 1)] : [dotted0(key), key];
          const catalogue = JSON.parse(fs.readFileSync(repoPath('nodes', ns, 'locales', 'de', `${ns}.json`), 'utf8')) as Json;
          const text = dotted.split('.').reduce<unknown>((at, part) => (at && typeof at === 'object' ? (at as Json)[part] : undefined), catalogue);
          return typeof text === 'string' ? text.replace(/__(\w+)__/g, (_w, n: string) => String(subs[n])) : key;
        };
        return module(RED as never);
      };
    }
    const dotted0 = (key: string) => key.split('.')[0];

    it('shows statuses in the runtime language (de)', async () => {
      const modules = [adapterModule, scanModule, flashModule, verifyModule].map((m) => germanRed(m as never));
      await loadFlow(modules, [TAB, simAdapter('adapter'), flashNodeDef('flash'), ...watch('flash'), ...catchAll(['flash'])]);
      const statuses = statusesOf('flash');
      const flashed = nextInput(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-01' });
      await flashed;
      await wait(200);
      assert.ok(texts(statuses).some((t) => t === 'SIM · Adapter bereit' || /^SIM · esp32-line-01: fertig/.test(t)), texts(statuses).join(' | '));
      assert.match(texts(statuses).at(-1) ?? '', /^SIM · esp32-line-01: fertig [\d.]+ KB\/s$/);
    });

    it('has complete en-US and de catalogues and help for every node', () => {
      const keys = (o: Json, prefix = ''): string[] => Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? keys(v as Json, `${prefix}${k}.`) : [`${prefix}${k}`])).sort();
      for (const type of ['ble-ota-adapter', 'ble-ota-scan', 'ble-ota-flash', 'ble-ota-verify']) {
        const dir = repoPath('nodes', type, 'locales');
        const en = JSON.parse(fs.readFileSync(path.join(dir, 'en-US', `${type}.json`), 'utf8')) as Json;
        const de = JSON.parse(fs.readFileSync(path.join(dir, 'de', `${type}.json`), 'utf8')) as Json;
        assert.deepEqual(keys(de), keys(en), `${type}: de has exactly the en-US keys`);
        for (const lang of ['en-US', 'de']) {
          const help = fs.readFileSync(path.join(dir, lang, `${type}.html`), 'utf8');
          assert.match(help, new RegExp(`data-help-name="${type}"`));
        }
        assert.doesNotMatch(fs.readFileSync(repoPath('nodes', type, `${type}.html`), 'utf8'), /data-help-name/, `${type}: help lives in locales/`);
        // Every key the node's sources use exists in its catalogue.
        const sources = fs.readdirSync(repoPath('nodes', type)).filter((f) => f.endsWith('.ts')).map((f) => fs.readFileSync(repoPath('nodes', type, f), 'utf8')).join('\n');
        for (const m of sources.matchAll(/\bt\('([a-z-]+\.[a-z0-9.-]+)'/g)) assert.ok(keys(en).includes(`${type}.${m[1]}`), `${type}: ${m[1]} is in en-US`);
      }
    });
  });

  describe('busy devices by resolved address', () => {
    async function addressOf(name: string): Promise<string> {
      const backend = await backendOf('adapter');
      return (await backend.scheduler.findDevice(name, { timeoutMs: 3000 })).address;
    }

    it('rejects a request for the same device by its address while another node updates it by name', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('a', { whenBusy: 'reject' }), ...watch('a'), flashNodeDef('b', { whenBusy: 'reject' }), ...watch('b'), ...catchAll(['a', 'b'])]);
      const address = await addressOf('esp32-line-02');
      const done = nextInput(helper.getNode('a-out'));
      const refused = nextError('b');
      const statusesA = statusesOf('a');
      helper.getNode('a')?.receive({ payload: image('1.1.0', 'esp32', 600 * 1024), device: 'esp32-line-02' });
      await until('node a transferring', () => texts(statusesA).some((t) => /\d+% /.test(t)));
      helper.getNode('b')?.receive({ payload: image('1.2.0'), device: address });
      const error = await refused;
      assert.equal(error.code, 'DEVICE_BUSY');
      assert.match(String(error.message), new RegExp(address, 'i'));
      assert.equal(((await done).payload as Json).after.version, '1.1.0');
    });

    it('queues a second node behind the first and says so on its status', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('a'), ...watch('a'), flashNodeDef('b'), ...watch('b'), ...catchAll(['a', 'b'])]);
      const address = await addressOf('esp32-line-03');
      const statuses = statusesOf('b');
      const statusesA = statusesOf('a');
      const first = nextInput(helper.getNode('a-out'));
      const second = nextInput(helper.getNode('b-out'));
      helper.getNode('a')?.receive({ payload: image('1.1.0', 'esp32', 600 * 1024), device: 'esp32-line-03' });
      // B asks once A holds the device (A is transferring).
      await until('node a transferring', () => texts(statusesA).some((t) => /\d+% /.test(t)));
      helper.getNode('b')?.receive({ payload: image('1.2.0'), device: address });
      const [a, b] = [(await first).payload as Json, (await second).payload as Json];
      assert.equal(a.after.version, '1.1.0');
      assert.equal(b.before.version, '1.1.0');
      assert.equal(b.after.version, '1.2.0');
      assert.ok(texts(statuses).some((t) => /waiting, busy in ota flash a/.test(t)), texts(statuses).join(' | '));
    });
  });

  it('reads device, file and version from typedInput settings (env, msg)', async () => {
    process.env.OTA_TEST_DEVICE = 'esp32-line-05';
    try {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('flash', { device: 'OTA_TEST_DEVICE', deviceType: 'env', expectedVersion: 'wanted', expectedVersionType: 'msg' }), ...watch('flash'), ...catchAll(['flash'])]);
      const refused = nextError('flash');
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), wanted: '9.9.9' });
      assert.equal((await refused).code, 'VERSION_MISMATCH');
      const flashed = nextInput(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), wanted: '1.1.0' });
      assert.equal(((await flashed).payload as Json).device.name, 'esp32-line-05');
    } finally {
      delete process.env.OTA_TEST_DEVICE;
    }
  });

  describe('skip if the device already runs this image', () => {
    it('is on by default: the second request for the same image sends nothing', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('flash'), ...watch('flash'), ...catchAll(['flash'])]);
      const results = collect(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-04' });
      await until('first result', () => results.length === 1);
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-04' });
      await until('second result', () => results.length === 2);
      const [first, second] = results.map((m) => m.payload as Json);
      assert.ok(first.bytes > 0 && !first.skipped);
      assert.equal(second.skipped, true);
      assert.equal(second.bytes, 0);
      assert.equal(second.after.version, '1.1.0');
      assert.equal(second.after.imageSha256, first.after.imageSha256);
      assert.equal(second.fileSha256, first.fileSha256);
    });

    it('flashes again when the option is off', async () => {
      await loadFlow(otaNodes, [TAB, simAdapter('adapter'), flashNodeDef('flash', { skipSameImage: false }), ...watch('flash'), ...catchAll(['flash'])]);
      const results = collect(helper.getNode('flash-out'));
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-04' });
      await until('first result', () => results.length === 1);
      helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'esp32-line-04' });
      await until('second result', () => results.length === 2);
      assert.ok(!(results[1].payload as Json).skipped && (results[1].payload as Json).bytes > 0);
    });
  });

  it('queues more than ten sessions without a MaxListenersExceededWarning (one node, and twelve nodes waiting for one device)', async () => {
    const devices = Array.from({ length: 14 }, (_, i) => `node-${String(i + 1).padStart(2, '0')}`);
    const waiters = Array.from({ length: 12 }, (_, i) => `w${i + 1}`);
    await loadFlow(otaNodes, [
      TAB,
      simAdapter('adapter', { simDevices: devices.join('\n'), maxConnections: 1 }),
      flashNodeDef('flash'),
      ...watch('flash'),
      ...waiters.flatMap((id) => [flashNodeDef(id, { skipSameImage: false }), ...watch(id)]),
      ...catchAll(['flash', ...waiters]),
    ]);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const results = collect(helper.getNode('flash-out'));
      for (const d of devices) helper.getNode('flash')?.receive({ payload: image('1.1.0', 'esp32', 32 * 1024), device: d });
      await until('every result', () => results.length === devices.length, 25000);
      const waited = waiters.map((id) => collect(helper.getNode(`${id}-out`)));
      for (const id of waiters) helper.getNode(id)?.receive({ payload: image('1.2.0', 'esp32', 32 * 1024), device: 'node-01' });
      await until('every waiting node done', () => waited.every((list) => list.length === 1), 25000);
      await wait(50);
      assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
