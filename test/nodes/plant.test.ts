/**
 * The plant nodes in the real Node-RED runtime against an in-process aedes on 127.0.0.1: configuration
 * errors of ble-ota-plant reach the rollout node's requests with their codes, the broker credentials stay
 * credentials, the rollout node refuses bad requests with typed codes, and start / pause / resume / cancel
 * reach the coordinator and come back on output 2 (a fake gateway answers the tasks). Tests that need the
 * plant library itself (bus, gateway agent, coordinator) skip with a printed reason in a build without it.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { collect, helper, helperNode, image, nextInput, simAdapter, type FlowNode, type Json } from './support';
import { FakeGateway, closedPort, needsPlantLibrary, plantNodes, retainedOn, startBroker, type TestBroker } from './plant-support';
import { fileSha256 } from '../../lib/image';
import { PlantTopics } from '../../lib/plant/topics';
import { repoPath } from '../helpers/paths';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'plant' };
const PREFIX = `test/plant${process.pid}`;

function plantConfig(settings: Record<string, unknown>): FlowNode {
  return { id: 'plant', type: 'ble-ota-plant', prefix: PREFIX, gatewayId: 'coord-runtime', ...settings };
}

function rolloutNode(settings: Record<string, unknown> = {}): FlowNode {
  return { id: 'rollout', type: 'ble-ota-rollout', z: 'tab', plant: 'plant', coordinatorId: 'coord-1', firmwareDir: '', waves: [{ count: 1 }, { percent: 100 }], wires: [['devices'], ['progress']], ...settings };
}

const WATCH: FlowNode[] = [helperNode('devices'), helperNode('progress'), { id: 'catch-rollout', type: 'catch', z: 'tab', scope: ['rollout'], uncaught: false, wires: [['caught']] }, helperNode('caught')];

async function refusal(request: Json): Promise<Json> {
  const caught = nextInput(helper.getNode('caught'), 20000);
  helper.getNode('rollout')?.receive(request);
  return (await caught).error as Json;
}

function statusesOf(id: string): string[] {
  const list: string[] = [];
  helper.getNode(id)?.on('call:status', (call: { args: Array<{ text?: string }> }) => list.push(String(call.args[0]?.text)));
  return list;
}

async function until(what: string, predicate: () => boolean, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next output-2 message with this event. */
function nextEvent(event: string, ms = 15000): Promise<Json> {
  return new Promise((resolve, reject) => {
    const node = helper.getNode('progress');
    if (!node) return reject(new Error('no progress helper'));
    const timer = setTimeout(() => reject(new Error(`no "${event}" on output 2 within ${ms} ms`)), ms);
    const onInput = (msg: Json) => {
      if (msg.event !== event) return;
      clearTimeout(timer);
      node.removeListener('input', onInput);
      resolve(msg);
    };
    node.on('input', onInput);
  });
}

