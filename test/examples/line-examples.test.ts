/**
 * "Scan and update outdated devices" and "Test-then-confirm on the line" run as shipped (on the
 * virtual clock), with OTA_FIRMWARE_FILE pointing at a generated image and its signed manifest next to
 * it, on keyed devices (per-device keys from the adapter's Master key, release keys: manifests required).
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KEYED, coreNodes, examplesDir, helper, loadFlow, otaNodes, readExample, signImage, testFlow } from './support';
import { collect, image, nextInput, type Json } from '../nodes/support';

describe('examples for the line', function () {
  this.timeout(20000);
  let file = '';

  before(() => {
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ota-example-')), 'app-1.1.0.bin');
    fs.writeFileSync(file, image('1.1.0'));
    fs.writeFileSync(`${file}.manifest`, signImage(image('1.1.0')));
    process.env.OTA_FIRMWARE_FILE = file;
  });

  after(() => {
    delete process.env.OTA_FIRMWARE_FILE;
  });

  afterEach(() => helper.unload());

  it('every example has a comment node and uses only nodes the package or Node-RED core provide', () => {
    /** The one exception, by name: the dashboard example needs FlowFuse Dashboard 2.0 (ui-*), an optional dependency of that example only. */
    const DASHBOARD_EXAMPLE = 'Plant dashboard.json';
    for (const name of fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json'))) {
      const nodes = readExample(path.basename(name, '.json'));
      assert.ok(nodes.some((n) => n.type === 'comment' && String(n.info).length > 50), `${name} explains itself`);
      const allowed = name === DASHBOARD_EXAMPLE ? /^(ble-ota-|mqtt|http|function|change|inject|debug|comment|catch|ui-)/ : /^(ble-ota-|mqtt|http|function|change|inject|debug|comment|catch)/;
      for (const n of nodes) assert.match(n.type, allowed, `${name}: ${n.type}`);
    }
  });

  it('"Scan and update outdated devices" updates only the devices older than 1.1.0', async () => {
    const fleet = ['esp32-line-01:esp32:1.0.0', 'esp32-line-02:esp32:1.1.0', 'esp32-line-03:esp32:0.9.0', 'other-1:esp32:0.1.0'].join('\n');
    await loadFlow([...otaNodes, ...coreNodes], testFlow('Scan and update outdated devices', { simDevices: fleet, ...KEYED }));
    const updated = collect(helper.getNode('scan-updated'));
    const errors = collect(helper.getNode('scan-errors'));
    const both = new Promise<void>((resolve) => helper.getNode('scan-updated')?.on('input', () => updated.length === 2 && resolve()));
    helper.getNode('scan-inject')?.receive({});
    await both;
    assert.deepEqual(errors, []);
    const names = updated.map((m) => (m.payload as Json).device.name).sort();
    assert.deepEqual(names, ['esp32-line-01', 'esp32-line-03']);
  });

  it('"Scan and update outdated devices" without OTA_FIRMWARE_FILE reports NO_FIRMWARE (not the scan result as a bad payload)', async () => {
    delete process.env.OTA_FIRMWARE_FILE;
    try {
      await loadFlow([...otaNodes, ...coreNodes], testFlow('Scan and update outdated devices', { simDevices: 'esp32-line-01:esp32:1.0.0', ...KEYED }));
      const error = nextInput(helper.getNode('scan-errors'));
      helper.getNode('scan-inject')?.receive({});
      const caught = (await error).error as Json;
      assert.equal(caught.code, 'NO_FIRMWARE');
      assert.match(String(caught.message), /no firmware given/);
    } finally {
      process.env.OTA_FIRMWARE_FILE = file;
    }
  });

  it('the MQTT example needs no environment: its broker is localhost:1883', () => {
    const broker = readExample('Update on MQTT request').find((n) => n.type === 'mqtt-broker') as Json;
    assert.deepEqual([broker.broker, broker.port, broker.protocolVersion], ['localhost', '1883', '5']);
    for (const name of fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json'))) {
      // Every ${ENV} in an example is one the nodes read as "not configured" when unset.
      for (const m of fs.readFileSync(path.join(examplesDir, name), 'utf8').matchAll(/"(\w+)": "\$\{(\w+)\}"/g)) {
        assert.ok(['filename', 'firmwareDir', 'allowedHosts'].includes(m[1]), `${name}: ${m[1]} uses \${${m[2]}}`);
      }
    }
  });

  it('"Test-then-confirm on the line" confirms station-a and rolls station-b back', async () => {
    // CONFIRM and ROLLBACK are tagged with each device's own key.
    await loadFlow([...otaNodes, ...coreNodes], testFlow('Test-then-confirm on the line', KEYED));
    const confirmed = nextInput(helper.getNode('confirm-confirmed'));
    helper.getNode('confirm-inject-a')?.receive({});
    const a = (await confirmed).payload as Json;
    assert.equal(a.action, 'confirmed');
    const rolledBack = nextInput(helper.getNode('confirm-rolled-back'));
    helper.getNode('confirm-inject-b')?.receive({});
    const b = (await rolledBack).payload as Json;
    assert.equal(b.passed, false);
    assert.equal(b.action, 'rolled-back');
  });

  it('"Scan and update outdated devices" on keyed devices refuses an image without its manifest (MANIFEST_REQUIRED)', async () => {
    const unsigned = path.join(path.dirname(file), 'unsigned-1.1.0.bin');
    fs.writeFileSync(unsigned, image('1.1.0'));
    process.env.OTA_FIRMWARE_FILE = unsigned;
    try {
      await loadFlow([...otaNodes, ...coreNodes], testFlow('Scan and update outdated devices', { simDevices: 'esp32-line-01:esp32:1.0.0', ...KEYED }));
      const error = nextInput(helper.getNode('scan-errors'));
      helper.getNode('scan-inject')?.receive({});
      assert.equal(((await error).error as Json).code, 'MANIFEST_REQUIRED');
    } finally {
      process.env.OTA_FIRMWARE_FILE = file;
    }
  });

  it('the examples ship secure: no key in the flow, the simulated adapters are not development builds', () => {
    for (const name of fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json'))) {
      for (const adapter of readExample(path.basename(name, '.json')).filter((n) => n.type === 'ble-ota-adapter')) {
        assert.equal(adapter.simDevelopment, false, `${name}: ${adapter.id}`);
        assert.equal(adapter.credentials, undefined, `${name}: ${adapter.id} carries no credentials`);
      }
    }
  });

  it('development build (the documented opt-out): "Scan and update outdated devices" without keys or manifest', async () => {
    const unsigned = path.join(path.dirname(file), 'dev-1.1.0.bin');
    fs.writeFileSync(unsigned, image('1.1.0'));
    process.env.OTA_FIRMWARE_FILE = unsigned;
    try {
      await loadFlow([...otaNodes, ...coreNodes], testFlow('Scan and update outdated devices', { simDevices: 'esp32-line-01:esp32:1.0.0', simDevelopment: true }), {});
      const updated = nextInput(helper.getNode('scan-updated'));
      helper.getNode('scan-inject')?.receive({});
      assert.equal(((await updated).payload as Json).device.name, 'esp32-line-01');
    } finally {
      process.env.OTA_FIRMWARE_FILE = file;
    }
  });
});
