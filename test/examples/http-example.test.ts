/**
 * "Update via HTTP" through real HTTP requests on 127.0.0.1: 200 with the result, 400 for bad images
 * before any BLE activity, 404 unknown device, 409 busy, 502 when the device fails its checks. The
 * devices are keyed (per-device keys, release keys): the station sends the signed manifest as base64 in
 * the X-OTA-Manifest header.
 */
import { strict as assert } from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as sinon from 'sinon';
import { KEYED, coreNodes, grabHttpNode, helper, httpNodeApp, loadFlow, otaNodes, signImage, testFlow } from './support';
import { validateAppImage } from '../../lib/image';
import { backendOf, image, type Json } from '../nodes/support';

const ADAPTER = 'ble-ota-adapter-demo';
const FLEET = ['esp32-line-01:esp32:1.0.0', 'esp32-line-02:esp32:1.0.0', 'esp32-line-03:esp32:1.0.0', 'esp32-line-04:esp32:1.0.0', 'esp32-line-05:esp32:1.0.0:fail'].join('\n');

interface Reply {
  status: number;
  body: Json;
}

describe('example "Update via HTTP"', function () {
  this.timeout(20000);
  let server: http.Server;
  let base = '';

  const TOKEN = 'test-token-0123';
  before(() => {
    process.env.OTA_HTTP_TOKEN = TOKEN;
  });
  after(() => {
    delete process.env.OTA_HTTP_TOKEN;
  });

  beforeEach(async function () {
    // The client-gone test needs transfers that take real time.
    const clock = this.currentTest?.title.includes('goes away') ? 'real' : 'virtual';
    await loadFlow([...otaNodes, ...coreNodes, grabHttpNode], testFlow('Update via HTTP', { simDevices: FLEET, simClock: clock, ...KEYED }));
    server = http.createServer((req, res) => httpNodeApp.app?.(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    sinon.restore();
    await new Promise((resolve) => server.close(resolve));
    await helper.unload();
  });

  /** The manifest header of a body: its signed manifest when the body is an application image (as a station would send it). */
  function manifestHeader(body: Buffer | string): Record<string, string> {
    if (!Buffer.isBuffer(body)) return {};
    try {
      validateAppImage(body);
    } catch {
      return {};
    }
    return { 'x-ota-manifest': signImage(body).toString('base64') };
  }

  async function post(query: string, body: Buffer | string, contentType = 'application/octet-stream', token: string | null = TOKEN, manifest: Record<string, string> = manifestHeader(body)): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': contentType, ...manifest };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${base}/ota${query}`, { method: 'POST', headers, body });
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    return { status: res.status, body: (await res.json()) as Json };
  }

  it('answers 401 without the bearer token, or with a wrong one, before reading the image', async () => {
    for (const token of [null, 'guess']) {
      const reply = await post('?device=esp32-line-01', image('1.1.0'), 'application/octet-stream', token);
      assert.equal(reply.status, 401);
      assert.equal(reply.body.error.code, 'UNAUTHORIZED');
    }
  });

  it('cancels the transfer when the HTTP client goes away; the device keeps its image', async () => {
    const backend = await backendOf(ADAPTER);
    const client = new AbortController();
    const headers = { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKEN}`, ...manifestHeader(image('1.1.0')) };
    const pending = fetch(`${base}/ota?device=esp32-line-03`, { method: 'POST', headers, body: image('1.1.0'), signal: client.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 1500));
    client.abort();
    await pending;
    // The simulated device returns to idle without the new image (no reboot into 1.1.0).
    await new Promise((r) => setTimeout(r, 1500));
    const { readDeviceStatus } = await import('../../lib/ota');
    const report = await readDeviceStatus(backend.scheduler, { device: 'esp32-line-03' });
    assert.equal(report.firmware.version, '1.0.0');
    const logged = helper.log().args.map((a) => String((a[0] as Json).msg));
    assert.ok(logged.some((m) => /HTTP client went away/.test(m)), logged.join('\n'));
  });

  it('answers 200 with the flash and verify result, echoing the request id', async () => {
    const reply = await post('?device=esp32-line-01&id=job-9', image('1.1.0'));
    assert.equal(reply.body.id, 'job-9');
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.success, true);
    assert.equal(reply.body.before.version, '1.0.0');
    assert.equal(reply.body.after.version, '1.1.0');
    assert.equal(reply.body.verify.passed, true);
  });

  it('answers 400 for a file that is not an application image, before any BLE activity', async () => {
    const backend = await backendOf(ADAPTER);
    const connect = sinon.spy(backend.central, 'connect');
    const reply = await post('?device=esp32-line-01', Buffer.from('not firmware'.repeat(100)));
    assert.equal(reply.status, 400);
    assert.match(reply.body.error.code, /NOT_ESP_IMAGE|TRUNCATED_IMAGE/);
    assert.ok(reply.body.error.message.length > 10);
    assert.equal(connect.callCount, 0);
  });

  it('refuses an image without its manifest, with a manifest of another image or a garbled one (docs/ERRORS.md: 502), before any BLE activity', async () => {
    const backend = await backendOf(ADAPTER);
    const connect = sinon.spy(backend.central, 'connect');
    const foreign = await post('?device=esp32-line-01', image('1.1.0'), 'application/octet-stream', TOKEN, manifestHeader(image('1.2.0')));
    assert.deepEqual([foreign.status, foreign.body.error.code], [502, 'MANIFEST_MISMATCH'], JSON.stringify(foreign.body));
    const garbled = await post('?device=esp32-line-01', image('1.1.0'), 'application/octet-stream', TOKEN, { 'x-ota-manifest': 'not a manifest' });
    assert.deepEqual([garbled.status, garbled.body.error.code], [502, 'MANIFEST_INVALID'], JSON.stringify(garbled.body));
    assert.equal(connect.callCount, 0, 'the manifest is checked against the image before the radio');
    // Whether the device needs one is known only from its Status: the refusal comes before BEGIN.
    const missing = await post('?device=esp32-line-01', image('1.1.0'), 'application/octet-stream', TOKEN, {});
    assert.deepEqual([missing.status, missing.body.error.code], [502, 'MANIFEST_REQUIRED'], JSON.stringify(missing.body));
  });

  it('answers 400 WRONG_CHIP for an ESP32-C3 image sent to an ESP32', async () => {
    const reply = await post('?device=esp32-line-01', image('1.1.0', 'esp32c3'));
    assert.equal(reply.status, 400);
    assert.equal(reply.body.error.code, 'WRONG_CHIP');
  });

  it('answers 400 without a device or with a body that is not raw bytes', async () => {
    const noDevice = await post('', image('1.1.0'));
    assert.equal(noDevice.status, 400);
    assert.equal(noDevice.body.error.code, 'NO_DEVICE');
    const json = await post('?device=esp32-line-01', '{"firmware": 1}', 'application/json');
    assert.equal(json.status, 400);
    assert.equal(json.body.error.code, 'NOT_A_BUFFER');
    const empty = await post('?device=esp32-line-01', Buffer.alloc(0));
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.code, 'EMPTY_IMAGE');
  });

  it('answers 404 for a device that is not in range', async () => {
    const reply = await post('?device=esp32-line-77', image('1.1.0'));
    assert.equal(reply.status, 404);
    assert.equal(reply.body.error.code, 'DEVICE_NOT_FOUND');
  });

  it('answers 409 to a second request for a device being updated', async () => {
    const [a, b] = await Promise.all([post('?device=esp32-line-02', image('1.1.0', 'esp32', 600 * 1024)), post('?device=esp32-line-02', image('1.2.0'))]);
    assert.deepEqual([a.status, b.status].sort(), [200, 409]);
    const busy = a.status === 409 ? a : b;
    assert.equal(busy.body.error.code, 'DEVICE_BUSY');
  });

  it('answers 502 when the device rolls back after failing its diagnostics', async () => {
    const reply = await post('?device=esp32-line-05', image('1.1.0'));
    assert.equal(reply.status, 502);
    assert.equal(reply.body.error.code, 'VERIFY_FAILED');
    assert.match(reply.body.error.message, /roll|diagnos/i);
  });
});
