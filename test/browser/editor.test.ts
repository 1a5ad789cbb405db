/**
 * The editor in Debian's Chromium (playwright-core, headless): the palette shows our nodes under
 * "ESP32 OTA", every edit dialog opens, and an example imports and deploys. Node-RED runs as its own
 * process with a fresh user directory that has this package installed.
 */
import { strict as assert } from 'assert';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Json } from '../nodes/support';
import { repoRoot } from '../helpers/paths';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium';
import { nodeRedBin } from '../helpers/node-red-under-test';
import { freePort } from '../helpers/free-port';

const root = repoRoot();
const pkgName = 'node-red-contrib-esp32-ble-ota';
/** The HTTP example's bearer token (its /ota answers 401 without one). */
const TOKEN = 'browser-test-token';


async function startNodeRed(userDir: string, port: number): Promise<ChildProcess> {
  fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', pkgName), 'dir');
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'browser-test', version: '0.0.1', dependencies: { [pkgName]: 'file:..' } }));
  fs.writeFileSync(path.join(userDir, 'flows.json'), '[]');
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', uiPort: ${port}, flowFile: 'flows.json', credentialSecret: 'browser-test', editorTheme: { tours: false, projects: { enabled: false } }, diagnostics: { enabled: false }, telemetry: { enabled: false }, logging: { console: { level: 'warn' } } };\n`,
  );
  const red = spawn(process.execPath, [nodeRedBin, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTA_HTTP_TOKEN: TOKEN } });
  let output = '';
  red.stdout?.on('data', (d) => (output += d));
  red.stderr?.on('data', (d) => (output += d));
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/settings`);
      if (res.ok) return red;
    } catch {
      // not listening yet
    }
    if (red.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  red.kill();
  throw new Error(`Node-RED did not start:\n${output}`);
}

describe('editor in Chromium', function () {
  this.timeout(60000);
  let red: ChildProcess | null = null;
  let context: BrowserContext | null = null;
  let page: Page;
  let base = '';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-browser-'));

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      if (process.env.CI) throw new Error(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`);
      console.log(`    skipped: ${CHROMIUM} not installed (apt-get install chromium); in CI this test must run`);
      this.skip();
    }
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    red = await startNodeRed(path.join(tmp, 'user'), port);
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 800 } });
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${base}/`);
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="ble-ota-flash"]', { timeout: 20000 });
  });

  after(async () => {
    await context?.close();
    if (red && red.exitCode === null) {
      const exited = new Promise((resolve) => red?.once('exit', resolve));
      red.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('shows the OTA nodes in the "ESP32 OTA" palette category and registers the adapter config node', async () => {
    for (const type of ['ble-ota-scan', 'ble-ota-flash', 'ble-ota-verify']) {
      const node = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
      assert.equal(await node.count(), 1, type);
      const category = await node.evaluate((el) => el.closest('.red-ui-palette-category')?.id ?? '');
      assert.match(category, /ESP32/, `${type} sits in ${category}`);
    }
    const adapter = await page.evaluate(() => {
      const def = (globalThis as unknown as { RED: { nodes: { getType(t: string): { category: string } | null } } }).RED.nodes.getType('ble-ota-adapter');
      return def?.category;
    });
    assert.equal(adapter, 'config');
  });

  for (const [type, field] of [
    ['ble-ota-flash', '#node-input-adapter'],
    ['ble-ota-verify', '#node-input-onPass'],
    ['ble-ota-scan', '#node-input-olderThan'],
    ['ble-ota-rollout', '#node-input-waves-container'],
  ]) {
    it(`opens the edit dialog of ${type} with its help`, async () => {
      await page.evaluate((t) => {
        const RED = (globalThis as unknown as { RED: Json }).RED;
        const result = RED.view.importNodes([{ id: `edit-${t}`, type: t, x: 200, y: 200, z: RED.workspaces.active(), wires: [] }], { generateIds: false, addFlow: false });
        RED.editor.edit(RED.nodes.node(`edit-${t}`) ?? result?.nodes?.[0]);
      }, type);
      await page.waitForSelector(field, { state: 'visible' });
      await page.click('#node-dialog-cancel');
      await page.waitForSelector(field, { state: 'detached' });
    });
  }

  it('opens the edit dialog of the ble-ota-adapter config node', async () => {
    await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      RED.editor.editConfig('', 'ble-ota-adapter', '_ADD_', 'node-input-adapter');
    });
    await page.waitForSelector('#node-config-input-mode', { state: 'visible' });
    assert.equal(await page.locator('#node-config-input-fleetKey').getAttribute('type'), 'password');
    // A new adapter is the real one: the simulator is an explicit choice.
    assert.equal(await page.locator('#node-config-input-mode').inputValue(), 'hci');
    assert.equal(await page.locator('#node-config-input-masterKey').getAttribute('type'), 'password');
    // The simulated fleet's release keys and development switch: secure by default (switch off).
    await page.selectOption('#node-config-input-mode', 'sim');
    await page.waitForSelector('#node-config-input-simReleaseKeys', { state: 'visible' });
    assert.equal(await page.locator('#node-config-input-simDevelopment').isChecked(), false);
    await page.click('#node-config-dialog-cancel');
  });

  it('edits the rollout waves as a list: canary of one, then 100 %, saved back as [{count}, {percent}]', async () => {
    await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      RED.view.importNodes([{ id: 'waves-rollout', type: 'ble-ota-rollout', x: 300, y: 400, z: RED.workspaces.active(), wires: [[], []] }], { generateIds: false, addFlow: false });
      RED.editor.edit(RED.nodes.node('waves-rollout'));
    });
    await page.waitForSelector('#node-input-waves-container', { state: 'visible' });
    assert.equal(await page.locator('#node-input-waves-container > li').count(), 2);
    assert.deepEqual(await page.locator('#node-input-waves-container select').evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value)), ['count', 'percent']);
    await page.click('#node-dialog-ok');
    const waves = await page.evaluate(() => (globalThis as unknown as { RED: Json }).RED.nodes.node('waves-rollout').waves);
    assert.deepEqual(waves, [{ count: 1 }, { percent: 100 }]);
  });

  it('opens the edit dialog of the ble-ota-plant config node: password as a password field, verify server on', async () => {
    await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      RED.editor.editConfig('', 'ble-ota-plant', '_ADD_', 'node-input-plant');
    });
    await page.waitForSelector('#node-config-input-broker', { state: 'visible' });
    assert.equal(await page.locator('#node-config-input-password').getAttribute('type'), 'password');
    assert.equal(await page.locator('#node-config-input-tlsRejectUnauthorized').isChecked(), true);
    const checks = await page.evaluate(() => {
      const def = (globalThis as unknown as { RED: Json }).RED.nodes.getType('ble-ota-plant');
      const ok = (field: string, value: unknown) => def.defaults[field].validate.call({}, value) as boolean;
      return [ok('broker', 'mqtts://broker:8883'), ok('broker', 'http://broker'), ok('broker', 'mqtt://u:p@broker'), ok('prefix', 'a/+/b'), ok('gatewayId', 'gw/1'), ok('gatewayId', 'gw-a')];
    });
    assert.deepEqual(checks, [true, false, false, false, false, true]);
    await page.click('#node-config-dialog-cancel');
  });

  it('validates ranges and the fleet key format, and offers typedInput for device, file and version', async () => {
    const checks = await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      const adapter = RED.nodes.getType('ble-ota-adapter');
      const scan = RED.nodes.getType('ble-ota-scan');
      const flash = RED.nodes.getType('ble-ota-flash');
      const ok = (def: Json, field: string, value: unknown, self: Json = {}) => def.defaults[field].validate.call(self, value) as boolean;
      const key = (value: string) => adapter.credentials.fleetKey.validate.call({}, value) as boolean;
      return {
        defaultMode: adapter.defaults.mode.value,
        scanWindowNegative: ok(adapter, 'scanSeconds', '-5'),
        scanWindowFine: ok(adapter, 'scanSeconds', '5'),
        connectionsZero: ok(adapter, 'maxConnections', '0'),
        keyShort: key('abcd'),
        keyNotHex: key('z'.repeat(64)),
        keyFine: key('0f'.repeat(32)),
        keyEmpty: key(''),
        scanRssi: ok(scan, 'minRssi', '-500'),
        scanOlder: ok(scan, 'olderThan', 'latest'),
        attempts: ok(flash, 'maxAttempts', '0'),
        typed: ['deviceType', 'filenameType', 'expectedVersionType'].every((f) => flash.defaults[f].value === 'str'),
      };
    });
    assert.deepEqual(checks, {
      defaultMode: 'hci', scanWindowNegative: false, scanWindowFine: true, connectionsZero: false,
      keyShort: false, keyNotHex: false, keyFine: true, keyEmpty: true, scanRssi: false, scanOlder: false, attempts: false, typed: true,
    });
    await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      RED.view.importNodes([{ id: 'typed-flash', type: 'ble-ota-flash', x: 300, y: 300, z: RED.workspaces.active(), wires: [] }], { generateIds: false, addFlow: false });
      RED.editor.edit(RED.nodes.node('typed-flash'));
    });
    // typedInput marks its input and puts its own widget right after it.
    for (const field of ['device', 'filename', 'expectedVersion']) {
      await page.waitForSelector(`#node-input-${field}.red-ui-typedInput + .red-ui-typedInput-container`, { state: 'attached', timeout: 10000 });
    }
    await page.click('#node-dialog-cancel');
  });

  it('imports "Update via HTTP" from the package examples and deploys it', async () => {
    const exampleUrl = `${base}/library/examples/flows/${pkgName}/Update%20via%20HTTP`;
    const res = await fetch(exampleUrl);
    assert.equal(res.status, 200, `example served at ${exampleUrl}`);
    const flow = await res.json();
    // A fresh editor (the dialogs above leave nothing behind that matters), then the Import dialog
    // as a user pastes a flow.
    await page.reload();
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="ble-ota-flash"]');
    await page.evaluate(() => (globalThis as unknown as { RED: Json }).RED.actions.invoke('core:show-import-dialog'));
    await page.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'visible' });
    await page.fill('#red-ui-clipboard-dialog-import-text', JSON.stringify(flow));
    await page.press('#red-ui-clipboard-dialog-import-text', 'End'); // the dialog validates on keyup
    await page.click('#red-ui-clipboard-dialog-ok');
    await page.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'hidden' });
    // Headless, the editor does not always flag the import as a change; mark it so Deploy sends it.
    await page.evaluate(() => {
      const RED = (globalThis as unknown as { RED: Json }).RED;
      if (!RED.nodes.dirty()) RED.nodes.dirty(true);
      RED.actions.invoke('core:deploy-flows');
    });
    let deployed: Array<{ type: string }> = [];
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && !deployed.some((n) => n.type === 'ble-ota-flash')) {
      await new Promise((r) => setTimeout(r, 200));
      deployed = (await (await fetch(`${base}/flows`, { headers: { 'Node-RED-API-Version': 'v1' } })).json()) as Array<{ type: string }>;
    }
    assert.ok(deployed.some((n) => n.type === 'ble-ota-flash'));
    assert.ok(deployed.some((n) => n.type === 'ble-ota-adapter'));
    // The editor keeps the example's safety settings (they are node defaults, not dropped on deploy).
    const flash = deployed.find((n) => n.type === 'ble-ota-flash') as unknown as Json;
    assert.deepEqual([flash.skipSameImage, String(flash.maxImageKB), flash.firmwareDir, flash.allowedHosts], [true, '16384', '', '']);
    // Secure by default survives the import: the example's simulated line is not a development build.
    const adapterNode = deployed.find((n) => n.type === 'ble-ota-adapter') as unknown as Json;
    assert.deepEqual([adapterNode.simDevelopment, adapterNode.simReleaseKeys], [false, '']);
    // The deployed flow answers: a bad image is refused with 400 before any BLE activity.
    const reply = await fetch(`${base}/ota?device=esp32-line-01`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKEN}` }, body: Buffer.from('definitely not firmware') });
    assert.equal(reply.status, 400);
    // The example's adapter is a simulated fleet: the nodes' status says SIM in the editor.
    await page.locator('.red-ui-flow-node-status-label', { hasText: /^SIM · / }).first().waitFor({ state: 'attached', timeout: 15000 });
    await page.waitForTimeout(500);
    const shots = path.join(root, 'dist', 'test-artifacts');
    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'editor-http-example.png') });
    await page.screenshot({ path: path.join(shots, 'editor-simulated-adapter-status.png') });
  });
});
