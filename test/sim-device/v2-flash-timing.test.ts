/**
 * The device model's flash time as the chip spends it (docs/DEVICE-MODEL.md): every erase and write
 * window stalls the BLE host (PeripheralHost.hostStall) for its duration, esp_ota_end and
 * esp_ota_set_boot_partition each read the whole image, the boot verifies it again.
 */
import { strict as assert } from 'assert';
import { buildAppImage } from '../../lib/image/builder';
import { CONTROL_CHAR_UUID, Op } from '../../lib/protocol/constants';
import { BOOT_TIME_MS, VERIFY_READ_BYTES_PER_MS } from '../../lib/sim/device';
import { Central, afterReboot, deflateTransfer, makeRig, rawTransfer, until } from './harness';

const IMAGE_SIZE = 200 * 1024; // 3 blocks of 64 KiB + 2 sectors
const image = (version = '1.1.0') => buildAppImage({ chip: 'esp32c3', version, projectName: 'ble_ota_app', size: IMAGE_SIZE });
const near = (a: number, b: number, eps = 1e-6) => Math.abs(a - b) < eps;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('sim-device v2: flash time and host stalls', () => {
  it('the transfer stalls the host for each 64 KiB block erase (150 ms), each sector erase (45 ms) and each 4 KiB write window (6.4 ms)', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = rawTransfer(image());
    const begin = await c.begin(t);
    assert.equal(begin.err, 0);
    const from = rig.host.stalls.length;
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
    await until(rig.clock, () => rig.device.application !== null && (rig.host.stalls.at(-1)?.at ?? 0) + 200 < rig.clock.now());
    const stalls = rig.host.stalls.slice(from).map((s) => s.ms);
    const erases = stalls.filter((ms) => ms >= 45);
    assert.deepEqual(erases, [150, 150, 150, 45, 45], 'esp_flash_erase_region: one cache-disabled window per erase command');
    const writes = stalls.filter((ms) => ms < 45);
    // one esp_partition_write per piece the writer takes (4 KiB at most, the first ones smaller while the header waits)
    assert.ok(writes.every((ms) => ms <= 6.4 + 1e-9), `write windows ${writes.join(' ')}`);
    assert.ok(writes.filter((ms) => near(ms, 6.4)).length >= IMAGE_SIZE / 4096 - 2);
    assert.ok(near(sum(writes), (IMAGE_SIZE / 256) * 0.4), 'programming time = pages x tPP');
  });

  it('one cache-disabled window at a time: the next erase or program window starts only after the previous ended, so the host runs in between', async () => {
    // deflate: a piece the writer takes decodes to more than one 8 KiB program window, and the first
    // write also needs the erase of block 0 (two windows from one esp_ota_write).
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = deflateTransfer(image());
    const begin = await c.begin(t);
    assert.equal(begin.err, 0);
    const from = rig.host.stalls.length;
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
    await until(rig.clock, () => (rig.host.stalls.at(-1)?.at ?? 0) + 200 < rig.clock.now());
    const stalls = rig.host.stalls.slice(from);
    assert.ok(stalls.length > 10);
    for (let i = 1; i < stalls.length; i++) {
      const prevEnd = stalls[i - 1].at + stalls[i - 1].ms;
      assert.ok(stalls[i].at >= prevEnd - 1e-9, `stall ${i} starts at ${stalls[i].at} before the previous ends (${prevEnd})`);
    }
    assert.ok(near(sum(stalls.filter((s) => s.ms < 45).map((s) => s.ms)), (IMAGE_SIZE / 256) * 0.4), 'programming time = pages x tPP');
  });

  it('END: set_boot verifies the whole image once (no stall; esp_ota_abort closes the handle of a size that is a multiple of 16), the record and otadata writes stall', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = rawTransfer(image());
    const begin = await c.begin(t);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
    await until(rig.clock, () => (rig.host.stalls.at(-1)?.at ?? 0) + 200 < rig.clock.now()); // writer done
    const from = rig.host.stalls.length;
    const endAt = rig.clock.now();
    const end = await c.end(0);
    assert.equal(end.err, 0);
    const answeredAt = rig.host.sent.filter((n) => n.characteristic === CONTROL_CHAR_UUID && n.data[0] === (Op.END | 0x80)).at(-1)?.at as number;
    const stalls = rig.host.stalls.slice(from);
    const verifyMs = IMAGE_SIZE / VERIFY_READ_BYTES_PER_MS;
    const stallMs = sum(stalls.map((s) => s.ms));
    assert.equal(IMAGE_SIZE % 16, 0);
    assert.ok(near(answeredAt - endAt, verifyMs + stallMs, 1e-3), `END answered after ${answeredAt - endAt} ms`);
    assert.equal(stalls.filter((s) => s.ms === 45).length, 1, 'one otadata sector erase');
    assert.ok(stalls.every((s) => s.ms === 45 || s.ms < 1), 'the rest are short NVS/otadata program windows');
    // the erase comes after the verification read: record INSTALLED, verify, then otadata
    const otadataErase = stalls.find((s) => s.ms === 45) as { at: number };
    assert.ok(otadataErase.at - endAt >= verifyMs, 'set_boot verifies before it writes otadata');
  });

  it('boot: fixed part + the bootloader\'s verification + its otadata write + the running image hash on the first boot of an app only', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image()))).err, 0);
    await until(rig.clock, () => rig.device.machine.state === 'booting', 5000, 1);
    const resetAt = rig.clock.now();
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000, 1);
    const verifyMs = IMAGE_SIZE / VERIFY_READ_BYTES_PER_MS;
    const otadataWriteMs = 45 + (32 * 0.4) / 256;
    const appHashWriteMs = ((128 + 32 + 4 + 4) * 0.4) / 256; // NVS app_sha blob (80 bytes)
    const expected = BOOT_TIME_MS + verifyMs /* bootloader */ + otadataWriteMs /* NEW -> PENDING_VERIFY */ + verifyMs + appHashWriteMs /* app: running SHA-256, cached */;
    assert.ok(near(rig.device.machine.lastBootMs, expected, 1e-6), `boot took ${rig.device.machine.lastBootMs} ms`);
    assert.ok(Math.abs(rig.clock.now() - resetAt - expected) <= 1.5, `running after ${rig.clock.now() - resetAt} ms`);
    await afterReboot(rig).catch(() => undefined);
    // The next boot of the same app: the bootloader still verifies it, the app reads its hash from NVS.
    const again = rig.device.machine.restarts.length;
    assert.equal((await new Central(rig).connect().tagged(Op.REBOOT)).err, 0);
    await until(rig.clock, () => rig.device.machine.restarts.length > again && rig.device.machine.state === 'running', 5000, 1);
    assert.ok(near(rig.device.machine.lastBootMs, BOOT_TIME_MS + verifyMs, 1e-6), `second boot took ${rig.device.machine.lastBootMs} ms`);
  });

  it('a slow flash (flashSlowdown 3) stretches erases, writes and verification alike', async () => {
    const rig = makeRig({ flashSlowdown: 3 });
    const c = new Central(rig).connect();
    const t = rawTransfer(image());
    const begin = await c.begin(t);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
    await until(rig.clock, () => (rig.host.stalls.at(-1)?.at ?? 0) + 600 < rig.clock.now());
    const ms = rig.host.stalls.map((s) => s.ms);
    assert.ok(ms.includes(450) && ms.includes(135));
    assert.ok(ms.some((x) => near(x, 19.2)));
  });
});
