import { strict as assert } from 'assert';
import * as fs from 'fs';
import { appHash } from '../../lib/image/hash';
import { buildAppImage } from '../../lib/image/builder';
import { decodeAdvertisement } from '../../lib/protocol/advertisement';
import { CONTROL_CHAR_UUID, Caps, ErrorCode, LastFlags, Op, OtaStateCode } from '../../lib/protocol/constants';
import { BOOT_TIME_MS } from '../../lib/sim/device';
import { Central, vectorPath, afterReboot, deflateTransfer, makeRig, rawTransfer, until } from './harness';

const newImage = (version = '1.1.0', size = 200 * 1024, chip: 'esp32c3' | 'esp32' = 'esp32c3') =>
  buildAppImage({ chip, version, projectName: 'ble_ota_app', size, secureVersion: 0 });

describe('sim-device v2: fresh update', () => {
  it('installs a raw image, reboots 300 ms after END and runs it valid (auto policy)', async () => {
    const rig = makeRig();
    const image = newImage();
    const c = new Central(rig).connect();
    const before = await c.readStatus();
    assert.equal(before.runningPartition, 'ota_0');
    assert.equal(before.appVersion, '1.0.0');
    assert.equal(before.otaStateName, 'valid');
    assert.equal(before.bootCount, 0); // nothing installed yet
    assert.equal(before.lastResultName, null);
    assert.equal(before.resetReason, 1);
    const end = await c.update(rawTransfer(image));
    assert.equal(end.err, 0);
    assert.equal(end.imageSize, image.length);
    const endAt = rig.host.sent.filter((n) => n.characteristic === CONTROL_CHAR_UUID && n.data[0] === 0x83).at(-1)?.at ?? NaN;
    await afterReboot(rig);
    assert.equal(rig.host.drops.length, 1);
    assert.ok(Math.abs(rig.host.drops[0].at - endAt - 300) < 1, `link dropped ${rig.host.drops[0].at - endAt} ms after END`);
    assert.equal(rig.device.advertisement() === null, false);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_1');
    assert.equal(s.appVersion, '1.1.0');
    assert.equal(s.otaStateName, 'valid');
    assert.equal(s.runningSha256, appHash(image).toString('hex'));
    assert.equal(s.lastResult, ErrorCode.OK);
    assert.equal(s.lastSha256, rawTransfer(image).sha256.toString('hex'));
    assert.ok(s.last.diagnosticsRan && s.last.diagnosticsPassed && s.last.confirmed && s.last.recordValid);
    assert.equal(s.lastMessage, 'simulated diagnostics ok');
    assert.equal(s.last.rolledBack, false);
    assert.equal(s.bootCount, 1);
    assert.equal(s.resetReason, 3);
  });

  it('installs a deflate transfer of a synthetic image (about half the bytes on Data)', async () => {
    const rig = makeRig();
    const image = newImage('2.0.0', 300 * 1024);
    const t = deflateTransfer(image);
    assert.ok(t.payload.length < image.length * 0.7);
    const c = new Central(rig).connect();
    const end = await c.update(t);
    assert.equal(end.err, 0);
    await afterReboot(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '2.0.0');
    assert.equal(s.otaStateName, 'valid');
    assert.ok(rig.device.flash.imageBytes(1).equals(image));
  });

  for (const encoding of ['raw', 'deflate'] as const) {
    it(`installs the real esp32 hello_world vector (${encoding})`, async () => {
      const image = fs.readFileSync(vectorPath('esp32-hello_world.bin'));
      const rig = makeRig({ chip: 'esp32' });
      const c = new Central(rig).connect();
      const end = await c.update(encoding === 'raw' ? rawTransfer(image) : deflateTransfer(image));
      assert.equal(end.err, 0);
      await afterReboot(rig);
      const s = await new Central(rig).connect().readStatus();
      assert.equal(s.chip, 'esp32');
      assert.equal(s.projectName, 'hello_world');
      assert.equal(s.runningSha256, appHash(image).toString('hex'));
      assert.equal(s.otaStateName, 'valid');
    });
  }

  it('answers CHALLENGE with nonce and caps in 20 bytes (fits MTU 23), and serves Device Information', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    const r = await c.challenge();
    assert.equal(r.err, 0);
    // A development build without keys: caps bit 9 (unauthenticated updates allowed); bit 7: delta.
    assert.equal(r.caps, Caps.DEFLATE | Caps.RESUME | Caps.HOST_CONFIRM | Caps.ANTI_DOWNGRADE | Caps.DELTA | (1 << 9) | Caps.MANIFEST_COMMAND | Caps.MANIFEST_STAGING);
    assert.equal(r.nonce?.length, 16);
    const raw = rig.host.sent.filter((n) => n.data[0] === 0x81);
    assert.deepEqual(raw.map((n) => n.data.length), [20]);
    assert.equal((await rig.device.onRead('180a', '2a29')).toString(), 'Espressif');
    assert.equal((await rig.device.onRead('180a', '2a24')).toString(), 'esp32c3');
    assert.equal((await rig.device.onRead('180a', '2a26')).toString(), '1.0.0');
    const gatt = rig.device.gatt();
    assert.deepEqual(gatt.map((s) => s.uuid), ['180a', '5c4e00016a8b4f0e9a3d32b1e07a0001']);
  });

  it('advertises name, service UUID and the compact status', async () => {
    const rig = makeRig({ name: 'sim-07', version: 'v1.2.3' });
    const adv = rig.device.advertisement();
    assert.ok(adv);
    assert.equal(adv.localName, 'sim-07');
    assert.deepEqual(adv.serviceUuids, ['5c4e00016a8b4f0e9a3d32b1e07a0001']);
    const m = decodeAdvertisement(adv.manufacturerData as Buffer);
    assert.equal(m.version, '1.2.3');
    assert.equal(m.otaState, 'valid');
    assert.equal(m.sessionActive, false);
    const status = await new Central(rig).connect().readStatus();
    assert.equal(m.shaPrefix, status.runningSha256.slice(0, 8));
  });

  it('notifies Status on session state changes and shows the session in the advertisement', async () => {
    const rig = makeRig();
    const image = newImage();
    const c = new Central(rig).connect();
    await c.begin(rawTransfer(image));
    const states = rig.host.statusNotifications().map((s) => s.sessionStateName);
    assert.deepEqual(states, ['receiving']);
    assert.equal(decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer).sessionActive, true);
    const s = await c.readStatus();
    assert.equal(s.lastResultName, 'INTERNAL');
    assert.equal(s.lastMessage, 'in progress');
  });

  it('at ATT MTU 23: CHALLENGE/BEGIN responses fit, Status notifications carry the first 20 bytes, a read the whole', async () => {
    const rig = makeRig();
    const image = newImage('1.1.0', 48 * 1024);
    const c = new Central(rig, 0, 23).connect();
    const end = await c.update(rawTransfer(image), 0);
    assert.equal(end.err, 0);
    const control = rig.host.sent.filter((n) => n.characteristic === '5c4e00026a8b4f0e9a3d32b1e07a0001');
    assert.ok(control.length > 0 && control.every((n) => n.data.length <= 20), 'every Control notification fits MTU-3');
    const status = rig.host.sent.filter((n) => n.characteristic === '5c4e00046a8b4f0e9a3d32b1e07a0001');
    assert.ok(status.length >= 2, 'receiving, then idle after END');
    const full = await rig.device.onRead('5c4e00016a8b4f0e9a3d32b1e07a0001', '5c4e00046a8b4f0e9a3d32b1e07a0001', 0);
    assert.equal(full.length, 252, 'Status format 2');
    for (const n of status) assert.equal(n.data.length, 20);
    assert.ok(status[status.length - 1].data.equals(full.subarray(0, 20)), 'the last notification is the head of the current value');
  });

  it('keeps at most a window unacknowledged: slow flash delays the ACKs', async () => {
    const image = newImage('1.1.0', 160 * 1024);
    const times: number[] = [];
    for (const slowdown of [1, 8]) {
      const rig = makeRig({ flashSlowdown: slowdown });
      const c = new Central(rig).connect();
      const begin = await c.begin(rawTransfer(image));
      const start = rig.clock.now();
      await c.send(image, { chunkSize: begin.chunkSize, window: begin.window });
      times.push(rig.clock.now() - start);
      const acks = rig.host.control().filter((n) => n.op === Op.DATA_ACK) as Array<{ nextOffset: number }>;
      for (let i = 1; i < acks.length; i++) assert.ok(acks[i].nextOffset > acks[i - 1].nextOffset);
      assert.equal(acks[acks.length - 1].nextOffset, image.length);
    }
    // 160 KiB at 8x: 2.5 blocks of 1.2 s erase + 640 pages of 3.2 ms is several seconds of flash work.
    assert.ok(times[1] > 4000, `8x slow flash took only ${times[1]} ms`);
    assert.ok(times[1] > times[0] * 3, `slow flash ${times[1]} ms vs normal ${times[0]} ms`);
  });

  it('sends DATA_ACK at least every ack_interval and at the last byte', async () => {
    const rig = makeRig();
    const image = newImage('1.1.0', 64 * 1024 + 1000);
    const c = new Central(rig).connect();
    const begin = await c.begin(rawTransfer(image));
    assert.equal(begin.ackInterval, 4096);
    assert.equal(begin.window, 16384);
    assert.equal(begin.chunkSize, 240); // MTU 247 - 3 - 4
    await c.send(image, { chunkSize: begin.chunkSize, window: begin.window });
    const acks = (rig.host.control().filter((n) => n.op === Op.DATA_ACK) as Array<{ nextOffset: number }>).map((a) => a.nextOffset);
    let prev = 0;
    for (const a of acks) {
      assert.ok(a - prev <= 4096, `gap between ACKs ${prev}..${a}`);
      prev = a;
    }
    assert.equal(acks[acks.length - 1], image.length);
  });
});

