/**
 * SimDevice.installs, the counter the plant reports per device: one per boot switch into a newly written
 * image (END succeeded and the boot partition was switched), none for a refused or interrupted update,
 * and a rollback after failing diagnostics does not add one (virtual clock, simulated fleet).
 */
import { strict as assert } from 'assert';
import { buildAppImage } from '../../lib/image';
import { flashDevice } from '../../lib/ota';
import { SimDevice } from '../../lib/sim/device';
import { codeOf } from '../helpers/errors';
import { simEnv, type SimEnv } from '../ota/sim-env';

const V11 = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 64 * 1024, seed: 31 });
const V12 = buildAppImage({ chip: 'esp32', version: '1.2.0', size: 64 * 1024, seed: 32 });
const C3 = buildAppImage({ chip: 'esp32c3', version: '1.1.0', size: 64 * 1024, seed: 33 });

/** Waits (clock time, at most 10 s) until the device runs this version. */
async function bootInto(device: SimDevice, version: string): Promise<void> {
  for (let i = 0; i < 100 && device.machine.runningApp?.version !== version; i++) await new Promise((r) => device.machine.clock.setTimer(() => r(undefined), 100));
}

describe('sim/plant: the install counter of a simulated device', function () {
  this.timeout(30000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  it('counts each successful install once; a refused image counts nothing', async () => {
    env = await simEnv([{ name: 'count-01', chip: 'esp32', version: '1.0.0' }]);
    const device = env.devices[0] as SimDevice;
    assert.equal(device.installs, 0);
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'count-01', image: C3 })), 'WRONG_CHIP');
    assert.equal(device.installs, 0);
    await flashDevice(env.scheduler, { device: 'count-01', image: V11 });
    assert.equal(device.installs, 1);
    await flashDevice(env.scheduler, { device: 'count-01', image: V12 });
    assert.equal(device.installs, 2);
    await bootInto(device, '1.2.0');
    assert.equal(device.machine.runningApp?.version, '1.2.0');
  });

  it('an install whose diagnostics fail counts once and the device runs the old image again', async () => {
    env = await simEnv([{ name: 'count-02', chip: 'esp32', version: '1.0.0', diagnostics: 'fail' }]);
    const device = env.devices[0] as SimDevice;
    await flashDevice(env.scheduler, { device: 'count-02', image: V11 });
    // The reboot into 1.1.0, then the rollback's reboot into 1.0.0.
    for (let i = 0; i < 100 && !(device.machine.restarts.length >= 2 && device.machine.state === 'running'); i++) await new Promise((r) => env.clock.setTimer(() => r(undefined), 100));
    assert.ok(device.machine.restarts.length >= 2, `restarts: ${device.machine.restarts.map((r) => r.reason).join(', ')}`);
    assert.equal(device.machine.runningApp?.version, '1.0.0', 'rolled back');
    assert.equal(device.installs, 1);
  });
});
