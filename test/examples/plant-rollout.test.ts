/**
 * The plant, whole: three gateway runtimes and a coordinator runtime (four real Node-RED processes, the
 * "Plant gateway" and "Plant rollout" examples), one MQTT broker (aedes on 127.0.0.1, or MQTT_URL: mosquitto in
 * CI), and the plant simulator as its own process (33 devices in one air, each heard by two gateways). One
 * campaign: a canary wave, a wave during which a gateway process is killed, a coordinator process killed and
 * started again, and a last wave aborted by failing diagnostics. Every device ends updated exactly once
 * (the simulator counts the boot switches into a new image on each device) or reported with a reason, and
 * the campaign's retained state agrees with the devices.
 */
import * as assert from 'assert';
import { createPrivateKey, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import * as mqtt from 'mqtt';
import { appHash, buildAppImage, fileSha256 } from '../../lib/image';
import { generateReleaseKeyPair, manifestForImage } from '../../lib/security';
import type { CampaignState, ExecutionStatus, GatewayPresence, GatewaySightings } from '../../lib/plant/messages';
import { PlantControlClient, type PlantDeviceInfo } from '../../lib/sim/plant';
import { startNodeRedProcess, type NodeRedProcess } from '../helpers/node-red-process';
import { repoPath } from '../helpers/paths';
import { startAedes, type TestBroker } from '../plant/aedes-broker';
import { readExample } from './support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { launchPlantSim } = require(repoPath('scripts', 'plant-sim-launch.js')) as {
  launchPlantSim(options: { layoutFile: string; onLog?: (line: string) => void }): Promise<{ hciPort: number; controlPort: number; stop(): Promise<void> }>;
};

// A prefix of this run's own: a shared broker (mosquitto in CI) may still hold an earlier run's retained records.
const PREFIX = `ble-ota/plant-test-${randomBytes(4).toString('hex')}`;
const ROOT = `${PREFIX}/v1`;
const GATEWAYS = ['gw-a', 'gw-b', 'gw-c'] as const;
const TOKEN = randomBytes(12).toString('hex');

/** Devices in address order (the coordinator's wave order): 18 good, 3 that fail their diagnostics, 12 good. */
interface PlannedDevice {
  name: string;
  address: string;
  failing: boolean;
  rssi: Record<string, number>;
}

