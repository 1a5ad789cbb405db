/**
 * Gateways on the plant simulator over loopback TCP, each a real noble on its hci-socket layer over the
 * remote transport (what a gateway process runs): overlapping sets of devices with each gateway's own RSSI,
 * a device out of a gateway's range is neither seen nor found, an update end to end through a remote
 * central counts one install, and a gateway whose connection dies mid-transfer leaves the device to notice
 * the link loss by its supervision timeout (its session suspended) while a second gateway finishes the update.
 */
import { strict as assert } from 'assert';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import type { DiscoveredDevice } from '../../lib/ble/central';
import { OtaError } from '../../lib/errors';
import { buildAppImage } from '../../lib/image';
import { appHash } from '../../lib/image/hash';
import { flashDevice, readDeviceStatus } from '../../lib/ota';
import { PlantControlClient, PlantSim, createRemotePlantCentral, type PlantDeviceInfo, type RemotePlantCentral } from '../../lib/sim/plant';
import { codeOf } from '../helpers/errors';

const MASTER = Buffer.alloc(32, 0x5a);
const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 96 * 1024, seed: 21 });

const LAYOUT = {
  gateways: ['gw-a', 'gw-b'],
  devices: [
    { name: 'both-01', chip: 'esp32', version: '1.0.0', rssi: { 'gw-a': -48, 'gw-b': -77 } },
    { name: 'only-a-02', chip: 'esp32', version: '1.0.0', rssi: { 'gw-a': -60 } },
    { name: 'only-b-03', chip: 'esp32', version: '1.0.0', rssi: { 'gw-b': -55 } },
  ],
  keys: { masterKey: MASTER.toString('hex') },
  link: 'reference',
  clock: 'real',
};

interface Gateway {
  central: RemotePlantCentral;
  scheduler: AdapterScheduler;
}

async function scanNames(central: RemotePlantCentral, ms: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const scan = await central.startScan({}, (d: DiscoveredDevice) => seen.set(d.name, d.rssi));
  await new Promise((r) => setTimeout(r, ms));
  await scan.stop();
  return seen;
}

