/**
 * "Update on MQTT request" against a real broker: aedes in-process on 127.0.0.1, or the broker at
 * MQTT_URL when set (.ci/run runs this file again against Debian's mosquitto). The devices are keyed
 * (per-device keys, release keys): a `file` brings `<file>.manifest` from the firmware directory, `url`
 * and `base64` requests carry the manifest as base64 in `manifest`.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as mqtt from 'mqtt';
import { KEYED, coreNodes, helper, loadFlow, otaNodes, signImage, testFlow } from './support';
import { image, type Json } from '../nodes/support';

interface Broker {
  host: string;
  port: number;
  /** aedes speaks MQTT 3.1.1 only; the example's broker node is MQTT 5 (mosquitto in .ci/run). */
  protocolVersion: 4 | 5;
  close(): Promise<void>;
}

async function startBroker(): Promise<Broker> {
  if (process.env.MQTT_URL) {
    const url = new URL(process.env.MQTT_URL);
    return { host: url.hostname, port: Number(url.port || 1883), protocolVersion: 5, close: async () => undefined };
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Aedes } = require('aedes') as { Aedes: { createBroker(): Promise<{ handle: (socket: net.Socket) => void; close(cb: () => void): void }> } };
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: (server.address() as net.AddressInfo).port,
    protocolVersion: 4,
    close: () => new Promise((resolve) => server.close(() => aedes.close(() => resolve()))),
  };
}