function plannedDevices(): PlannedDevice[] {
  const out: PlannedDevice[] = [];
  for (let i = 1; i <= 33; i++) {
    const failing = i >= 19 && i <= 21;
    const primary = GATEWAYS[i % 3];
    const secondary = GATEWAYS[(i + 1) % 3];
    out.push({
      name: failing ? `line-diag-${i - 18}` : `line-${String(i).padStart(2, '0')}`,
      address: `0a:00:00:00:00:${i.toString(16).padStart(2, '0')}`,
      failing,
      rssi: { [primary]: -50 - (i % 5), [secondary]: -72 },
    });
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

function post(port: number, urlPath: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: urlPath, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length, authorization: `Bearer ${TOKEN}` } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** What the test sees of the plant on the broker (retained and live). */
class PlantWatcher {
  readonly presence = new Map<string, GatewayPresence>();
  readonly sightings = new Map<string, GatewaySightings>();
  readonly executions = new Map<string, ExecutionStatus>();
  /** Every execution status ever seen, in order. */
  readonly history: ExecutionStatus[] = [];
  campaign: CampaignState | null = null;

  constructor(private readonly client: mqtt.MqttClient) {
    client.on('message', (topic, payload) => this.take(topic, payload));
  }

  private take(topic: string, payload: Buffer): void {
    if (!payload.length) return;
    let message: unknown;
    try {
      message = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const levels = topic.slice(ROOT.length + 1).split('/');
    if (levels[0] === 'gateways' && levels[2] === 'presence') this.presence.set(levels[1], message as GatewayPresence);
    else if (levels[0] === 'gateways' && levels[2] === 'sightings') this.sightings.set(levels[1], message as GatewaySightings);
    else if (levels[0] === 'campaigns' && levels[2] === 'executions') {
      const status = message as ExecutionStatus;
      this.executions.set(status.device.address, status);
      this.history.push(status);
    } else if (levels[0] === 'campaigns' && levels[2] === 'state') this.campaign = message as CampaignState;
  }

  seenAddresses(): Set<string> {
    const out = new Set<string>();
    for (const [gateway, s] of this.sightings) if (this.presence.get(gateway)?.state === 'online') for (const d of s.devices) out.add(d.address);
    return out;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }
}

describe('plant rollout: three gateway runtimes, a coordinator runtime, one broker, 33 simulated devices', function () {
  this.timeout(600000);
  const devices = plannedDevices();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'plant-rollout-'));
  const firmwareDir = path.join(work, 'firmware');
  const masterKey = randomBytes(32).toString('hex');
  const release = generateReleaseKeyPair();
  const image = buildAppImage({ chip: 'esp32', version: '1.1.0', projectName: 'plant-line', secureVersion: 0, size: 96 * 1024, seed: 12 });
  const imageFile = 'plant-line-1.1.0.bin';
  const imageSha = fileSha256(image).toString('hex');
  const newAppSha = appHash(image).toString('hex');
  let broker: TestBroker | null = null;
  let brokerUrl = process.env.MQTT_URL ?? '';
  let plant: { hciPort: number; controlPort: number; stop(): Promise<void> } | null = null;
  let control: PlantControlClient | null = null;
  const gateways = new Map<string, NodeRedProcess>();
  let coordinator: NodeRedProcess | null = null;
  let watcher: PlantWatcher | null = null;
  const plantLog: string[] = [];

  function gatewayFlow(id: string): { flows: object[]; credentials: Record<string, Record<string, string>> } {
    const flows: object[] = [{ id: 'gw-tab', type: 'tab', label: `gateway ${id}` }];
    let adapterId = '';
    for (const node of readExample('Plant gateway') as Array<Record<string, unknown>>) {
      if (node.type === 'tab') continue;
      if (node.type === 'ble-ota-adapter') {
        adapterId = String(node.id);
        flows.push({ ...node, mode: 'plant', simPlant: `127.0.0.1:${plant!.hciPort}`, simGateway: id, maxConnections: '3' });
      } else if (node.type === 'ble-ota-plant') flows.push({ ...node, broker: brokerUrl, prefix: PREFIX, gatewayId: id, scanWindow: '1', scanEvery: '2', sightingsEvery: '2' });
      else flows.push({ ...node, z: node.z ? 'gw-tab' : undefined });
    }
    return { flows, credentials: { [adapterId]: { masterKey } } };
  }

  function coordinatorFlow(): object[] {
    const nodes = readExample('Plant rollout') as Array<Record<string, unknown>>;
    const url = new URL(brokerUrl);
    return [
      { id: 'coord-tab', type: 'tab', label: 'coordinator' },
      ...nodes.map((node) => {
        const z = node.z ? { z: 'coord-tab' } : {};
        if (node.type === 'ble-ota-plant') return { ...node, broker: brokerUrl, prefix: PREFIX };
        if (node.type === 'mqtt-broker') return { ...node, broker: url.hostname, port: url.port };
        if (node.type === 'ble-ota-rollout') return { ...node, ...z, firmwareDir };
        return { ...node, ...z };
      }),
    ];
  }

  async function startGateway(id: string): Promise<void> {
    const { flows, credentials } = gatewayFlow(id);
    gateways.set(id, await startNodeRedProcess({ name: id, flows, credentials }));
  }

  async function startCoordinator(userDir?: string): Promise<void> {
    coordinator = await startNodeRedProcess({ name: 'coordinator', flows: coordinatorFlow(), env: { OTA_HTTP_TOKEN: TOKEN, OTA_FIRMWARE_DIR: firmwareDir }, userDir });
  }

  async function plantDevices(): Promise<Map<string, PlantDeviceInfo>> {
    const answer = await control!.command({ cmd: 'devices' });
    return new Map((answer.devices as PlantDeviceInfo[]).map((d) => [d.address, d]));
  }

  before(async function () {
    fs.mkdirSync(firmwareDir, { recursive: true });
    fs.writeFileSync(path.join(firmwareDir, imageFile), image);
    fs.writeFileSync(path.join(firmwareDir, `${imageFile}.manifest`), manifestForImage(image, {}, createPrivateKey(release.privateKeyPem)).bytes);
    if (!brokerUrl) {
      broker = await startAedes();
      brokerUrl = broker.url;
    }
    const layout = {
      gateways: [...GATEWAYS],
      devices: devices.map((d) => ({
        name: d.name,
        address: d.address,
        chip: 'esp32',
        version: '1.0.0',
        ...(d.failing ? { diagnostics: 'fail' } : {}),
        rssi: d.rssi,
      })),
      keys: { masterKey, releaseKeys: [release.publicKeySec1.toString('hex')] },
      link: 'reference',
      clock: 'real',
    };
    const layoutFile = path.join(work, 'plant.json');
    fs.writeFileSync(layoutFile, JSON.stringify(layout));
    plant = await launchPlantSim({ layoutFile, onLog: (line) => plantLog.push(line) });
    control = new PlantControlClient('127.0.0.1', plant.controlPort);
    const client = mqtt.connect(brokerUrl, { clientId: `plant-test-${process.pid}`, protocolVersion: 4, reconnectPeriod: 500 });
    watcher = new PlantWatcher(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => client.subscribe(`${ROOT}/#`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      client.once('error', reject);
    });
    for (const id of GATEWAYS) await startGateway(id);
    await startCoordinator();
  });

  after(async function () {
    const all = [...gateways.values(), ...(coordinator ? [coordinator] : [])];
    if (this.currentTest?.state === 'failed') {
      for (const p of all) console.log(`---- ${p.name} (last lines)\n${p.output().split('\n').slice(-40).join('\n')}`);
      console.log(`---- plant simulator\n${plantLog.slice(-40).join('\n')}`);
    }
    await Promise.all(all.map((p) => p.stop().catch(() => undefined)));
    control?.close();
    await plant?.stop();
    await watcher?.close();
    await broker?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('a canary, a gateway killed mid-wave, a coordinator restarted, a wave aborted by failing diagnostics: every device installed once or reported', async () => {
    const w = watcher!;
    // The gateways join: presence online, and between them they see every device.
    await until('three gateways online', 60000, () => GATEWAYS.every((g) => w.presence.get(g)?.state === 'online'));
    await until('every device sighted', 60000, () => devices.every((d) => w.seenAddresses().has(d.address)));

    const started = await post(coordinator!.port, '/rollout/start', {
      id: 'plant-it',
      name: 'line update 1.1.0',
      image: { file: imageFile, sha256: imageSha },
      target: { namePrefix: 'line-' },
      // canary 3, then 15 (the gateway dies in it), then the rest: 3 failing devices lead it, 2 failures abort.
      waves: [{ count: 3 }, { count: 15 }, { percent: 100, maxFailures: 2 }],
      maxConcurrent: 6,
      deviceTimeoutMs: 180000,
      confirm: true,
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));

    // Wave 2 running with installs of gw-b in progress: kill gw-b's process (its broker connection drops, its will
    // says offline; its adapter, the TCP link to the plant, dies with it and the devices see the link loss).
    const waveTwo = new Set(devices.slice(3, 18).map((d) => d.address));
    const onB = await until('wave 2 devices in progress on gw-b', 240000, () => {
      const running = [...w.executions.values()].filter((e) => e.gateway === 'gw-b' && e.state === 'in-progress' && waveTwo.has(e.device.address) && (e.progress?.bytesSent ?? 0) > 0);
      return running.length >= 1 ? running.map((e) => e.device.address) : null;
    });
    await gateways.get('gw-b')!.kill();
    await until('gw-b offline', 30000, () => w.presence.get('gw-b')?.state === 'offline');

    // Some of wave 2 done after the kill: kill the coordinator's process too, and start it again on its user directory.
    await until('8 devices of wave 2 finished', 300000, () => w.campaign && w.campaign.devices.filter((d) => waveTwo.has(d.address) && d.state === 'succeeded').length >= 8);
    const userDir = coordinator!.userDir;
    await coordinator!.kill();
    await startCoordinator(userDir);

    const final = await until('the campaign to end', 420000, () => (w.campaign && ['completed', 'aborted', 'cancelled'].includes(w.campaign.state) && w.campaign.devices.every((d) => !['pending', 'assigned', 'in-progress'].includes(d.state)) ? w.campaign : null));
    await sleep(1000);
    const byAddress = new Map(final.devices.map((d) => [d.address, d]));
    const onDevices = await plantDevices();

    // The campaign: aborted in its third wave by the failing diagnostics, the first two waves complete.
    assert.equal(final.state, 'aborted', `campaign state ${final.state} (${final.reason})`);
    assert.match(String(final.reason), /wave 3/);
    assert.equal(final.devices.length, devices.length);
    for (const d of devices.slice(0, 18)) assert.equal(byAddress.get(d.address)?.state, 'succeeded', `${d.name}: ${JSON.stringify(byAddress.get(d.address))}`);

    // The devices gw-b was installing were handed to another gateway and finished there.
    for (const address of onB) {
      const record = byAddress.get(address)!;
      assert.ok(record.assignments.length >= 2, `${record.name} was re-assigned after gw-b died: ${JSON.stringify(record.assignments)}`);
      assert.notEqual(record.gateway, 'gw-b');
    }

    // Exactly once: what the devices say agrees with the campaign, device by device.
    for (const d of devices) {
      const record = byAddress.get(d.address)!;
      const device = onDevices.get(d.address)!;
      assert.ok(device.installs <= 1, `${d.name} installed ${device.installs} times`);
      assert.notEqual(device.otaState, 'pending-verify', `${d.name} was left with an unconfirmed image`);
      if (record.state === 'succeeded') {
        assert.equal(device.installs, 1, `${d.name} succeeded but installed ${device.installs} times`);
        assert.equal(device.sha256, newAppSha, `${d.name} succeeded but runs ${device.sha256}`);
      } else {
        assert.ok(record.error && record.error.code, `${d.name} ended ${record.state} without a reason`);
        // Only a gateway that could neither roll back nor read the device afterwards may leave this open, and says so.
        if (record.error.code !== 'ROLLBACK_TIMEOUT') assert.notEqual(device.sha256, newAppSha, `${d.name} ended ${record.state} (${record.error.code}) but runs the new image`);
      }
      if (d.failing) assert.ok(['rolled-back', 'failed', 'cancelled'].includes(record.state), `${d.name} (failing diagnostics) ended ${record.state}`);
    }
    const failures = final.devices.filter((r) => r.state === 'rolled-back' || r.state === 'failed');
    assert.ok(failures.length >= 2, `the abort needed 2 failures, the record has ${failures.length}`);
    assert.ok(
      failures.every((r) => devices.find((d) => d.address === r.address)?.failing),
      `only failing-diagnostics devices failed: ${failures.map((r) => `${r.name} ${r.error?.code}`).join(', ')}`,
    );
    assert.ok(final.devices.some((r) => r.state === 'cancelled'), 'the abort cancelled the devices of wave 3 not yet started');

    // The record is consistent: wave counters match the device states, and no device ran on two gateways at once.
    final.waves.forEach((wave, index) => {
      const members = final.devices.filter((r) => r.wave === index);
      assert.equal(members.length, wave.size, `wave ${index + 1} size`);
      assert.equal(wave.succeeded, members.filter((r) => r.state === 'succeeded').length, `wave ${index + 1} succeeded count`);
    });
    for (const d of devices) {
      const running = w.history.filter((e) => e.device.address === d.address && e.state === 'in-progress');
      const tasks = new Set(running.map((e) => e.taskId));
      const record = byAddress.get(d.address)!;
      assert.ok(tasks.size <= record.assignments.length, `${d.name}: ${tasks.size} tasks ran, ${record.assignments.length} assignments`);
    }
  });
});
