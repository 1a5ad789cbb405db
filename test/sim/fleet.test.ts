import { strict as assert } from 'assert';
import * as os from 'os';
import * as path from 'path';
import { createSimFleet, type SimFleet } from '../../lib/sim/fleet';
import { findTwinBinary } from '../../lib/sim/twin-device';
import type { DiscoveredDevice } from '../../lib/ble/central';
import { sleep } from '../../lib/clock';
import { isOtaError } from '../../lib/errors';
import { FIRMWARE_REVISION_UUID, DIS_SERVICE_UUID, OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../../lib/protocol/constants';
import type { SimDeviceConfig } from '../../lib/sim/types';

async function scanAll(fleet: SimFleet, ms = 500): Promise<DiscoveredDevice[]> {
  await fleet.central.waitReady(1000);
  const seen = new Map<string, DiscoveredDevice>();
  const scan = await fleet.central.startScan({}, (d) => seen.set(d.address, d));
  await sleep(fleet.clock, ms);
  await scan.stop();
  return [...seen.values()];
}

async function readVersionAndStatus(fleet: SimFleet, name: string): Promise<{ version: string; status: Buffer; mtu: number }> {
  const device = fleet.devices.get(name);
  assert.ok(device, name);
  const conn = await fleet.central.connect(device.address);
  const table = await conn.discover();
  assert.ok(table.some((s) => s.uuid === OTA_SERVICE_UUID));
  const version = (await conn.read(DIS_SERVICE_UUID, FIRMWARE_REVISION_UUID)).toString();
  const status = await conn.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID);
  const mtu = conn.mtu;
  await conn.disconnect();
  return { version, status, mtu };
}

describe('sim/fleet', () => {
  let fleet: SimFleet | null = null;
  afterEach(async () => {
    await fleet?.close();
    fleet = null;
  });

  it('hosts TS-model devices behind a real noble central on the virtual clock', async () => {
    const devices: SimDeviceConfig[] = [
      { name: 'sim-01', chip: 'esp32c3', version: '1.2.3' },
      { name: 'sim-02', chip: 'esp32s3', version: '2.0.0' },
    ];
    fleet = await createSimFleet({ devices, link: '2m-phy', clock: 'virtual' });
    assert.equal(fleet.clock.virtual, true);
    const seen = await scanAll(fleet);
    assert.deepEqual(seen.map((d) => d.name).sort(), ['sim-01', 'sim-02']);
    assert.ok(seen.every((d) => Buffer.isBuffer(d.advertisement.manufacturerData)));
    const one = await readVersionAndStatus(fleet, 'sim-01');
    assert.equal(one.version, '1.2.3');
    assert.ok(one.status.length > 0);
    assert.equal(one.mtu, Math.min(256, fleet.devices.get('sim-01')?.maxMtu ?? 0), 'noble asks 256; the link is the smaller of both');
    assert.equal((await readVersionAndStatus(fleet, 'sim-02')).version, '2.0.0');
    assert.equal(fleet.radio.stats().link, '2m-phy');
  });

  it('rejects bad fleets with clear errors', async () => {
    const dev: SimDeviceConfig = { name: 'x', chip: 'esp32', version: '1.0.0' };
    await assert.rejects(createSimFleet({ devices: [dev, dev] }), (e: unknown) => isOtaError(e) && e.code === 'SIM_DUPLICATE_NAME');
    await assert.rejects(createSimFleet({ devices: [dev], link: 'warp' }), (e: unknown) => isOtaError(e) && e.code === 'UNKNOWN_LINK_SCENARIO');
    await assert.rejects(createSimFleet({} as never), (e: unknown) => isOtaError(e) && e.code === 'BAD_PARAMETER');
  });

  it('an adapter that is off makes waitReady fail', async () => {
    fleet = await createSimFleet({ devices: [], adapterState: 'poweredOff' });
    await assert.rejects(fleet.central.waitReady(1000), (e: unknown) => isOtaError(e));
  });

  it('says how to build the twin when it is missing', async () => {
    const saved = process.env.BLE_OTA_TWIN;
    process.env.BLE_OTA_TWIN = path.join(os.tmpdir(), 'no-such-dir', 'ble_ota_twin');
    try {
      await assert.rejects(
        createSimFleet({ devices: [{ name: 't', chip: 'esp32', version: '1.0.0', implementation: 'twin' }] }),
        (e: unknown) => isOtaError(e) && e.code === 'TWIN_NOT_BUILT' && /make -C firmware\/test twin/.test(e.message),
      );
    } finally {
      if (saved === undefined) delete process.env.BLE_OTA_TWIN;
      else process.env.BLE_OTA_TWIN = saved;
    }
  });

  it('hosts the firmware twin on the same radio (needs make -C firmware/test twin)', async function () {
    if (!findTwinBinary()) {
      // The conformance suite fails loudly for a missing twin; here the model tests above still run.
      this.skip();
    }
    fleet = await createSimFleet({
      devices: [
        { name: 'twin-01', chip: 'esp32c3', version: '3.1.4', implementation: 'twin' },
        { name: 'model-01', chip: 'esp32c3', version: '3.1.4' },
      ],
      clock: 'virtual',
    });
    const seen = await scanAll(fleet);
    assert.deepEqual(seen.map((d) => d.name).sort(), ['model-01', 'twin-01']);
    const twin = seen.find((d) => d.name === 'twin-01');
    const model = seen.find((d) => d.name === 'model-01');
    assert.equal(twin?.advertisement.manufacturerData?.length, model?.advertisement.manufacturerData?.length, 'same advertisement layout');
    const fromTwin = await readVersionAndStatus(fleet, 'twin-01');
    const fromModel = await readVersionAndStatus(fleet, 'model-01');
    assert.equal(fromTwin.version, '3.1.4');
    assert.equal(fromTwin.status.length, fromModel.status.length);
  });
});
