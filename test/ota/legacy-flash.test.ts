/**
 * flashDevice and scanDevices against the seed firmware model on the simulated fleet: the DONE write the
 * seed never answers, DONE_NAK, a link lost around DONE, devices that all advertise "esp32" and no
 * service UUID, and images the seed's 1 MiB partition cannot hold.
 */
import { strict as assert } from 'assert';
import { OtaError } from '../../lib/errors';
import { buildAppImage } from '../../lib/image';
import { flashDevice, scanDevices } from '../../lib/ota';
import type { Progress } from '../../lib/ota/types';
import { LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LegacyOp } from '../../lib/protocol/constants';
import type { SimDevice } from '../../lib/sim/device';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { simEnv, type SimEnv } from './sim-env';
import { codeOf } from '../helpers/errors';

const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 60 * 1024, seed: 11 });

function seed(name: string, overrides: Partial<SimDeviceConfig> = {}): SimDeviceConfig {
  return { name, chip: 'esp32', version: '1.0.0', protocol: 'legacy', ...overrides };
}

function v2(name: string): SimDeviceConfig {
  return { name, chip: 'esp32', version: '1.0.0' };
}

/** Counts the Control commands a device receives (REQUEST = one transfer begun). */
function countCommands(device: SimDevice): Map<number, number> {
  const counts = new Map<number, number>();
  const onWrite = device.onWrite.bind(device);
  device.onWrite = (service, characteristic, data, withoutResponse, conn) => {
    if (characteristic.toLowerCase() === LEGACY_CONTROL_UUID && data.length === 1) counts.set(data[0], (counts.get(data[0]) ?? 0) + 1);
    return onWrite(service, characteristic, data, withoutResponse, conn);
  };
  return counts;
}

