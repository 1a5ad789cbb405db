/**
 * Issue 9 finding 2: power lost right after the device processed END (image installed, boot partition
 * switched) but before its answer reached the gateway. The next attempt must find out from the
 * device's Status that the new image is there instead of reporting a failure (BEGIN is refused while
 * the new image is pending verify) or sending it again.
 */
import { strict as assert } from 'assert';
import { buildAppImage } from '../../lib/image';
import { flashDevice } from '../../lib/ota';
import { CONTROL_CHAR_UUID, Op } from '../../lib/protocol/constants';
import type { SimDevice } from '../../lib/sim/device';
import { simEnv, type SimEnv } from './sim-env';

const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 96 * 1024, seed: 21 });

describe('ota: an END whose answer is lost to a power cut', () => {
  let env: SimEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  for (const policy of ['host', 'auto'] as const) {
    it(`is resolved by reading Status: success, one install, nothing sent again (${policy} policy)`, async () => {
      env = await simEnv([{ name: 'line-01', chip: 'esp32', version: '1.0.0', confirmPolicy: policy }]);
      const device = env.devices[0] as SimDevice;
      let begins = 0;
      const onWrite = device.onWrite.bind(device);
      device.onWrite = (service, characteristic, data, withoutResponse, conn) => {
        if (characteristic.toLowerCase() === CONTROL_CHAR_UUID && data[0] === Op.BEGIN) begins++;
        if (characteristic.toLowerCase() === CONTROL_CHAR_UUID && data[0] === Op.END) cutAfterBootSwitch(device, env as SimEnv);
        return onWrite(service, characteristic, data, withoutResponse, conn);
      };
      const result = await flashDevice(env.scheduler, { device: device.address, image: IMAGE, maxAttempts: 3 });
      assert.equal(result.success, true);
      assert.equal(result.attempts, 2, 'the second attempt found the image installed');
      assert.equal(begins, 1, 'the image was not sent again');
      assert.equal(device.flash.otadata.bootSlot(), 1);
    });
  }
});

/** Power is cut at the first clock step after the device switched its boot partition. */
function cutAfterBootSwitch(device: SimDevice, env: SimEnv): void {
  const poll = () => {
    if (device.flash.otadata.bootSlot() === 1) env.radio.injectFault(device.address, { kind: 'powerLoss', offMs: 50 });
    else env.clock.setTimer(poll, 0.05);
  };
  poll();
}

describe('ota: bytes damaged on air (a corruption the link layer CRC missed)', () => {
  let env: SimEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('a flipped bit in a Data write (END: HASH_MISMATCH, old image kept) is retried and the update succeeds', async () => {
    env = await simEnv([{ name: 'line-01', chip: 'esp32', version: '1.0.0' }]);
    const device = env.devices[0] as SimDevice;
    env.fleet.injectFault('line-01', { kind: 'flipWrite', n: 20, byte: 40, bit: 3 });
    const result = await flashDevice(env.scheduler, { device: device.address, image: IMAGE, maxAttempts: 3, encoding: 'raw' });
    assert.equal(result.success, true);
    assert.equal(result.attempts, 2);
    assert.equal(device.flash.otadata.bootSlot(), 1);
  });

  it('a damaged notification (malformed to the client) is retried; an END answer lost that way resolves by Status', async () => {
    env = await simEnv([{ name: 'line-01', chip: 'esp32', version: '1.0.0' }]);
    const device = env.devices[0] as SimDevice;
    let notifications = 0;
    const observed = env.radio.onGattTraffic;
    env.radio.onGattTraffic = (e) => {
      if (e.kind === 'notification') notifications++;
      observed?.(e);
    };
    // A dry run counts the Control notifications of one whole update; the last one is END's answer.
    await flashDevice(env.scheduler, { device: device.address, image: IMAGE, maxAttempts: 1 });
    const perUpdate = notifications;
    await env.close();
    env = await simEnv([{ name: 'line-01', chip: 'esp32', version: '1.0.0' }]);
    const fresh = env.devices[0] as SimDevice;
    env.fleet.injectFault('line-01', { kind: 'corruptNotification', n: perUpdate, byte: 1, bit: 7 });
    const result = await flashDevice(env.scheduler, { device: fresh.address, image: IMAGE, maxAttempts: 3 });
    assert.equal(result.success, true);
    assert.ok(result.attempts >= 1);
    assert.equal(fresh.flash.otadata.bootSlot(), 1);
  });
});
