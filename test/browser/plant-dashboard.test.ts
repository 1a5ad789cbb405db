/**
 * The "Plant dashboard" example in Chromium: Node-RED (its own process) with this package and FlowFuse
 * Dashboard 2.0, the example's flow on an in-process aedes broker where a campaign's progress and its
 * devices' execution statuses are published as a coordinator and its gateways would; the page shows the
 * counts and a row per device, and the test keeps a screenshot. Dashboard 2.0 is an optional dependency of
 * that example only: without it installed (`npm start -- --plant` installs it into
 * .node-red-user-plant/main, OTA_DASHBOARD_DIR names another installation) the test says so and skips.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as mqtt from 'mqtt';
import { chromium, type BrowserContext } from 'playwright-core';
import { repoRoot } from '../helpers/paths';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium';
import { startNodeRedProcess, type NodeRedProcess } from '../helpers/node-red-process';
import { startBroker, type TestBroker } from '../nodes/plant-support';
import { PlantTopics } from '../../lib/plant/topics';

const root = repoRoot();
const DASHBOARD = '@flowfuse/node-red-dashboard';

/** The installed dashboard package directory, or null. */
function dashboardDir(): string | null {
  const candidates = [process.env.OTA_DASHBOARD_DIR, path.join(root, '.node-red-user-plant', 'main')].filter((d): d is string => Boolean(d));
  for (const dir of candidates) {
    const pkg = path.join(dir, 'node_modules', DASHBOARD, 'package.json');
    if (fs.existsSync(pkg)) return path.dirname(pkg);
  }
  return null;
}

/**
 * In CI the dashboard is installed for the test from the npm registry (into a cache directory outside the
 * project, never a dependency of the package); a failed install fails the test there instead of skipping it.
 */
function installDashboardForCi(): string {
  const dir = path.join(os.tmpdir(), 'ota-dashboard-ci');
  const result = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, `${DASHBOARD}@1`], { encoding: 'utf8', timeout: 300000 });
  const pkg = path.join(dir, 'node_modules', DASHBOARD);
  if (result.status !== 0 || !fs.existsSync(path.join(pkg, 'package.json'))) {
    throw new Error(`CI: npm install ${DASHBOARD}@1 failed (status ${result.status}): ${(result.stderr || String(result.error ?? '')).slice(-2000)}`);
  }
  return pkg;
}


describe('"Plant dashboard" in Chromium', function () {
  this.timeout(90000);
  let red: NodeRedProcess | null = null;
  let context: BrowserContext | null = null;
  let broker: TestBroker | null = null;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-dashboard-'));

  before(async function () {
    this.timeout(400000); // an install of the dashboard in CI takes a while
    if (process.env.CI && !fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`);
    const dashboard = dashboardDir() ?? (process.env.CI ? installDashboardForCi() : null);
    if (!fs.existsSync(CHROMIUM) || !dashboard) {
      console.log(`    skipped: ${!dashboard ? `${DASHBOARD} is not installed (an optional dependency of the dashboard example: npm start -- --plant installs it, or set OTA_DASHBOARD_DIR to a user directory that has it)` : `${CHROMIUM} not installed`}`);
      this.skip();
    }
    broker = await startBroker();
    const url = new URL(broker.url);
    const userDir = path.join(tmp, 'user');
    fs.mkdirSync(path.join(userDir, 'node_modules', '@flowfuse'), { recursive: true });
    fs.symlinkSync(dashboard as string, path.join(userDir, 'node_modules', DASHBOARD), 'dir');
    const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'Plant dashboard.json'), 'utf8')) as Array<Record<string, unknown>>;
    const flows = [{ id: 'plant-dashboard-flow', type: 'tab', label: 'Plant dashboard' }, ...example.map((n) => (n.type === 'mqtt-broker' ? { ...n, broker: url.hostname, port: url.port } : n))];
    red = await startNodeRedProcess({ name: 'dashboard', flows, userDir });
    const base = `http://127.0.0.1:${red.port}`;
    const deadline = Date.now() + 30000;
    for (;;) {
      try {
        if ((await fetch(`${base}/dashboard/rollouts`)).ok) break;
      } catch {
        // not served yet
      }
      if (Date.now() > deadline) throw new Error(`Node-RED did not serve the dashboard page:\n${red.output().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 } });
    (this as unknown as { base: string }).base = base;
  });

  after(async () => {
    await context?.close();
    await red?.stop();
    await broker?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('shows the campaign counts, a row per device and the rate chart', async function () {
    const base = (this as unknown as { base: string }).base ?? '';
    const page = context?.pages()[0] ?? (await context?.newPage());
    assert.ok(page && broker);
    await page.goto(`${base}/dashboard/rollouts`);
    await page.waitForSelector('table, .v-table', { timeout: 20000 });
    // A coordinator's progress and two gateways' execution statuses, as the plant topic tree carries them.
    const topics = new PlantTopics('ble-ota/plant');
    const client = await mqtt.connectAsync(broker.url);
    const device = (n: number) => ({ address: `aa:bb:cc:dd:ee:0${n}`, name: `esp32-line-0${n}` });
    const statuses = [
      { gateway: 'gw-a', device: device(1), state: 'succeeded', before: { version: '1.0.0', sha256: null }, after: { version: '1.1.0', sha256: null } },
      { gateway: 'gw-b', device: device(2), state: 'in-progress', progress: { phase: 'transferring', percent: 42, bytesSent: 42, bytesTotal: 100 } },
      { gateway: 'gw-a', device: device(3), state: 'failed', error: { code: 'DEVICE_DIAGNOSTICS_FAILED', message: 'diagnostics failed' } },
    ];
    const counts = { pending: 2, assigned: 0, 'in-progress': 1, succeeded: 1, skipped: 0, failed: 1, 'rolled-back': 0, cancelled: 0 };
    for (const rate of [0.5, 1.5, 2]) {
      await client.publishAsync(topics.campaignProgress('line-1.1.0'), JSON.stringify({ v: 1, campaign: 'line-1.1.0', state: 'running', at: Date.now(), wave: 1, counts, total: 5, devicesPerMinute: rate, etaMs: 120000 }));
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const s of statuses) await client.publishAsync(topics.execution('line-1.1.0', s.device.address), JSON.stringify({ v: 1, campaign: 'line-1.1.0', taskId: `t-${s.device.name}`, at: Date.now(), ...s }), { retain: true });
    await client.endAsync();
    await page.getByText('esp32-line-03').first().waitFor({ timeout: 15000 });
    await page.getByText('line-1.1.0 · running · wave 2').first().waitFor({ timeout: 15000 });
    const text = await page.locator('body').innerText();
    assert.match(text, /42 %/);
    assert.match(text, /failed: DEVICE_DIAGNOSTICS_FAILED/);
    assert.match(text, /1\.0\.0[\s\S]*1\.1\.0/);
    await page.waitForTimeout(800);
    const shots = path.join(root, 'dist', 'test-artifacts');
    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'plant-dashboard.png'), fullPage: true });
  });
});
