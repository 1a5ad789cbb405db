import { strict as assert } from 'assert';
import { readFileSync } from 'fs';
import { OtaError } from '../../lib/errors';
import { buildAppImage } from '../../lib/image';
import { flashDevice, readDeviceStatus } from '../../lib/ota';
import type { Progress } from '../../lib/ota/types';
import { SimDevice } from '../../lib/sim/device';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { simEnv, type SimEnv } from './sim-env';
import { vectorPath } from '../helpers/paths';
import { codeOf } from '../helpers/errors';

const KEY = Buffer.alloc(32, 7);
/** A BEGIN without manifest is 93 bytes (PROTOCOL.md §2.1): fewer bytes to the device mean none was sent. */
const BEGIN_SIZE = 93;

function device(overrides: Partial<SimDeviceConfig> = {}): SimDeviceConfig {
  return { name: 'sim-01', chip: 'esp32', version: '1.0.0', ...overrides };
}

const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 120 * 1024, seed: 3 });

describe('ota/flashDevice on the simulated fleet (virtual clock)', function () {
  this.timeout(20000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  it('updates a v2 device with raw encoding and reports modeled time, bytes on air, before/after and progress', async () => {
    env = await simEnv([device()]);
    const events: Progress[] = [];
    const result = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'raw', onProgress: (p) => events.push(p) });
    assert.equal(result.success, true);
    assert.equal(result.protocol, 'v2');
    assert.equal(result.encoding, 'raw');
    assert.equal(result.bytes, IMAGE.length);
    assert.ok(result.bytesOnAir > IMAGE.length && result.bytesOnAir < IMAGE.length * 1.05, `bytesOnAir ${result.bytesOnAir}`);
    assert.equal(result.secondsKind, 'modeled');
    // 120 KiB over a 1M PHY link cannot beat ~98 KB/s of ATT payload, and must not crawl.
    assert.ok(result.seconds > IMAGE.length / 98000 && result.seconds < 5, `seconds ${result.seconds}`);
    assert.ok(Math.abs(result.kBps - IMAGE.length / result.seconds / 1000) < 0.1);
    assert.equal(result.before?.version, '1.0.0');
    assert.equal(result.after.version, '1.1.0');
    assert.equal(result.attempts, 1);
    const phases = events.map((e) => e.phase);
    for (const p of ['waiting', 'connecting', 'authenticating', 'transferring', 'finishing', 'rebooting', 'done']) assert.ok(phases.includes(p as Progress['phase']), p);
    const done = events.map((e) => e.bytesDone);
    assert.deepEqual(done, [...done].sort((a, b) => a - b), 'progress never goes back');
    assert.equal(events[events.length - 1].percent, 100);
    const status = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(status.firmware.version, '1.1.0');
    assert.equal(status.firmware.imageSha256, result.after.imageSha256);
  });

  it('finds the image already installed and unconfirmed (another gateway died before confirming): success, no BEGIN', async () => {
    env = await simEnv([device({ confirmPolicy: 'host' })]);
    const first = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'raw' });
    assert.equal(first.success, true);
    const pending = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(pending.firmware.state, 'pending-verify');
    const sent = env.bytesToDevice(env.devices[0].address);
    const again = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'raw' });
    assert.equal(again.success, true);
    assert.equal(again.attempts, 1);
    assert.equal(again.before?.state, 'pending-verify');
    assert.ok(env.bytesToDevice(env.devices[0].address) - sent < BEGIN_SIZE, 'no BEGIN, no data: only the Status read and the subscription');
    const after = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(after.firmware.state, 'pending-verify', 'confirming is the verify step\'s decision');
    assert.equal(after.firmware.imageSha256, first.after.imageSha256);
  });

  it('sends fewer bytes with deflate and the device ends up with the same image', async () => {
    env = await simEnv([device()]);
    const result = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'deflate' });
    assert.equal(result.encoding, 'deflate');
    assert.ok(result.bytesOnAir < IMAGE.length * 0.8, `bytesOnAir ${result.bytesOnAir} of ${IMAGE.length}`);
    const status = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(status.firmware.imageSha256, result.after.imageSha256);
  });

  it('updates a device running the seed firmware with the legacy protocol', async () => {
    env = await simEnv([device({ protocol: 'legacy' })]);
    const result = await flashDevice(env.scheduler, { device: env.devices[0].address, image: IMAGE });
    assert.equal(result.protocol, 'legacy');
    assert.equal(result.encoding, 'raw');
    assert.ok(result.bytesOnAir >= IMAGE.length);
  });

  it('reconnects after a dropped link and resumes where the device left off', async () => {
    env = await simEnv([device()]);
    const address = env.devices[0].address;
    env.radio.injectFault(address, { kind: 'disconnectAfterBytes', bytes: Math.floor(IMAGE.length / 2) });
    const events: Progress[] = [];
    const result = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'raw', onProgress: (p) => events.push(p) });
    assert.equal(result.attempts, 2);
    assert.ok(events.some((e) => e.phase === 'reconnecting' && e.attempt === 2));
    // A restart from 0 would send about 1.5x the image; a resume a little more than 1x.
    assert.ok(result.bytesOnAir < IMAGE.length * 1.25, `bytesOnAir ${result.bytesOnAir}`);
    const resumedAt = events.find((e) => e.attempt === 2 && e.phase === 'transferring');
    assert.ok(resumedAt && resumedAt.bytesDone > IMAGE.length / 4, 'the second attempt starts past the middle');
    const status = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(status.firmware.version, '1.1.0');
  });

  it('gives up with RETRIES_EXHAUSTED after maxAttempts when the device stays away', async () => {
    env = await simEnv([device()]);
    env.radio.injectFault(env.devices[0].address, { kind: 'disconnectAfterBytes', bytes: 20000 });
    const flashing = flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, maxAttempts: 3, onProgress: (p) => {
      if (p.phase === 'reconnecting') env.radio.injectFault(env.devices[0].address, { kind: 'vanish' });
    } });
    const err = await flashing.catch((e: OtaError) => e);
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'RETRIES_EXHAUSTED');
    assert.equal(err.details?.attempts, 3);
  });

  it('cancels through the AbortSignal and the device drops the session (ABORT sent)', async () => {
    env = await simEnv([device()]);
    const controller = new AbortController();
    const flashing = flashDevice(env.scheduler, {
      device: 'sim-01',
      image: IMAGE,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'transferring' && p.bytesDone > 30000) controller.abort();
      },
    });
    assert.equal(await codeOf(flashing), 'CANCELLED');
    const status = await readDeviceStatus(env.scheduler, { device: 'sim-01', findTimeoutMs: 5000 });
    assert.equal(status.status?.sessionStateName, 'idle');
    assert.equal(status.status?.lastResultName, 'ABORTED');
    assert.equal(status.firmware.version, '1.0.0');
  });

  it('never opens more links than maxConnections while flashing several devices', async () => {
    env = await simEnv([device(), device({ name: 'sim-02' }), device({ name: 'sim-03' })], { scheduler: { maxConnections: 2 } });
    let peak = 0;
    const track = () => (peak = Math.max(peak, env.radio.connectedDevices().length));
    const results = await Promise.all(['sim-01', 'sim-02', 'sim-03'].map((d) => flashDevice(env.scheduler, { device: d, image: IMAGE, onProgress: track })));
    assert.equal(results.length, 3);
    assert.equal(peak, 2);
  });

  describe('bad input: a distinct code, and nothing sent to the device', () => {
    const vector = (name: string) => readFileSync(vectorPath(name));
    const cases: Array<[string, () => unknown, string]> = [
      ['not a Buffer', () => 'firmware.bin', 'NOT_A_BUFFER'],
      ['empty', () => Buffer.alloc(0), 'EMPTY_IMAGE'],
      ['truncated', () => IMAGE.subarray(0, 20), 'TRUNCATED_IMAGE'],
      ['not an ESP image', () => Buffer.alloc(4096, 0x41), 'NOT_ESP_IMAGE'],
      ['a bootloader', () => vector('bad-esp32c3-bootloader.bin'), 'BOOTLOADER_IMAGE'],
      ['a damaged image', () => vector('bad-sha256-mismatch.bin'), 'BAD_SHA256'],
    ];
    for (const [what, image, code] of cases) {
      it(`refuses ${what} with ${code}`, async () => {
        env = await simEnv([device()]);
        assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: image() as Buffer })), code);
        const stats = env.radio.stats().devices[env.devices[0].address];
        assert.equal(stats.connections, 0, 'no connection was made');
        assert.equal(stats.gatt.valueBytesToPeripheral, 0);
      });
    }

    it('refuses an image for another chip before BEGIN (WRONG_CHIP) and the expected-chip option before any connection', async () => {
      env = await simEnv([device({ chip: 'esp32c3' })]);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, expectedChip: 'esp32c3' })), 'WRONG_CHIP');
      assert.equal(env.radio.stats().devices[env.devices[0].address].connections, 0);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE })), 'WRONG_CHIP');
      // Connected, read Status, subscribed: only the CCCD write went out, no BEGIN (61 bytes) and no data.
      assert.ok(env.bytesToDevice(env.devices[0].address) < 61);
    });

    it('refuses a downgrade (DOWNGRADE) and an image larger than the partition (IMAGE_TOO_LARGE / DEVICE_IMAGE_TOO_LARGE)', async () => {
      env = await simEnv([device({ version: '2.0.0' }), device({ name: 'sim-02', otaPartitionSize: 160 * 1024 })]);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE })), 'DOWNGRADE');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, preventDowngrade: false, partitionSize: 64 * 1024 })), 'IMAGE_TOO_LARGE');
      assert.ok(env.bytesToDevice(env.devices[0].address) < 61);
    });

    it('refuses an image larger than the update partition the device reports before BEGIN (IMAGE_TOO_LARGE, nothing erased)', async () => {
      env = await simEnv([device({ otaPartitionSize: 160 * 1024 })]);
      const big = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 200 * 1024, seed: 4 });
      const err = await flashDevice(env.scheduler, { device: 'sim-01', image: big }).catch((e: unknown) => e as OtaError);
      assert.ok(err instanceof OtaError);
      // Status update_partition_size is read before BEGIN: the device never sees one (it would answer DEVICE_IMAGE_TOO_LARGE).
      assert.equal(err.code, 'IMAGE_TOO_LARGE');
      assert.deepEqual([err.details?.imageSize, err.details?.partitionSize], [big.length, 160 * 1024]);
      assert.ok(env.bytesToDevice(env.devices[0].address) < BEGIN_SIZE, 'only the CCCD write went out, no BEGIN');
      assert.equal((env.devices[0] as SimDevice).flash.opCount, 0, 'nothing erased or written');
    });

    it('reports an unknown device, a bad device reference, bad options and a bad fleet key', async () => {
      env = await simEnv([device()]);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'nobody', image: IMAGE, findTimeoutMs: 1000 })), 'DEVICE_NOT_FOUND');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: '', image: IMAGE })), 'BAD_DEVICE');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, encoding: 'zip' as never })), 'BAD_OPTION');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, fleetKey: Buffer.alloc(5) })), 'BAD_FLEET_KEY');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, expectedVersion: '9.9.9' })), 'VERSION_MISMATCH');
      assert.equal(env.radio.stats().devices[env.devices[0].address].connections, 0);
    });

    it('reports a missing or wrong fleet key (FLEET_KEY_REQUIRED, DEVICE_AUTH_FAILED) and accepts the right one', async () => {
      env = await simEnv([device({ fleetKey: KEY })]);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE })), 'FLEET_KEY_REQUIRED');
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, fleetKey: Buffer.alloc(32, 1) })), 'DEVICE_AUTH_FAILED');
      const ok = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, fleetKey: KEY });
      assert.equal(ok.success, true);
    });

    it('reports an adapter that is off (ADAPTER_OFF) or missing (ADAPTER_MISSING)', async () => {
      env = await simEnv([device()], { adapterState: 'poweredOff' });
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE })), 'ADAPTER_OFF');
      await env.close();
      env = await simEnv([device()], { adapterState: 'unsupported' });
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE })), 'ADAPTER_MISSING');
    });

    it('fails DEVICE_BUSY when the device is being updated and the caller does not want to wait', async () => {
      env = await simEnv([device()]);
      let second: Promise<string> | null = null;
      const first = flashDevice(env.scheduler, {
        device: 'sim-01',
        image: IMAGE,
        onProgress: (p) => {
          if (p.phase === 'transferring' && !second) second = codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, waitIfBusy: false }));
        },
      });
      await first;
      assert.equal(await second, 'DEVICE_BUSY');
    });
  });
});
