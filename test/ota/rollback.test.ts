/**
 * rollbackDevice on keyed simulated devices (host confirm policy): an image pending verify is rolled back
 * and the previous one boots; a device whose running image is not pending is left alone; a device that
 * installed the image but has not restarted into it is waited for (ROLLBACK_TIMEOUT when it never does).
 */
import { strict as assert } from 'assert';
import { appHash, buildAppImage, fileSha256 } from '../../lib/image';
import { flashDevice, readDeviceStatus } from '../../lib/ota';
import { rollbackDevice } from '../../lib/ota/rollback';
import { deriveDeviceKey } from '../../lib/security';
import type { SimDevice } from '../../lib/sim/device';
import { codeOf } from '../helpers/errors';
import { simEnv, type SimEnv } from './sim-env';

const MASTER = Buffer.alloc(32, 0x33);
const ADDRESS = 'a4:cf:12:00:00:07';
const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 64 * 1024, seed: 5 });
const IMAGE_SHA = appHash(IMAGE).toString('hex');
const FILE_SHA = fileSha256(IMAGE).toString('hex');

const keyed = () => ({ name: 'rb-1', address: ADDRESS, chip: 'esp32' as const, version: '1.0.0', confirmPolicy: 'host' as const, deviceKey: deriveDeviceKey(MASTER, ADDRESS) });

describe('ota/rollbackDevice (simulated fleet)', function () {
  this.timeout(30000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  it('rolls back an image pending verify; the previous image boots again', async () => {
    env = await simEnv([keyed()]);
    const before = await readDeviceStatus(env.scheduler, { device: ADDRESS });
    await flashDevice(env.scheduler, { device: ADDRESS, image: IMAGE, masterKey: MASTER });
    const result = await rollbackDevice(env.scheduler, { device: ADDRESS, imageSha256: IMAGE_SHA, masterKey: MASTER });
    assert.equal(result.action, 'rolled-back');
    assert.equal(result.status?.runningSha256, IMAGE_SHA);
    assert.equal(result.status?.otaStateName, 'pending-verify');
    await new Promise<void>((resolve) => env.clock.setTimer(resolve, 3000));
    const after = await readDeviceStatus(env.scheduler, { device: ADDRESS });
    assert.equal(after.firmware.imageSha256, before.firmware.imageSha256);
    assert.equal(after.status?.last.rolledBack, true);
  });

  it('leaves a device alone whose running image is not pending (nothing was installed)', async () => {
    env = await simEnv([keyed()]);
    const result = await rollbackDevice(env.scheduler, { device: ADDRESS, imageSha256: IMAGE_SHA, masterKey: MASTER });
    assert.equal(result.action, 'none');
    assert.equal(result.status?.otaStateName, 'valid');
    assert.equal((env.devices[0] as SimDevice).machine.restarts.length, 0, 'no restart');
  });

  it('waits for a device that installed the image and has not restarted; ROLLBACK_TIMEOUT when it never does', async () => {
    env = await simEnv([keyed()]);
    await flashDevice(env.scheduler, { device: ADDRESS, image: IMAGE, masterKey: MASTER, reboot: false });
    assert.equal(await codeOf(rollbackDevice(env.scheduler, { device: ADDRESS, imageSha256: IMAGE_SHA, fileSha256: FILE_SHA, masterKey: MASTER, waitMs: 3000 })), 'ROLLBACK_TIMEOUT');
  });

  it('a device that restarts into the installed image while it waits is rolled back', async () => {
    env = await simEnv([keyed()]);
    await flashDevice(env.scheduler, { device: ADDRESS, image: IMAGE, masterKey: MASTER, reboot: false });
    env.clock.setTimer(() => (env.devices[0] as SimDevice).powerLoss(100), 1500);
    const result = await rollbackDevice(env.scheduler, { device: ADDRESS, imageSha256: IMAGE_SHA, fileSha256: FILE_SHA, masterKey: MASTER, waitMs: 20000 });
    assert.equal(result.action, 'rolled-back');
    assert.equal(result.status?.runningSha256, IMAGE_SHA);
  });

  it('refuses bad options before any BLE activity', async () => {
    env = await simEnv([keyed()]);
    assert.equal(await codeOf(rollbackDevice(env.scheduler, { device: ADDRESS, imageSha256: 'nope' })), 'BAD_OPTION');
    assert.equal(await codeOf(rollbackDevice(env.scheduler, { device: ADDRESS, waitMs: 0 })), 'BAD_OPTION');
    assert.equal(await codeOf(rollbackDevice(env.scheduler, { device: ADDRESS, masterKey: MASTER, fleetKey: MASTER })), 'BAD_OPTION');
    assert.equal(env.fleet.radio.stats().devices[ADDRESS]?.connections ?? 0, 0);
  });
});