describe('ota: seed-firmware (legacy) devices on the simulated fleet', function () {
  this.timeout(30000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  it('a successful update is reported once, with attempts 1, and the device installs the image exactly once', async () => {
    env = await simEnv([seed('seed-1')]);
    const device = env.devices[0] as SimDevice;
    const commands = countCommands(device);
    const events: Progress[] = [];
    const result = await flashDevice(env.scheduler, { device: device.address, image: IMAGE, onProgress: (p) => events.push(p) });
    assert.equal(result.success, true);
    assert.equal(result.protocol, 'legacy');
    assert.equal(result.attempts, 1);
    assert.equal(events.filter((e) => e.phase === 'done').length, 1);
    assert.equal(events.filter((e) => e.phase === 'failed').length, 0);
    // Long enough for any retry (backoff 500 ms and up) to have shown.
    await new Promise<void>((resolve) => env.clock.setTimer(resolve, 5000));
    assert.equal(commands.get(LegacyOp.REQUEST), 1, 'one transfer');
    assert.equal(commands.get(LegacyOp.DONE), 1, 'one DONE');
    assert.deepEqual(device.machine.restarts.map((r) => r.reason), ['seed firmware restarts after DONE_ACK']);
    assert.ok(device.flash.imageBytes(1).subarray(0, IMAGE.length).equals(IMAGE), 'ota_1 holds the image');
    assert.equal(device.flash.otadata.selectionOrder()[0], 1, 'and boots it');
  });

  it('DONE_NAK fails LEGACY_DONE_NAK at once: no retry, no restart, the old image keeps running', async () => {
    env = await simEnv([seed('seed-1')]);
    const device = env.devices[0] as SimDevice;
    const commands = countCommands(device);
    // Built for another chip: the host cannot tell (the seed reports no chip), esp_ota_end refuses it.
    const wrongChip = buildAppImage({ chip: 'esp32c3', version: '1.1.0', size: 20 * 1024, seed: 12 });
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: device.address, image: wrongChip })), 'LEGACY_DONE_NAK');
    assert.equal(commands.get(LegacyOp.REQUEST), 1);
    assert.equal(device.machine.restarts.length, 0);
    assert.equal(device.flash.otadata.selectionOrder()[0], 0);
  });

  it('a link lost before DONE reached the device: the retry reads Control (REQUEST_ACK), sends the image again, one install', async () => {
    env = await simEnv([seed('seed-1')]);
    const device = env.devices[0] as SimDevice;
    const commands = countCommands(device);
    // Packet size (2) + REQUEST (1) + the image: the DONE write is the one the link dies on.
    env.radio.injectFault(device.address, { kind: 'disconnectAfterBytes', bytes: 3 + IMAGE.length });
    const result = await flashDevice(env.scheduler, { device: device.address, image: IMAGE });
    assert.equal(result.attempts, 2);
    assert.equal(commands.get(LegacyOp.REQUEST), 2);
    assert.equal(commands.get(LegacyOp.DONE), 1);
    assert.equal(device.machine.restarts.length, 1);
  });

  it('with no attempt left, a link lost before DONE reached the device is RETRIES_EXHAUSTED saying the device kept its image', async () => {
    env = await simEnv([seed('seed-1')]);
    const device = env.devices[0] as SimDevice;
    const commands = countCommands(device);
    env.radio.injectFault(device.address, { kind: 'disconnectAfterBytes', bytes: 3 + IMAGE.length });
    const err = await flashDevice(env.scheduler, { device: device.address, image: IMAGE, maxAttempts: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof OtaError && err.code === 'RETRIES_EXHAUSTED', String(err));
    assert.match(err.message, /DONE never reached the device/);
    assert.equal(commands.get(LegacyOp.REQUEST), 1);
    assert.equal(device.machine.restarts.length, 0);
  });

  for (const maxAttempts of [5, 1]) {
    it(`a restart between DONE and its answer: the outcome cannot be known, so it is reported and nothing is sent again (maxAttempts ${maxAttempts})`, async () => {
      env = await simEnv([seed('seed-1')]);
      const device = env.devices[0] as SimDevice;
      const commands = countCommands(device);
      const onWrite = device.onWrite.bind(device);
      device.onWrite = (service, characteristic, data, withoutResponse, conn) => {
        if (characteristic.toLowerCase() === LEGACY_CONTROL_UUID && data[0] === LegacyOp.DONE) {
          env.radio.injectFault(device.address, { kind: 'powerLoss', offMs: 100 });
          return new Promise<void>(() => undefined);
        }
        return onWrite(service, characteristic, data, withoutResponse, conn);
      };
      let error: OtaError | null = null;
      await flashDevice(env.scheduler, { device: device.address, image: IMAGE, maxAttempts }).catch((e: OtaError) => (error = e));
      const failure = error as OtaError | null;
      assert.equal(failure?.code, 'LEGACY_OUTCOME_UNKNOWN', `it looked even with no attempt left: ${failure?.message}`);
      assert.match(failure?.message ?? '', /restarted/);
      assert.equal(commands.get(LegacyOp.REQUEST), 1, 'the image was not sent again');
    });
  }

  it('refuses a name several devices advertise (every seed device is "esp32"); an address picks one', async () => {
    env = await simEnv([seed('seed-1'), seed('seed-2')]);
    const before = env.devices.map((d) => env.bytesToDevice(d.address));
    const err = await flashDevice(env.scheduler, { device: 'esp32', image: IMAGE }).catch((e: unknown) => e);
    assert.ok(err instanceof OtaError && err.code === 'DEVICE_NAME_AMBIGUOUS', String(err));
    assert.deepEqual([...(err.details?.addresses as string[])].sort(), env.devices.map((d) => d.address).sort());
    assert.deepEqual(env.devices.map((d) => env.bytesToDevice(d.address)), before, 'nothing written');
    const result = await flashDevice(env.scheduler, { device: env.devices[1].address, image: IMAGE });
    assert.equal(result.device.address, env.devices[1].address);
  });

  it('refuses an image larger than the seed partition before any write; legacyPartitionSize overrides the size', async () => {
    env = await simEnv([seed('seed-1'), seed('seed-big', { otaPartitionSize: 0x140000 })]);
    const [small, big] = env.devices;
    const huge = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 0x100000 + 4096, seed: 13 });
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: small.address, image: huge })), 'LEGACY_IMAGE_TOO_LARGE');
    assert.equal(env.bytesToDevice(small.address), 0, 'no write reached the device');
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: small.address, image: huge, protocol: 'legacy' })), 'LEGACY_IMAGE_TOO_LARGE');
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: small.address, image: IMAGE, legacyPartitionSize: -1 })), 'BAD_OPTION');
    const result = await flashDevice(env.scheduler, { device: big.address, image: huge, legacyPartitionSize: 0x140000 });
    assert.equal(result.attempts, 1);
  });

  it('an image a few bytes under the partition is sent in packets whose padded end stays inside it', async () => {
    env = await simEnv([seed('seed-1', { otaPartitionSize: 0x40000 })]);
    const device = env.devices[0] as SimDevice;
    const image = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 0x40000 - 16, seed: 14 });
    const result = await flashDevice(env.scheduler, { device: device.address, image, legacyPartitionSize: 0x40000 });
    assert.equal(result.attempts, 1);
    assert.ok(device.flash.imageBytes(1).subarray(0, image.length).equals(image));
  });

  it('scan with protocol=legacy finds seed devices, which advertise no service UUID, by their GATT table', async () => {
    env = await simEnv([v2('line-1'), seed('seed-1'), seed('seed-2'), v2('line-2')]);
    const all = await scanDevices(env.scheduler, { durationMs: 500 });
    assert.deepEqual(all.filter((d) => d.name === 'esp32').map((d) => d.advertisement.serviceUuids), [[], []]);
    const legacy = await scanDevices(env.scheduler, { durationMs: 500, protocol: 'legacy' });
    assert.deepEqual(legacy.map((d) => d.address).sort(), [env.devices[1].address, env.devices[2].address].sort());
    assert.ok(legacy.every((d) => d.protocol === 'legacy' && d.protocolSource === 'gatt' && d.name === 'esp32'));
    const v2s = await scanDevices(env.scheduler, { durationMs: 500, protocol: 'v2' });
    assert.deepEqual(v2s.map((d) => d.name), ['line-1', 'line-2']);
    assert.deepEqual(await scanDevices(env.scheduler, { durationMs: 500, protocol: 'unknown' }), []);
  });

  it('a seed device gets Data writes with response, at most MTU 256 - 3 bytes each', async () => {
    env = await simEnv([seed('seed-1')]);
    const device = env.devices[0] as SimDevice;
    const sizes: number[] = [];
    const onWrite = device.onWrite.bind(device);
    device.onWrite = (service, characteristic, data, withoutResponse, conn) => {
      if (characteristic.toLowerCase() === LEGACY_DATA_UUID) sizes.push(withoutResponse ? -data.length : data.length);
      return onWrite(service, characteristic, data, withoutResponse, conn);
    };
    await flashDevice(env.scheduler, { device: device.address, image: IMAGE });
    // The central's own MTU may be lower (the radio decides); the seed's 256 caps it.
    assert.ok(Math.max(...sizes) <= 253 && Math.max(...sizes) > 20, `largest packet ${Math.max(...sizes)}`);
    assert.ok(sizes.every((s) => s > 0), 'every write with response');
  });
});