describe('plant nodes in Node-RED', function () {
  this.timeout(30000);
  let broker: TestBroker;

  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());
  afterEach(() => helper.unload());

  describe('ble-ota-plant configuration errors reach the requests with their codes', () => {
    for (const [what, settings, code] of [
      ['a broker URL that is not MQTT', { broker: 'http://127.0.0.1:1883' }, 'PLANT_BAD_URL'],
      ['a broker URL with a password in it', { broker: 'mqtt://user:hunter2@127.0.0.1:1883' }, 'PLANT_BAD_URL'],
      ['a prefix with a wildcard', { broker: 'mqtt://127.0.0.1:1883', prefix: 'plant/+/ota' }, 'PLANT_BAD_ID'],
      ['a gateway id with a slash', { broker: 'mqtt://127.0.0.1:1883', gatewayId: 'line/3' }, 'PLANT_BAD_ID'],
    ] as const) {
      it(`${what}: ${code}`, async () => {
        await helper.load(plantNodes, [TAB, plantConfig(settings), rolloutNode(), ...WATCH]);
        const plant = helper.getNode('plant') as unknown as Json;
        assert.equal(plant.configError?.code, code);
        const error = await refusal({ topic: 'status' });
        assert.equal(error.code, code);
        assert.ok(!JSON.stringify(error).includes('hunter2'), 'the error does not repeat the password');
        assert.ok(!JSON.stringify(helper.log().args).includes('hunter2'), 'no log line carries the password');
      });
    }
  });

  describe('credentials', () => {
    it('keeps username and password as credentials: the node has them, the deployed flow does not, none is logged', async () => {
      await helper.load(plantNodes, [TAB, ...WATCH]);
      const port = await closedPort();
      const flow = [TAB, { ...plantConfig({ broker: `mqtt://127.0.0.1:${port}` }), credentials: { username: 'line-3', password: 'pw-Secret-123' } }, rolloutNode(), ...WATCH];
      // A deploy as the editor sends it: the credentials inline in the node (the runtime takes them out).
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const redNodes = (helper as any)._redNodes;
      await redNodes.setFlows(flow, {}, 'full');
      await until('the new flow started', () => helper.getNode('rollout') !== null && helper.getNode('plant') !== null);
      const plant = helper.getNode('plant') as unknown as Json;
      assert.deepEqual(plant.credentials, { username: 'line-3', password: 'pw-Secret-123' });
      assert.ok(!JSON.stringify(redNodes.getFlows()).includes('pw-Secret-123'), 'the deployed flow holds no password');
      assert.deepEqual(redNodes.getCredentialDefinition('ble-ota-plant'), { username: { type: 'text' }, password: { type: 'password' } });
      // A failed connection attempt is logged without the credentials.
      const error = await refusal({ topic: 'status' });
      assert.equal(error.code, 'PLANT_NOT_CONNECTED');
      assert.ok(!JSON.stringify(helper.log().args).includes('pw-Secret-123'));
    });

    it('connects to a broker that requires them', async function () {
      needsPlantLibrary(this);
      const secured = await startBroker({ username: 'line-3', password: 'pw-Secret-123' });
      try {
        await helper.load(plantNodes, [TAB, plantConfig({ broker: secured.url }), rolloutNode(), ...WATCH], { plant: { username: 'line-3', password: 'pw-Secret-123' } });
        // The coordinator answers only once it runs on the broker connection.
        const answer = nextEvent('status');
        helper.getNode('rollout')?.receive({ topic: 'status' });
        assert.deepEqual((await answer).payload, []);
        assert.equal((helper.getNode('plant') as unknown as Json).connection.state, 'connected');
        assert.ok(!JSON.stringify(helper.log().args).includes('pw-Secret-123'));
      } finally {
        // The broker's server closes once its clients are gone.
        await helper.unload();
        await secured.close();
      }
    });
  });

  describe('rollout refusals', () => {
    it('has no plant: NO_PLANT', async () => {
      await helper.load(plantNodes, [TAB, rolloutNode({ plant: '' }), ...WATCH]);
      assert.equal((await refusal({ topic: 'start', payload: { image: { sha256: 'a' }, target: {} } })).code, 'NO_PLANT');
    });

    it('an unknown topic, a control without a campaign id, a start without a campaign: ROLLOUT_BAD_REQUEST', async () => {
      await helper.load(plantNodes, [TAB, plantConfig({ broker: broker.url }), rolloutNode(), ...WATCH]);
      assert.equal((await refusal({ topic: 'reboot', payload: {} })).code, 'ROLLOUT_BAD_REQUEST');
      assert.equal((await refusal({ topic: 'pause', payload: {} })).code, 'ROLLOUT_BAD_REQUEST');
      const error = await refusal({ topic: 'start', payload: 'everything' });
      assert.equal(error.code, 'ROLLOUT_BAD_REQUEST');
      assert.match(String(error.message), /campaign as an object/);
    });

    it('a broker that is not there: PLANT_NOT_CONNECTED, and the status says so', async () => {
      const port = await closedPort();
      await helper.load(plantNodes, [TAB, plantConfig({ broker: `mqtt://127.0.0.1:${port}` }), rolloutNode(), ...WATCH]);
      const statuses = statusesOf('rollout');
      assert.equal((await refusal({ topic: 'status' })).code, 'PLANT_NOT_CONNECTED');
      await until('the status "broker unavailable"', () => statuses.includes('broker unavailable'));
    });

    it('a bad waves setting is a configuration error of the node', async () => {
      await helper.load(plantNodes, [TAB, plantConfig({ broker: broker.url }), rolloutNode({ waves: [{ count: 0 }] }), ...WATCH]);
      assert.equal((await refusal({ topic: 'status' })).code, 'BAD_OPTION');
    });

    it("the coordinator's own refusals reach the catch node with their codes", async function () {
      needsPlantLibrary(this);
      await helper.load(plantNodes, [TAB, plantConfig({ broker: broker.url }), rolloutNode(), ...WATCH]);
      const img = image('1.1.0');
      const mismatch = await refusal({ topic: 'start', payload: { image: { sha256: '0'.repeat(64), base64: img.toString('base64') }, target: { namePrefix: 'esp32-line-' } } });
      assert.equal(mismatch.code, 'IMAGE_HASH_MISMATCH');
      const unknown = await refusal({ topic: 'pause', payload: { campaign: 'no-such-campaign' } });
      assert.match(String(unknown.code), /^[A-Z][A-Z_]+$/);
    });
  });

  describe('start, pause, resume, cancel', () => {
    it('route to the coordinator and answer on output 2; the end and the devices come out too', async function () {
      needsPlantLibrary(this);
      const img = image('1.1.0');
      const gateway = new FakeGateway(broker.url, PREFIX, 'gw-fake', [
        { address: 'aa:bb:cc:00:00:01', name: 'esp32-line-01', version: '1.0.0', hashPrefix: '00000000' },
        { address: 'aa:bb:cc:00:00:02', name: 'esp32-line-02', version: '1.0.0', hashPrefix: '00000000' },
      ]);
      await gateway.start();
      try {
        await helper.load(plantNodes, [TAB, plantConfig({ broker: broker.url }), rolloutNode(), ...WATCH]);
        const ready = nextEvent('status');
        helper.getNode('rollout')?.receive({ topic: 'status' });
        await ready;
        const devices = collect(helper.getNode('devices'));
        const started = nextEvent('started');
        helper.getNode('rollout')?.receive({ topic: 'start', payload: { id: 'camp-1', image: { sha256: fileSha256(img).toString('hex'), base64: img.toString('base64') }, target: { namePrefix: 'esp32-line-' }, maxConcurrent: 1 } });
        const start = await started;
        assert.equal(start.campaign.id, 'camp-1');
        assert.equal(start.payload.total, 2);
        await until('an install task at the gateway', () => gateway.tasks.some((t) => t.type === 'install'));

        const paused = nextEvent('paused');
        helper.getNode('rollout')?.receive({ topic: 'pause', payload: { campaign: 'camp-1', reason: 'shift change' } });
        assert.equal((await paused).campaign.state, 'paused');
        const resumed = nextEvent('resumed');
        helper.getNode('rollout')?.receive({ topic: 'resume', payload: 'camp-1' });
        assert.equal((await resumed).campaign.state, 'running');

        const ended = nextEvent('end', 25000);
        const cancelled = nextEvent('cancelled');
        helper.getNode('rollout')?.receive({ topic: 'cancel', payload: { campaign: 'camp-1' } });
        await cancelled;
        const end = await ended;
        assert.equal(end.campaign.state, 'cancelled');
        await until('a result per device', () => devices.length === 2);
        assert.deepEqual(devices.map((m) => (m.payload as Json).state).sort(), ['cancelled', 'cancelled']);
        assert.ok(gateway.tasks.some((t) => t.type === 'cancel'), 'the in-flight install was cancelled at its gateway');
        const status = nextEvent('status');
        helper.getNode('rollout')?.receive({ topic: 'status', payload: { campaign: 'camp-1' } });
        assert.equal((await status).payload.state, 'cancelled');
      } finally {
        await gateway.stop();
      }
    });
  });

  describe('gateway role', () => {
    it('with an adapter, publishes its presence online, and offline when the flow is stopped', async function () {
      needsPlantLibrary(this);
      const topics = new PlantTopics(PREFIX);
      await helper.load(plantNodes, [TAB, simAdapter('adapter'), plantConfig({ broker: broker.url, gatewayId: 'gw-node', adapter: 'adapter', slots: 2 })], { adapter: { masterKey: '5e'.repeat(32) } });
      const online = await retainedOn(broker.url, topics.presence('gw-node'), (p) => p.state === 'online');
      assert.deepEqual(online.slots, { total: 2, free: 2 });
      await helper.unload();
      const offline = await retainedOn(broker.url, topics.presence('gw-node'), (p) => p.state === 'offline');
      assert.equal(offline.gateway, 'gw-node');
    });
  });

  it('has complete en-US and de catalogues and help for both plant nodes', () => {
    const keys = (o: Json, prefix = ''): string[] => Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? keys(v as Json, `${prefix}${k}.`) : [`${prefix}${k}`])).sort();
    for (const type of ['ble-ota-plant', 'ble-ota-rollout']) {
      const dir = repoPath('nodes', type, 'locales');
      const en = JSON.parse(fs.readFileSync(path.join(dir, 'en-US', `${type}.json`), 'utf8')) as Json;
      const de = JSON.parse(fs.readFileSync(path.join(dir, 'de', `${type}.json`), 'utf8')) as Json;
      assert.deepEqual(keys(de), keys(en), `${type}: de has exactly the en-US keys`);
      for (const lang of ['en-US', 'de']) assert.match(fs.readFileSync(path.join(dir, lang, `${type}.html`), 'utf8'), new RegExp(`data-help-name="${type}"`));
      const sources = fs.readdirSync(repoPath('nodes', type)).filter((f) => f.endsWith('.ts')).map((f) => fs.readFileSync(repoPath('nodes', type, f), 'utf8')).join('\n');
      for (const m of sources.matchAll(/\bt\('([a-z-]+\.[a-z0-9.-]+)'/g)) assert.ok(keys(en).includes(`${type}.${m[1]}`), `${type}: ${m[1]} is in en-US`);
    }
  });
});
