/**
 * "Update on MQTT request" against a real broker: aedes in-process on 127.0.0.1, or the broker at
 * MQTT_URL when set (.ci/run runs this file again against Debian's mosquitto).
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as mqtt from 'mqtt';
import { coreNodes, helper, otaNodes, testFlow } from './support';
import { image, type Json } from '../nodes/support';

interface Broker {
  host: string;
  port: number;
  close(): Promise<void>;
}

async function startBroker(): Promise<Broker> {
  if (process.env.MQTT_URL) {
    const url = new URL(process.env.MQTT_URL);
    return { host: url.hostname, port: Number(url.port || 1883), close: async () => undefined };
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Aedes } = require('aedes') as { Aedes: { createBroker(): Promise<{ handle: (socket: net.Socket) => void; close(cb: () => void): void }> } };
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => aedes.close(() => resolve()))),
  };
}

describe(`example "Update on MQTT request" (${process.env.MQTT_URL ? `broker ${process.env.MQTT_URL}` : 'in-process aedes'})`, function () {
  this.timeout(20000);
  let broker: Broker;
  let client: mqtt.MqttClient;
  const received: Array<{ topic: string; payload: Json }> = [];
  const line = `line${process.pid}`;

  before(async () => {
    broker = await startBroker();
    process.env.MQTT_HOST = broker.host;
    process.env.MQTT_PORT = String(broker.port);
    client = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`);
    await client.subscribeAsync(`factory/${line}/ota/#`, { qos: 1 });
    client.on('message', (topic, payload) => {
      if (topic.endsWith('/request')) return;
      received.push({ topic, payload: JSON.parse(payload.toString()) });
    });
  });

  after(async () => {
    await client.endAsync();
    await broker.close();
  });

  beforeEach(async () => {
    received.length = 0;
    await helper.load([...otaNodes, ...coreNodes], testFlow('Update on MQTT request'));
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

  function waitFor(pred: (m: { topic: string; payload: Json }) => boolean, ms = 15000): Promise<{ topic: string; payload: Json }> {
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

  function request(body: unknown): Promise<void> {
    return client.publishAsync(`factory/${line}/ota/request`, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 }).then(() => undefined);
  }

  it('updates a device from a base64 request, publishing progress and the result', async () => {
    await request({ device: 'esp32-line-01', base64: image('1.1.0').toString('base64') });
    const result = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-01`);
    assert.equal(result.payload.success, true, JSON.stringify(result.payload));
    assert.equal(result.payload.after.version, '1.1.0');
    assert.equal(result.payload.verify.passed, true);
    const progress = received.filter((m) => m.topic === `factory/${line}/ota/progress/esp32-line-01`);
    assert.ok(progress.length > 0);
    assert.ok(progress.some((p) => p.payload.phase === 'transferring'));
  });

  it('updates from a file path and from a URL', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ota-mqtt-')), 'app.bin');
    fs.writeFileSync(file, image('1.2.0'));
    const server = http.createServer((_req, res) => res.end(image('1.3.0')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await request({ device: 'esp32-line-02', file });
      await request({ device: 'esp32-line-03', url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/app.bin` });
      const fromFile = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-02`);
      const fromUrl = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-03`);
      assert.equal(fromFile.payload.after.version, '1.2.0', JSON.stringify(fromFile.payload));
      assert.equal(fromUrl.payload.after.version, '1.3.0', JSON.stringify(fromUrl.payload));
    } finally {
      server.close();
    }
  });

  it('publishes an error result for a bad request and for an image of the wrong chip', async () => {
    await request({ device: 'esp32-line-04' });
    const noFirmware = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-04`);
    assert.deepEqual([noFirmware.payload.success, noFirmware.payload.error.code], [false, 'NO_FIRMWARE']);
    received.length = 0;
    await request({ device: 'esp32-line-04', base64: image('1.1.0', 'esp32c3').toString('base64') });
    const wrongChip = await waitFor((m) => m.topic === `factory/${line}/ota/result/esp32-line-04`);
    assert.deepEqual([wrongChip.payload.success, wrongChip.payload.error.code], [false, 'WRONG_CHIP']);
  });
});