describe('sim/plant: gateways over TCP on one air', function () {
  this.timeout(60000);
  let plant: PlantSim;
  let ports: { hciPort: number; controlPort: number };
  let control: PlantControlClient;
  const gateways: Gateway[] = [];

  async function gateway(id: string): Promise<Gateway> {
    const central = await createRemotePlantCentral({ host: '127.0.0.1', port: ports.hciPort, gateway: id, reconnect: false });
    const scheduler = new AdapterScheduler(central, { readyTimeoutMs: 5000 });
    const g = { central, scheduler };
    gateways.push(g);
    await central.waitReady(5000);
    return g;
  }

  async function device(name: string): Promise<PlantDeviceInfo> {
    const list = (await control.command({ cmd: 'devices' })).devices as PlantDeviceInfo[];
    return list.find((d) => d.name === name) as PlantDeviceInfo;
  }

  beforeEach(async () => {
    plant = new PlantSim(LAYOUT);
    ports = await plant.start();
    control = new PlantControlClient('127.0.0.1', ports.controlPort);
  });

  afterEach(async () => {
    for (const g of gateways.splice(0)) {
      await g.scheduler.close().catch(() => undefined);
      await g.central.close().catch(() => undefined);
    }
    control.close();
    await plant.stop();
  });

  it('two gateways see overlapping devices, each at its own RSSI; an unknown or duplicate gateway is refused', async () => {
    const a = await gateway('gw-a');
    const b = await gateway('gw-b');
    const [seenA, seenB] = await Promise.all([scanNames(a.central, 1500), scanNames(b.central, 1500)]);
    assert.deepEqual([...seenA.keys()].sort(), ['both-01', 'only-a-02']);
    assert.deepEqual([...seenB.keys()].sort(), ['both-01', 'only-b-03']);
    assert.equal(seenA.get('both-01'), -48);
    assert.equal(seenB.get('both-01'), -77);
    assert.equal(await codeOf(createRemotePlantCentral({ host: '127.0.0.1', port: ports.hciPort, gateway: 'gw-z' })), 'PLANT_UNKNOWN_GATEWAY');
    assert.equal(await codeOf(createRemotePlantCentral({ host: '127.0.0.1', port: ports.hciPort, gateway: 'gw-a' })), 'PLANT_GATEWAY_CONNECTED');
    const gws = (await control.command({ cmd: 'gateways' })).gateways as Array<{ id: string; connected: boolean }>;
    assert.deepEqual(gws.map((g) => g.connected), [true, true]);
  });

  it('a device out of range of gateway B is not found by B (DEVICE_NOT_FOUND) and comes into range on command', async () => {
    const b = await gateway('gw-b');
    const err = await flashDevice(b.scheduler, { device: 'only-a-02', image: IMAGE, masterKey: MASTER, findTimeoutMs: 2000 }).then(
      () => assert.fail('flashed a device out of range'),
      (e: unknown) => e as OtaError,
    );
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'DEVICE_NOT_FOUND');
    assert.equal((await device('only-a-02')).installs, 0);
    await control.command({ cmd: 'range', gateway: 'gw-b', device: 'only-a-02', rssi: -66 });
    const seen = await scanNames(b.central, 1000);
    assert.equal(seen.get('only-a-02'), -66);
  });

  it('flashes a device end to end through a remote central; the install counter counts it once', async () => {
    const a = await gateway('gw-a');
    const before = await device('only-a-02');
    assert.equal(before.installs, 0);
    const result = await flashDevice(a.scheduler, { device: 'only-a-02', image: IMAGE, masterKey: MASTER, encoding: 'raw', findTimeoutMs: 5000 });
    assert.equal(result.success, true);
    assert.equal(result.attempts, 1);
    // After the reboot into the new image.
    let after = await device('only-a-02');
    for (let i = 0; i < 50 && after.version !== '1.1.0'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await device('only-a-02');
    }
    assert.equal(after.version, '1.1.0');
    assert.equal(after.sha256, appHash(IMAGE).toString('hex'));
    assert.equal(after.installs, 1);
  });

  it('a gateway whose connection dies mid-transfer: the device sees the link loss, a second gateway finishes the update', async () => {
    const a = await gateway('gw-a');
    const b = await gateway('gw-b');
    let dropped = false;
    const first = flashDevice(a.scheduler, {
      device: 'both-01',
      image: IMAGE,
      masterKey: MASTER,
      encoding: 'raw',
      maxAttempts: 1,
      findTimeoutMs: 5000,
      onProgress: (p) => {
        if (!dropped && p.bytesDone > IMAGE.length / 3) {
          dropped = true;
          a.central.transport.dropConnection();
        }
      },
    });
    const code = await codeOf(first);
    assert.ok(dropped, 'the connection was dropped during the transfer');
    assert.notEqual(code, 'RESOLVED');
    // The plant side: the gateway is gone, the device's link ends by supervision timeout (not at once).
    const gws = (await control.command({ cmd: 'gateways' })).gateways as Array<{ id: string; connected: boolean }>;
    assert.equal(gws[0].connected, false);
    const stats = plant.radio.stats().devices[plant.device('both-01').address];
    assert.equal(stats.connections, 1);
    // The device noticed the lost link (its supervision timeout): it keeps the session suspended for a resume.
    const status = await readDeviceStatus(b.scheduler, { device: 'both-01', findTimeoutMs: 10000 });
    assert.equal(status.status?.sessionStateName, 'suspended');
    assert.ok((status.status?.sessionOffset ?? 0) > IMAGE.length / 3, `the device kept ${status.status?.sessionOffset} bytes`);
    const kept = status.status?.sessionOffset ?? 0;
    let resumedFrom = -1;
    const result = await flashDevice(b.scheduler, {
      device: 'both-01',
      image: IMAGE,
      masterKey: MASTER,
      encoding: 'raw',
      findTimeoutMs: 10000,
      onProgress: (p) => {
        if (resumedFrom < 0 && p.phase === 'transferring') resumedFrom = p.bytesDone;
      },
    });
    assert.equal(result.success, true);
    // gw-b continues the kept session (its first attempt): only the rest of the image goes on air.
    assert.equal(resumedFrom, kept, 'the second gateway resumed at the offset the device kept');
    assert.ok(result.bytesOnAir < IMAGE.length - kept / 2, `${result.bytesOnAir} bytes on air for a ${IMAGE.length}-byte image`);
    let after = await device('both-01');
    for (let i = 0; i < 50 && after.installs === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await device('both-01');
    }
    assert.equal(after.installs, 1);
    // gw-a may come back as a new central (a replugged adapter).
    const again = await createRemotePlantCentral({ host: '127.0.0.1', port: ports.hciPort, gateway: 'gw-a', reconnect: false });
    gateways.push({ central: again, scheduler: new AdapterScheduler(again) });
    await again.waitReady(5000);
    const seen = await scanNames(again, 1000);
    assert.ok(seen.has('only-a-02'));
  });
});