describe('sim-device v2: confirm policies and rollback', () => {
  it('auto policy + failing diagnostics: rolls back to the previous image and records why', async () => {
    const rig = makeRig({ diagnostics: 'fail' });
    const c = new Central(rig).connect();
    const before = await c.readStatus();
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig); // into the new image, diagnostics fail, rollback restart
    await until(rig.clock, () => rig.device.machine.restarts.length >= 2 && rig.device.machine.state === 'running', 5000);
    assert.deepEqual(rig.device.machine.restarts.map((r) => r.reason), ['update installed', 'diagnostics failed']);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_0');
    assert.equal(s.runningSha256, before.runningSha256);
    assert.equal(s.lastResultName, 'DIAGNOSTICS_FAILED');
    assert.ok(s.last.rolledBack && s.last.diagnosticsRan && !s.last.diagnosticsPassed && !s.last.confirmed);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.INVALID);
    const adv = decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer);
    assert.ok(adv.rolledBack && adv.diagnosticsFailed);
  });

  it('host policy: stays pending-verify until CONFIRM; CONFIRM twice is NOT_PENDING', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    assert.equal((await c.tagged(Op.CONFIRM)).err, ErrorCode.NOT_PENDING);
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    const c2 = new Central(rig).connect();
    let s = await c2.readStatus();
    assert.equal(s.otaStateName, 'pending-verify');
    assert.ok(s.last.diagnosticsRan && s.last.diagnosticsPassed && !s.last.confirmed);
    assert.equal(decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer).hostPolicy, true);
    assert.equal((await c2.tagged(Op.CONFIRM)).err, 0);
    s = await c2.readStatus();
    assert.equal(s.otaStateName, 'valid');
    assert.ok(s.last.confirmed);
    assert.equal((await c2.tagged(Op.CONFIRM)).err, ErrorCode.NOT_PENDING);
    // Confirmed images survive reboots.
    assert.equal((await c2.tagged(Op.REBOOT)).err, 0);
    await afterReboot(rig);
    s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_1');
    assert.equal(s.bootCount, 2);
  });

  it('host policy: BEGIN while pending verify is INVALID_STATE, nothing erased; after CONFIRM the update works', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    assert.equal((await new Central(rig).connect().update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    const c = new Central(rig).connect();
    assert.equal((await c.readStatus()).otaStateName, 'pending-verify');
    const previous = Buffer.from(rig.device.flash.imageBytes(0));
    assert.ok(previous.length > 0, 'ota_0 still holds the factory image');
    const record = JSON.stringify(rig.device.flash.nvs.record);
    const next = rawTransfer(newImage('1.2.0'));
    const refused = await c.begin(next);
    assert.equal(refused.err, ErrorCode.INVALID_STATE);
    assert.equal(refused.chunkSize, undefined); // an error response carries only op and err
    assert.ok(rig.device.flash.imageBytes(0).equals(previous), 'the other slot was not erased');
    assert.equal(JSON.stringify(rig.device.flash.nvs.record), record, 'the update record is untouched');
    const s = await c.readStatus();
    assert.equal(s.sessionStateName, 'idle');
    assert.equal(s.otaStateName, 'pending-verify');
    assert.equal((await c.tagged(Op.CONFIRM)).err, 0);
    assert.equal((await c.update(next)).err, 0);
    await afterReboot(rig);
    const after = await new Central(rig).connect().readStatus();
    assert.equal(after.runningPartition, 'ota_0');
    assert.equal(after.appVersion, '1.2.0');
  });

  it('host policy: ROLLBACK returns to the previous image', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    const c2 = new Central(rig).connect();
    assert.equal((await c2.tagged(Op.ROLLBACK)).err, 0);
    await afterReboot(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_0');
    assert.equal(s.appVersion, '1.0.0');
    assert.equal(s.lastResultName, 'ROLLED_BACK');
    assert.ok(s.last.rolledBack);
  });

  it('host policy: a reboot without CONFIRM rolls back (bootloader aborts the unconfirmed image)', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    const c2 = new Central(rig).connect();
    assert.equal((await c2.tagged(Op.REBOOT)).err, 0);
    await afterReboot(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_0');
    assert.equal(s.lastResultName, 'ROLLED_BACK');
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.ABORTED);
    assert.ok((s.lastFlags & LastFlags.ROLLED_BACK) !== 0);
  });

  it('host policy with failing diagnostics publishes the failure and waits for the host', async () => {
    const rig = makeRig({ confirmPolicy: 'host', diagnostics: 'fail' });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    await sleepModel(rig, 2 * BOOT_TIME_MS);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_1');
    assert.equal(s.otaStateName, 'pending-verify');
    assert.equal(s.lastResultName, 'DIAGNOSTICS_FAILED');
    assert.ok(s.last.diagnosticsRan && !s.last.diagnosticsPassed);
  });

  it('END without the reboot flag keeps running the old image until the next restart', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(newImage()), 0)).err, 0);
    await sleepModel(rig, 2000);
    assert.equal(rig.device.machine.restarts.length, 0);
    assert.equal((await c.readStatus()).runningPartition, 'ota_0');
    assert.equal((await c.tagged(Op.REBOOT)).err, 0);
    await afterReboot(rig);
    assert.equal((await new Central(rig).connect().readStatus()).runningPartition, 'ota_1');
  });
});

async function sleepModel(rig: ReturnType<typeof makeRig>, ms: number): Promise<void> {
  const end = rig.clock.now() + ms;
  await until(rig.clock, () => rig.clock.now() >= end, ms + 10);
}
