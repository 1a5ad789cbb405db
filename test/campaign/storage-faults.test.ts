/**
 * Storage faults of the fault API (docs/FAULTS.md) on both device implementations (the twin when built):
 * power cut at a flash operation, torn write, a flash operation that fails with the power on, a power cut
 * during the first-boot diagnostics, failing otadata and NVS writes. After each the device boots a valid image (the campaign's invariants, read on
 * the simulated flash) and the failure is reported where the firmware reports it.
 */
import { strict as assert } from 'assert';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { sleep } from '../../lib/clock';
import { OtaError } from '../../lib/errors';
import { buildAppImage } from '../../lib/image';
import { flashDevice, readDeviceStatus } from '../../lib/ota';
import { readFlash } from '../../lib/sim/campaign/flash-view';
import { checkInvariants } from '../../lib/sim/campaign/invariants';
import type { Fault } from '../../lib/sim/faults';
import { createSimFleet, type SimFleet } from '../../lib/sim/fleet';
import { findTwinBinary } from '../../lib/sim/twin-device';

const PARTITION = 0x1e0000;
const NEXT = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 100 * 1024, seed: 4 });
const codeOf = (err: unknown): string => (err instanceof OtaError ? err.code : String(err));

describe('storage faults on both implementations', function () {
  this.timeout(60000);
  let fleet: SimFleet | undefined;
  let scheduler: AdapterScheduler | undefined;
  afterEach(async () => {
    await scheduler?.close();
    await fleet?.close();
    fleet = scheduler = undefined;
  });

  /** One update with the fault injected as it starts; then the device settles and its flash is checked. */
  async function run(implementation: 'model' | 'twin', fault: Fault, maxAttempts: number) {
    fleet = await createSimFleet({ devices: [{ name: 'd', chip: 'esp32', version: '1.0.0', implementation, otaPartitionSize: PARTITION, confirmPolicy: 'auto', allowUnauthenticated: true }], clock: 'virtual' });
    scheduler = new AdapterScheduler(fleet.central, { readyTimeoutMs: 2000 });
    const device = fleet.devices.get('d');
    assert.ok(device);
    const factory = readFlash(device, PARTITION).slots[0];
    const handle = fleet.injectFault('d', fault);
    let error: string | null = null;
    try {
      await flashDevice(scheduler, { device: 'd', image: NEXT, maxAttempts, preventDowngrade: false });
    } catch (err) {
      error = codeOf(err);
    }
    await sleep(fleet.clock, 75000);
    const status = await readDeviceStatus(scheduler, { device: 'd' });
    const violations = checkInvariants({
      view: readFlash(device, PARTITION),
      chip: 'esp32',
      oldImages: [factory],
      newImage: NEXT,
      flashed: error === null,
      committed: error === null && status.firmware.version === '1.1.0' && status.firmware.state === 'valid',
      statusVersion: status.firmware.version,
      oldVersions: ['1.0.0'],
      newVersion: '1.1.0',
    });
    return { error, status, violations, fired: handle.fired };
  }

  for (const implementation of ['model', 'twin'] as const) {
    const skipUnlessBuilt = (ctx: Mocha.Context) => {
      if (implementation === 'twin' && !findTwinBinary()) ctx.skip();
    };

    it(`${implementation}: power cut at flash operation 10 — the old image boots; with retries the update completes`, async function () {
      skipUnlessBuilt(this);
      const once = await run(implementation, { kind: 'powerCut', flashOp: 10 }, 1);
      assert.equal(once.fired, true);
      assert.equal(once.error, 'RETRIES_EXHAUSTED');
      assert.deepEqual(once.violations, []);
      assert.equal(once.status.firmware.version, '1.0.0');
      assert.match(once.status.status?.lastMessage ?? '', /interrupted/, 'the record of the cut attempt is closed at the next boot');
      await scheduler?.close();
      await fleet?.close();
      const retried = await run(implementation, { kind: 'powerCut', flashOp: 10 }, 8);
      assert.equal(retried.error, null);
      assert.deepEqual(retried.violations, []);
      assert.equal(retried.status.firmware.version, '1.1.0');
    });

    it(`${implementation}: torn write (100 bytes of program 9 land) — the old image boots`, async function () {
      skipUnlessBuilt(this);
      const r = await run(implementation, { kind: 'tornWrite', flashOp: 9, bytes: 100 }, 1);
      assert.equal(r.fired, true);
      assert.equal(r.error, 'RETRIES_EXHAUSTED');
      assert.deepEqual(r.violations, []);
      assert.equal(r.status.firmware.version, '1.0.0');
    });

    it(`${implementation}: flash operation 5 fails with the power on — DEVICE_FLASH_ERROR, Status says FLASH_ERROR, the old image boots`, async function () {
      skipUnlessBuilt(this);
      const r = await run(implementation, { kind: 'flashFail', flashOp: 5 }, 1);
      assert.equal(r.error, 'DEVICE_FLASH_ERROR');
      assert.deepEqual(r.violations, []);
      assert.equal(r.status.firmware.version, '1.0.0');
      assert.equal(r.status.status?.lastResultName, 'FLASH_ERROR');
    });

    it(`${implementation}: power cut during the first-boot diagnostics — the bootloader aborts the image (ESP-IDF), the old one boots, Status says rolled back`, async function () {
      skipUnlessBuilt(this);
      const r = await run(implementation, { kind: 'diagnosticsCut' }, 1);
      assert.equal(r.fired, true);
      assert.equal(r.error, null, 'END succeeded before the reboot into the new image');
      assert.deepEqual(r.violations, []);
      assert.equal(r.status.firmware.version, '1.0.0');
      assert.equal(r.status.status?.lastResultName, 'ROLLED_BACK');
      assert.equal(r.status.status?.last.rolledBack, true);
      assert.match(r.status.status?.lastMessage ?? '', /diagnostics/);
    });

    it(`${implementation}: the otadata write of esp_ota_set_boot_partition fails — DEVICE_SET_BOOT_FAILED, the old image boots`, async function () {
      skipUnlessBuilt(this);
      const r = await run(implementation, { kind: 'otadataFail' }, 1);
      assert.equal(r.error, 'DEVICE_SET_BOOT_FAILED');
      assert.deepEqual(r.violations, []);
      assert.equal(r.status.firmware.version, '1.0.0');
      assert.equal(r.status.status?.lastResultName, 'SET_BOOT_FAILED');
    });

    it(`${implementation}: an NVS write fails (the BEGIN record) — the firmware only logs it; the update completes and boots`, async function () {
      skipUnlessBuilt(this);
      const r = await run(implementation, { kind: 'nvsFail' }, 1);
      assert.equal(r.error, null);
      assert.deepEqual(r.violations, []);
      assert.equal(r.status.firmware.version, '1.1.0');
    });
  }
});
