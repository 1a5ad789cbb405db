import { strict as assert } from 'assert';
import { OtaError } from '../../lib/errors';
import { buildAppImage } from '../../lib/image';
import { flashDevice, readDeviceStatus, scanDevices, verifyDevice } from '../../lib/ota';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { simEnv, type SimEnv } from './sim-env';

const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 64 * 1024, seed: 5 });

function device(overrides: Partial<SimDeviceConfig> = {}): SimDeviceConfig {
  return { name: 'sim-01', chip: 'esp32', version: '1.0.0', ...overrides };
}

describe('ota/verifyDevice, scanDevices, readDeviceStatus on the simulated fleet', function () {
  this.timeout(20000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  it('passes an update that booted and passed diagnostics (auto policy)', async () => {
    env = await simEnv([device()]);
    const flashed = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE });
    const result = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.1.0', imageSha256: flashed.after.imageSha256 ?? undefined } });
    assert.deepEqual(result.reasons, []);
    assert.equal(result.passed, true);
    assert.equal(result.action, 'none');
    assert.equal(result.status.otaStateName, 'valid');
  });

  it('confirms a pending-verify image under the host policy', async () => {
    env = await simEnv([device({ confirmPolicy: 'host' })]);
    await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE });
    const result = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.1.0' }, onPass: 'confirm' });
    assert.equal(result.passed, true);
    assert.equal(result.action, 'confirmed');
    assert.equal(result.status.otaStateName, 'valid');
    const after = await readDeviceStatus(env.scheduler, { device: 'sim-01' });
    assert.equal(after.firmware.state, 'valid');
  });

  it('fails failed diagnostics with a plain sentence and rolls back when asked', async () => {
    env = await simEnv([device({ confirmPolicy: 'host', diagnostics: 'fail' })]);
    await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE });
    const result = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.1.0' }, onPass: 'confirm', onFail: 'rollback' });
    assert.equal(result.passed, false);
    assert.ok(result.reasons.some((r) => /diagnostics failed/.test(r)), result.reasons.join('; '));
    assert.equal(result.action, 'rolled-back');
    const back = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.0.0' } });
    assert.equal(back.status.appVersion, '1.0.0');
    assert.equal(back.passed, false, 'a rolled-back update fails verification by default');
    assert.ok(back.reasons.some((r) => /rolled back/.test(r)), back.reasons.join('; '));
  });

  it('fails when the device runs another version, naming both', async () => {
    env = await simEnv([device()]);
    const result = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '2.0.0' }, waitMs: 5000 });
    assert.equal(result.passed, false);
    assert.match(result.reasons[0], /1\.0\.0.*2\.0\.0/);
  });

  it('reports bad verify options and an absent device', async () => {
    env = await simEnv([device()]);
    const code = (p: Promise<unknown>) => p.then(() => 'RESOLVED', (e: OtaError) => e.code);
    assert.equal(await code(verifyDevice(env.scheduler, { device: 'sim-01', expect: { imageSha256: 'xyz' } })), 'BAD_OPTION');
    assert.equal(await code(verifyDevice(env.scheduler, { device: 'sim-01', expect: {}, onPass: 'maybe' as never })), 'BAD_OPTION');
    assert.equal(await code(verifyDevice(env.scheduler, { device: 'ghost', expect: {}, waitMs: 1000 })), 'DEVICE_NOT_FOUND');
  });

  it('scans devices with firmware from the advertisement and filters them', async () => {
    env = await simEnv([device(), device({ name: 'sim-02', version: '2.1.0' }), device({ name: 'old-03', protocol: 'legacy' })]);
    const all = await scanDevices(env.scheduler, { durationMs: 500 });
    assert.equal(all.length, 3);
    assert.ok(all.some((d) => d.name === 'sim-01') && all.some((d) => d.name === 'sim-02'));
    const sim2 = all.find((d) => d.name === 'sim-02');
    assert.equal(sim2?.firmware.version, '2.1.0');
    assert.equal(sim2?.firmware.state, 'valid');
    assert.equal(sim2?.protocol, 'v2');
    const older = await scanDevices(env.scheduler, { durationMs: 500, namePrefix: 'sim-', olderThan: '2.0.0' });
    assert.deepEqual(older.map((d) => d.name), ['sim-01']);
    assert.deepEqual((await scanDevices(env.scheduler, { durationMs: 500, protocol: 'v2', nameRegex: '^sim-0[2]$' })).map((d) => d.name), ['sim-02']);
    await assert.rejects(scanDevices(env.scheduler, { durationMs: 100, nameRegex: '(' }), (e: OtaError) => e.code === 'BAD_FILTER');
  });

  it('reads the status of a legacy device from its Device Information', async () => {
    env = await simEnv([device({ protocol: 'legacy' })]);
    // Every seed device advertises "esp32": the address is what picks one.
    const report = await readDeviceStatus(env.scheduler, { device: env.devices[0].address });
    assert.equal(report.protocol, 'legacy');
    assert.equal(report.status, null);
  });
});
