import { strict as assert } from 'assert';
import { createECDH } from 'crypto';
import { sleep } from '../../lib/clock';
import { OtaError } from '../../lib/errors';
import { OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../../lib/protocol/constants';
import { createTwinDevice, findTwinBinary, securityArgs } from '../../lib/sim/twin-device';
import type { PeripheralHost, SimDeviceConfig, VirtualPeripheral } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';

function releaseKey(): Buffer {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh.getPublicKey(); // uncompressed SEC1: 0x04 || X || Y
}

const base: SimDeviceConfig = { name: 'twin-sec', chip: 'esp32c3', version: '1.0.0', implementation: 'twin' };

describe('sim/twin security options', () => {
  it('maps the device config to the twin options, device_id from the address', () => {
    const key0 = releaseKey();
    const key2 = releaseKey();
    const args = securityArgs(
      { ...base, deviceKey: Buffer.alloc(32, 7), releaseKeys: [key0, key2], allowUnauthenticated: true, provisioningWindowMs: 5000, signedImagesRequired: true, releaseFloor: 9 },
      'a4:cf:12:00:00:01',
    );
    assert.deepEqual(args, [
      '--device-id', 'a4cf12000001',
      '--device-key', '07'.repeat(32),
      '--release-key', `0:${key0.toString('hex')}`,
      '--release-key', `1:${key2.toString('hex')}`,
      '--allow-unauthenticated',
      '--provisioning-window-ms', '5000',
      '--signed-required',
      '--release-floor', '9',
    ]);
    assert.deepEqual(securityArgs(base, 'a4:cf:12:00:00:01'), ['--device-id', 'a4cf12000001']);
  });

  it('refuses malformed keys with a typed error', () => {
    const expectBad = (config: SimDeviceConfig): void =>
      assert.throws(() => securityArgs(config, 'a4:cf:12:00:00:01'), (err: unknown) => err instanceof OtaError && err.code === 'BAD_PARAMETER');
    expectBad({ ...base, deviceKey: Buffer.alloc(31) });
    expectBad({ ...base, releaseKeys: [Buffer.alloc(65)] }); // not an uncompressed point (0x04 first)
    expectBad({ ...base, releaseKeys: [releaseKey(), releaseKey(), releaseKey(), releaseKey(), releaseKey()] });
    expectBad({ ...base, provisioningWindowMs: -1 });
    expectBad({ ...base, releaseFloor: 1.5 });
  });

  describe('the running twin (needs make -C firmware/test twin)', () => {
    let device: VirtualPeripheral | null = null;
    afterEach(async () => {
      await device?.shutdown?.();
      device = null;
    });

    async function statusOf(config: SimDeviceConfig): Promise<Buffer> {
      const clock = new VirtualClock();
      const host: PeripheralHost = { clock, notify: () => undefined, dropConnection: () => undefined, advertisingChanged: () => undefined };
      device = await createTwinDevice(config, clock);
      device.attach(host);
      await clock.runUntil(sleep(clock, 500));
      device.onConnect(256);
      return clock.runUntil(Promise.resolve(device.onRead(OTA_SERVICE_UUID, STATUS_CHAR_UUID)));
    }

    it('reports Status format 2 with the configured identity, keys and floor', async function () {
      if (!findTwinBinary()) this.skip();
      const status = await statusOf({ ...base, address: 'a4:cf:12:00:00:01', releaseKeys: [releaseKey()], releaseFloor: 4 });
      assert.equal(status.length, 252);
      assert.equal(status[0], 2, 'format 2');
      const caps = status.readUInt16LE(2);
      assert.ok(caps & (1 << 6), 'a release key: manifest required');
      assert.equal(caps & (1 << 10), 0, 'provisioned (release key)');
      assert.equal(status.readUInt32LE(236), 4, 'release_floor');
      assert.equal(status.subarray(240, 246).toString('hex'), 'a4cf12000001', 'device_id = the address');
      assert.equal(status[246], 0b0001, 'release_key_ids');
    });

    it('is secure by default: no keys, no opt-out -> not provisioned', async function () {
      if (!findTwinBinary()) this.skip();
      const caps = (await statusOf(base)).readUInt16LE(2);
      assert.ok(caps & (1 << 10), 'caps bit10 not provisioned');
      assert.equal(caps & (1 << 9), 0);
    });
  });
});
