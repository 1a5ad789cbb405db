/**
 * The plant simulator's layout file and control server: every malformed layout is refused with
 * BAD_PLANT_LAYOUT naming what is wrong; the control server lists devices and gateways, injects faults,
 * changes a gateway's range and refuses bad commands with a typed error, over JSON lines on loopback; the
 * HCI port refuses a bad hello and a port in use is a typed error.
 */
import { strict as assert } from 'assert';
import * as net from 'net';
import { OtaError } from '../../lib/errors';
import { PlantControlClient, PlantSim, generatePlantLayout, parsePlantLayout } from '../../lib/sim/plant';

const MASTER_HEX = '5a'.repeat(32);

function layout(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    gateways: ['gw-a', 'gw-b'],
    devices: [
      { name: 'line-01', chip: 'esp32', version: '1.0.0', rssi: { 'gw-a': -50, 'gw-b': -72 } },
      { name: 'line-02', chip: 'esp32c3', version: '1.0.0', diagnostics: 'fail', confirmPolicy: 'host', rssi: { 'gw-a': -61 } },
    ],
    keys: { masterKey: MASTER_HEX },
    link: 'reference',
    clock: 'real',
    ...overrides,
  };
}

function refused(value: unknown, pattern: RegExp): void {
  assert.throws(
    () => parsePlantLayout(value),
    (err: unknown) => {
      assert.ok(err instanceof OtaError, String(err));
      assert.equal(err.code, 'BAD_PLANT_LAYOUT');
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('sim/plant: layout', () => {
  it('reads a good layout with defaults (diagnostics pass, confirm auto, link reference)', () => {
    const parsed = parsePlantLayout(JSON.stringify(layout({ link: undefined })));
    assert.deepEqual(parsed.gateways, ['gw-a', 'gw-b']);
    assert.equal(parsed.devices[0].diagnostics, 'pass');
    assert.equal(parsed.devices[0].confirmPolicy, 'auto');
    assert.equal(parsed.devices[1].diagnostics, 'fail');
    assert.deepEqual(parsed.devices[1].rssi, { 'gw-a': -61 });
    assert.equal(parsed.link, 'reference');
    assert.equal(parsed.keys.masterKey?.toString('hex'), MASTER_HEX);
  });

  it('refuses malformed layouts with BAD_PLANT_LAYOUT naming the problem', () => {
    refused('{not json', /not valid JSON/);
    refused([], /must be a JSON object/);
    refused(layout({ gateways: [] }), /"gateways" must be a non-empty list/);
    refused(layout({ gateways: ['gw a'] }), /gateways\[0\]: a gateway id/);
    refused(layout({ gateways: ['gw-a', 'gw-a'] }), /listed twice/);
    refused(layout({ devices: [] }), /"devices" must be a non-empty list/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp8266', version: '1', rssi: {} }] }), /devices\[0\] "x": chip must be one of/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: { 'gw-z': -50 } }] }), /rssi names gateway "gw-z"/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: { 'gw-a': -500 } }] }), /integer dBm in -127..20/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1' }] }), /"rssi" must be an object/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: {}, colour: 'red' }] }), /unknown field "colour"/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: {}, faults: ['explode@now'] }] }), /faults\[0\]/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: {}, vanishAtMs: -1 }] }), /vanishAtMs/);
    refused(layout({ devices: [{ name: 'x', chip: 'esp32', version: '1', rssi: {} }, { name: 'x', chip: 'esp32', version: '1', rssi: {} }] }), /"x" appears twice/);
    refused(layout({ keys: { masterKey: 'abcd' } }), /masterKey must be 64 hex digits/);
    refused(layout({ keys: { releaseKeys: ['04' + '00'.repeat(64)] } }), /releaseKeys\[0\] is not a point on P-256/);
    refused(layout({ keys: {} }), /devices without keys refuse every update/);
    refused(layout({ link: 'moon' }), /link must be one of/);
    refused(layout({ clock: 'virtual' }), /clock must be "real"/);
  });

  it('generates a valid layout of a line of gateways with overlapping ranges', () => {
    const generated = parsePlantLayout(
      generatePlantLayout({ gateways: ['gw-1', 'gw-2', 'gw-3'], devices: 30, masterKey: MASTER_HEX, failingDiagnostics: ['plant-05'], vanish: { 'plant-30': 1000 } }),
    );
    assert.equal(generated.devices.length, 30);
    assert.equal(generated.devices[4].diagnostics, 'fail');
    assert.equal(generated.devices[29].vanishAtMs, 1000);
    for (const d of generated.devices) assert.ok(Object.keys(d.rssi).length >= 1, `${d.name} is heard by a gateway`);
    const heardBy = (gw: string) => new Set(generated.devices.filter((d) => d.rssi[gw] !== undefined).map((d) => d.name));
    const overlap = [...heardBy('gw-1')].filter((n) => heardBy('gw-2').has(n));
    assert.ok(overlap.length >= 10, 'neighbouring gateways see overlapping sets');
    assert.ok(!heardBy('gw-1').has('plant-25'), 'a gateway does not hear the far end of the line');
  });

  it('the PlantSim constructor checks the layout too', () => {
    assert.throws(() => new PlantSim(layout({ gateways: 'gw-a' })), (err: unknown) => err instanceof OtaError && err.code === 'BAD_PLANT_LAYOUT');
  });
});