describe(`example "Update on MQTT request" (${process.env.MQTT_URL ? `broker ${process.env.MQTT_URL}` : 'in-process aedes'})`, function () {
  this.timeout(20000);
  let broker: Broker;
  let client: mqtt.MqttClient;
  const received: Array<{ topic: string; payload: Json; correlationData?: string }> = [];
  const firmwareDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-mqtt-fw-'));
  let fileServer: http.Server;
  let fileHost = '';
  const line = `line${process.pid}`;

  before(async () => {
    broker = await startBroker();
    fileServer = http.createServer((req, res) => {
      if (req.url === '/app-1.3.0.bin') res.end(image('1.3.0'));
      else res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
    });
    await new Promise<void>((resolve) => fileServer.listen(0, '127.0.0.1', resolve));
    fileHost = `127.0.0.1:${(fileServer.address() as net.AddressInfo).port}`;
    // The flow's ${ENV} settings: firmware directory and allowed download hosts.
    process.env.OTA_FIRMWARE_DIR = firmwareDir;
    process.env.OTA_ALLOWED_HOSTS = fileHost;
    fs.writeFileSync(path.join(firmwareDir, 'app-1.2.0.bin'), image('1.2.0'));
    fs.writeFileSync(path.join(firmwareDir, 'app-1.2.0.bin.manifest'), signImage(image('1.2.0')));
    fs.symlinkSync('/etc/passwd', path.join(firmwareDir, 'passwd.bin'));
    client = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { protocolVersion: broker.protocolVersion });
    await client.subscribeAsync([`factory/${line}/ota/#`, `reply/${line}/#`], { qos: 1 });
    client.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/request')) return;
      const correlationData = packet.properties?.correlationData;
      received.push({ topic, payload: JSON.parse(payload.toString()), correlationData: correlationData ? Buffer.from(correlationData).toString() : undefined });
    });
  });

  after(async () => {
    await client.endAsync();
    await broker.close();
    fileServer.close();
    delete process.env.OTA_FIRMWARE_DIR;
    delete process.env.OTA_ALLOWED_HOSTS;
    fs.rmSync(firmwareDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    received.length = 0;
    await loadFlow([...otaNodes, ...coreNodes], testFlow('Update on MQTT request', KEYED, broker).map((n) => (n.type === 'mqtt-broker' ? { ...n, protocolVersion: String(broker.protocolVersion) } : n)));
    await waitForSubscription();
  });

  afterEach(() => helper.unload());

  /** The flow's mqtt-in node subscribes after connecting; a probe request shows when it listens. */
  async function waitForSubscription(): Promise<void> {
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      await client.publishAsync(`factory/${line}/ota/request`, 'probe', { qos: 1 });
      const answered = await waitFor((m) => m.topic === `factory/${line}/ota/result/unknown`, 300).then(() => true, () => false);
      if (answered) {
        received.length = 0;
        return;
      }
    }
    throw new Error('the example flow never subscribed to the request topic');
  }

  function waitFor(pred: (m: { topic: string; payload: Json; correlationData?: string }) => boolean, ms = 15000): Promise<{ topic: string; payload: Json; correlationData?: string }> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = () => {
        const hit = received.find(pred);
        if (hit) return resolve(hit);
        if (Date.now() - started > ms) return reject(new Error(`no matching MQTT message within ${ms} ms; got ${received.map((m) => m.topic).join(', ')}`));
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  function request(body: unknown, properties?: mqtt.IClientPublishOptions['properties']): Promise<void> {
    return client.publishAsync(`factory/${line}/ota/request`, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1, properties }).then(() => undefined);
  }

  /** Waits for the result of a device, then checks that no second result follows. */
  async function onlyResult(device: string): Promise<Json> {
    const topic = `factory/${line}/ota/result/${device}`;
    const result = await waitFor((m) => m.topic === topic);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(received.filter((m) => m.topic === topic).length, 1, `exactly one result for ${device}`);
    return result.payload;
  }

  const signed = (img: Buffer) => signImage(img).toString('base64');

  it('updates a device from a base64 request with its manifest, publishing progress and the result', async () => {
    await request({ device: 'esp32-line-01', base64: image('1.1.0').toString('base64'), manifest: signed(image('1.1.0')) });
    const result = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-01`);
    assert.equal(result.payload.success, true, JSON.stringify(result.payload));
    assert.equal(result.payload.after.version, '1.1.0');
    assert.equal(result.payload.verify.passed, true);
    const progress = received.filter((m) => m.topic === `factory/${line}/ota/progress/esp32-line-01`);
    assert.ok(progress.length > 0);
    assert.ok(progress.some((p) => p.payload.phase === 'transferring'));
  });

  it('updates from a file in the firmware directory and from a URL of an allowed host, echoing the request id', async () => {
    await request({ id: 'job-file', device: 'esp32-line-02', file: 'app-1.2.0.bin' });
    await request({ id: 'job-url', device: 'esp32-line-03', url: `http://${fileHost}/app-1.3.0.bin`, manifest: signed(image('1.3.0')) });
    const fromFile = await onlyResult('esp32-line-02');
    const fromUrl = await onlyResult('esp32-line-03');
    assert.deepEqual([fromFile.id, fromFile.success, fromFile.after.version], ['job-file', true, '1.2.0'], JSON.stringify(fromFile));
    assert.deepEqual([fromUrl.id, fromUrl.success, fromUrl.after.version], ['job-url', true, '1.3.0'], JSON.stringify(fromUrl));
    const progress = received.filter((m) => m.topic === `factory/${line}/ota/progress/esp32-line-02`);
    assert.ok(progress.length > 0 && progress.every((p) => p.payload.id === 'job-file'));
  });

  it('refuses files outside the firmware directory (symlinks resolved) and echoes nothing of them', async () => {
    for (const [id, file] of [['abs', '/etc/passwd'], ['dots', '../../../../etc/passwd'], ['link', 'passwd.bin']]) {
      received.length = 0;
      await request({ id, device: 'esp32-line-04', file });
      const result = await onlyResult('esp32-line-04');
      assert.deepEqual([result.id, result.success, result.error.code], [id, false, 'FILE_NOT_ALLOWED'], JSON.stringify(result));
      assert.doesNotMatch(JSON.stringify(result), /root:|72 6f 6f 74/);
    }
  });

  it('refuses URLs of other hosts, other schemes and redirects with one result each', async () => {
    const cases: Array<[string, string, string]> = [
      ['other-host', 'http://169.254.169.254/latest/meta-data', 'URL_NOT_ALLOWED'],
      ['scheme', 'file:///etc/passwd', 'URL_NOT_ALLOWED'],
      ['redirect', `http://${fileHost}/elsewhere`, 'DOWNLOAD_FAILED'],
    ];
    for (const [id, url, code] of cases) {
      received.length = 0;
      await request({ id, device: 'esp32-line-05', url });
      const result = await onlyResult('esp32-line-05');
      assert.deepEqual([result.id, result.success, result.error.code], [id, false, code], JSON.stringify(result));
    }
  });

  it('answers on the MQTT 5 response topic with the correlation data when the request has them', async function () {
    if (broker.protocolVersion !== 5) {
      console.log('    skipped: MQTT 5 response topic: aedes speaks MQTT 3.1.1 only; .ci/run runs this against mosquitto (MQTT_URL)');
      this.skip();
    }
    await request({ id: 'v5', device: 'esp32-line-01', base64: image('1.1.0').toString('base64'), manifest: signed(image('1.1.0')) }, { responseTopic: `reply/${line}/mes-7`, correlationData: Buffer.from('corr-42') });
    const reply = await waitFor((m) => m.topic === `reply/${line}/mes-7`);
    assert.equal(reply.payload.id, 'v5');
    assert.equal(reply.payload.success, true, JSON.stringify(reply.payload));
    assert.equal(reply.correlationData, 'corr-42');
    assert.equal(received.filter((m) => m.topic.startsWith(`factory/${line}/ota/result/`)).length, 0, 'no second result on the result topic');
  });

  it('publishes MANIFEST_REQUIRED for an image without its manifest, MANIFEST_INVALID for a manifest that is not base64', async () => {
    await request({ id: 'unsigned', device: 'esp32-line-05', base64: image('1.1.0').toString('base64') });
    const unsigned = await onlyResult('esp32-line-05');
    assert.deepEqual([unsigned.id, unsigned.success, unsigned.error.code], ['unsigned', false, 'MANIFEST_REQUIRED'], JSON.stringify(unsigned));
    received.length = 0;
    await request({ id: 'garbled', device: 'esp32-line-05', base64: image('1.1.0').toString('base64'), manifest: 'not base64!' });
    const garbled = await onlyResult('esp32-line-05');
    assert.deepEqual([garbled.id, garbled.success, garbled.error.code], ['garbled', false, 'MANIFEST_INVALID'], JSON.stringify(garbled));
  });

  it('publishes an error result for a bad request and for an image of the wrong chip', async () => {
    await request({ id: 7, device: 'esp32-line-04' });
    const noFirmware = await onlyResult('esp32-line-04');
    assert.deepEqual([noFirmware.id, noFirmware.success, noFirmware.error.code], [7, false, 'NO_FIRMWARE']);
    received.length = 0;
    await request({ device: 'esp32-line-04', base64: image('1.1.0', 'esp32c3').toString('base64') });
    const wrongChip = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-04`);
    assert.deepEqual([wrongChip.payload.success, wrongChip.payload.error.code], [false, 'WRONG_CHIP']);
  });
});