describe('sim/plant: control server', function () {
  this.timeout(20000);
  let plant: PlantSim;
  let control: PlantControlClient;
  let ports: { hciPort: number; controlPort: number };

  beforeEach(async () => {
    plant = new PlantSim(layout());
    ports = await plant.start();
    control = new PlantControlClient('127.0.0.1', ports.controlPort);
  });
  afterEach(async () => {
    control.close();
    await plant.stop();
  });

  it('lists devices (running version and sha256, installs, range) and gateways', async () => {
    const answer = await control.command({ cmd: 'devices' });
    const devices = answer.devices as Array<Record<string, unknown>>;
    assert.deepEqual(devices.map((d) => d.name), ['line-01', 'line-02']);
    assert.equal(devices[0].version, '1.0.0');
    assert.match(String(devices[0].sha256), /^[0-9a-f]{64}$/);
    assert.equal(devices[0].installs, 0);
    // The factory image: otadata names no state for it (esp_ota_get_state_partition gives UNDEFINED or VALID).
    assert.ok(['valid', 'undefined'].includes(String(devices[0].otaState)), String(devices[0].otaState));
    assert.deepEqual(devices[0].connectedTo, []);
    assert.deepEqual(devices[1].rssi, { 'gw-a': -61 });
    const gateways = (await control.command({ cmd: 'gateways' })).gateways;
    assert.deepEqual(gateways, [
      { id: 'gw-a', connected: false, sessions: 0 },
      { id: 'gw-b', connected: false, sessions: 0 },
    ]);
  });

  it('the HCI port refuses a connection whose hello line is not {"gateway": id} (PLANT_PROTOCOL) or names no gateway of the layout', async () => {
    const answer = (hello: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const socket = net.connect(ports.hciPort, '127.0.0.1', () => socket.write(hello));
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('close', () => resolve(JSON.parse(text.split('\n')[0]) as Record<string, unknown>));
        socket.on('error', reject);
      });
    assert.equal(((await answer('hello\n')).error as { code: string }).code, 'PLANT_PROTOCOL');
    assert.equal(((await answer('{"gw":"gw-a"}\n')).error as { code: string }).code, 'PLANT_PROTOCOL');
    assert.equal(((await answer('{"gateway":"gw-q"}\n')).error as { code: string }).code, 'PLANT_UNKNOWN_GATEWAY');
    assert.deepEqual(plant.gateways().map((g) => g.sessions), [0, 0]);
  });

  it('a port in use is refused with PLANT_PORT_UNAVAILABLE', async () => {
    const second = new PlantSim(layout());
    try {
      await assert.rejects(second.start({ controlPort: ports.controlPort }), (err: unknown) => err instanceof OtaError && err.code === 'PLANT_PORT_UNAVAILABLE' && /127\.0\.0\.1:\d+/.test(err.message));
    } finally {
      await second.stop();
    }
  });

  it('changes a gateway range and injects faults; refuses bad commands with a typed error', async () => {
    await control.command({ cmd: 'range', gateway: 'gw-b', device: 'line-02', rssi: -80 });
    await control.command({ cmd: 'range', gateway: 'gw-a', device: 'line-01', rssi: null });
    const devices = (await control.command({ cmd: 'devices' })).devices as Array<{ rssi: Record<string, number> }>;
    assert.deepEqual(devices[0].rssi, { 'gw-b': -72 });
    assert.deepEqual(devices[1].rssi, { 'gw-a': -61, 'gw-b': -80 });

    await control.command({ cmd: 'fault', device: 'line-01', fault: 'powerCut@atMs=0' });
    // atMs=0: the cut runs on the plant's clock right after the command is answered.
    let afterCut = (await control.command({ cmd: 'devices' })).devices as Array<{ power: string; version: string | null }>;
    for (let i = 0; i < 20 && afterCut[0].power === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 5));
      afterCut = (await control.command({ cmd: 'devices' })).devices as typeof afterCut;
    }
    assert.notEqual(afterCut[0].power, 'running', 'the device lost power');
    assert.equal(afterCut[0].version, null);

    const error = async (request: Record<string, unknown>) => {
      const answer = await control.request({ ...request, id: 7 });
      assert.equal(answer.ok, false);
      assert.equal(answer.id, 7);
      return (answer.error as { code: string }).code;
    };
    assert.equal(await error({ cmd: 'launch' }), 'PLANT_BAD_COMMAND');
    assert.equal(await error({ cmd: 'range', gateway: 'gw-q', rssi: -50 }), 'PLANT_UNKNOWN_GATEWAY');
    assert.equal(await error({ cmd: 'range', gateway: 'gw-a', rssi: 'loud' }), 'PLANT_BAD_COMMAND');
    assert.equal(await error({ cmd: 'fault', device: 'line-09', fault: 'vanish' }), 'FAULT_INVALID');
    assert.equal(await error({ cmd: 'fault', device: 'line-01', fault: 'explode' }), 'FAULT_INVALID');
    assert.equal(await error({ cmd: 'dropGateway', gateway: 'gw-z' }), 'PLANT_UNKNOWN_GATEWAY');
    assert.deepEqual(await control.command({ cmd: 'dropGateway', gateway: 'gw-a' }), { ok: true, dropped: false });
    const raw = await control.request({ cmd: 'devices', id: 'x' });
    assert.equal(raw.id, 'x');
  });
});
