/**
 * Update records, first boot and refusals of the v2 model, as the firmware does them (issue 8's fixes,
 * docs/DEVICE-MODEL.md): crash-consistent INSTALLED record before the boot switch, first boot decided by
 * otadata (an image another installer put there is diagnosed and confirmed too), confirm only once BLE
 * advertises, chip revision with the header, memory reserved at BEGIN, chunk sizes that fill LL PDUs.
 */
import { strict as assert } from 'assert';
import { appHash } from '../../lib/image/hash';
import { buildAppImage } from '../../lib/image/builder';
import { decodeAdvertisement } from '../../lib/protocol/advertisement';
import { ErrorCode, LastFlags, Op, OtaStateCode } from '../../lib/protocol/constants';
import { ERASED_SEQ } from '../../lib/sim/device/ota-data';
import type { SlotIndex } from '../../lib/sim/device/ota-data';
import { Central, Rig, afterReboot, bootSettled, deflateTransfer, makeRig, rawTransfer, until } from './harness';

const IMAGE_SIZE = 120 * 1024;
const image = (version = '2.0.0', extra: { minChipRevFull?: number; maxChipRevFull?: number } = {}) =>
  buildAppImage({ chip: 'esp32c3', version, projectName: 'ble_ota_app', size: IMAGE_SIZE, ...extra });
const sectors = (rig: Rig) => [0, 1].map((s) => [rig.device.flash.otadata.entry(s as SlotIndex).seq, rig.device.flash.otadata.entry(s as SlotIndex).state]);
const has = (flags: number, bit: number) => (flags & bit) !== 0;

/** What the seed firmware (or a Wi-Fi OTA) does: the image in the other slot, esp_ota_set_boot_partition, restart. No record of ours. */
async function installLikeTheSeed(rig: Rig, img: Buffer): Promise<void> {
  rig.device.flash.program(1, 0, img);
  rig.device.flash.otadata.setBoot(1);
  rig.device.machine.restart('restart after the other installer');
  await afterReboot(rig);
}

/** A fresh device that received a whole image; END (with reboot) has just been written. */
async function sendAllThenEnd(): Promise<Rig> {
  const rig = makeRig();
  const c = new Central(rig).connect();
  const t = rawTransfer(image());
  const begin = await c.begin(t);
  await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
  await c.write(Buffer.from([Op.END, 1]));
  return rig;
}

describe('sim-device v2: records, first boot, refusals', () => {
  it('power cut between the INSTALLED record and the boot switch: the old image runs and Status says interrupted', async () => {
    const rig = await sendAllThenEnd();
    await until(rig.clock, () => rig.device.flash.nvs.record.stage === 'installed', 5000, 1);
    assert.equal(rig.device.flash.otadata.bootSlot(), 0, 'the record lands before the switch');
    rig.device.powerLoss(50);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_0');
    assert.equal(s.appVersion, '1.0.0');
    assert.equal(s.otaStateName, 'valid');
    assert.equal(s.lastResultName, 'INTERNAL');
    assert.equal(s.lastMessage, 'interrupted before boot switch');
    assert.ok(has(s.lastFlags, LastFlags.INTERRUPTED) && !has(s.lastFlags, LastFlags.INSTALLED) && !s.last.rolledBack);
    assert.deepEqual(sectors(rig), [[1, OtaStateCode.VALID], [ERASED_SEQ, OtaStateCode.UNDEFINED]]);
  });

  it('power cut after the boot switch, before the record says so: the new image boots, the record is completed and confirmed', async () => {
    const rig = await sendAllThenEnd();
    await until(rig.clock, () => rig.device.flash.otadata.bootSlot() === 1, 5000, 0.05);
    assert.equal(has(rig.device.flash.nvs.record.flags, LastFlags.INSTALLED), false);
    rig.device.powerLoss(50);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '2.0.0');
    assert.equal(s.otaStateName, 'valid');
    assert.equal(s.lastResultName, 'OK');
    assert.ok(has(s.lastFlags, LastFlags.INSTALLED) && s.last.confirmed && !has(s.lastFlags, LastFlags.INTERRUPTED));
  });

  it('power cut during first-boot diagnostics: the bootloader rolls back and Status says interrupted + rolled back', async () => {
    const rig = makeRig({}, { model: { diagnosticsMs: 500 } });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image()))).err, 0);
    await until(rig.clock, () => rig.device.machine.state === 'running' && rig.device.flash.nvs.record.stage === 'diagnosing', 5000, 1);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.PENDING_VERIFY);
    rig.device.powerLoss(50);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '1.0.0');
    assert.equal(s.lastResultName, 'ROLLED_BACK');
    assert.ok(s.last.rolledBack && has(s.lastFlags, LastFlags.INTERRUPTED) && has(s.lastFlags, LastFlags.INSTALLED));
    assert.equal(s.lastMessage, 'cut in diagnostics, rolled back');
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.ABORTED);
    assert.equal(decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer).rolledBack, true);
  });

  it('an image another installer left pending verify (no record of ours) is diagnosed and confirmed under auto policy', async () => {
    const rig = makeRig();
    const img = image();
    await installLikeTheSeed(rig, img);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_1');
    assert.equal(s.appVersion, '2.0.0');
    assert.equal(s.otaStateName, 'valid');
    assert.equal(s.lastResultName, 'OK');
    assert.ok(has(s.lastFlags, LastFlags.OTHER_INSTALLER) && s.last.diagnosticsRan && s.last.diagnosticsPassed && s.last.confirmed);
    assert.equal(has(s.lastFlags, LastFlags.INSTALLED), false, 'not installed by our END');
    assert.equal(s.lastSha256, appHash(img).toString('hex'));
    assert.equal(s.bootCount, 1);
    // it survives the next reset (it was confirmed, not aborted by the bootloader)
    rig.device.powerLoss(10);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    assert.equal((await new Central(rig).connect().readStatus()).appVersion, '2.0.0');
  });

  it('another installer\'s image booting over an attempt of ours still in progress: a fresh record, OTHER_INSTALLER without INTERRUPTED (as the firmware core)', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = rawTransfer(image('3.0.0'));
    const begin = await c.begin(t);
    assert.equal(begin.err, 0);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 40000 });
    assert.equal(rig.device.flash.nvs.record.stage, 'in-progress');
    // A Wi-Fi OTA in the same application replaces the half-written slot and restarts.
    rig.device.flash.slots[1].erase(0, 0x20000);
    rig.device.flash.resetExtent(1);
    const img = image();
    await installLikeTheSeed(rig, img);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '2.0.0');
    assert.equal(s.lastResultName, 'OK');
    assert.ok(has(s.lastFlags, LastFlags.OTHER_INSTALLER) && s.last.confirmed);
    assert.equal(has(s.lastFlags, LastFlags.INTERRUPTED), false, 'the record starts from nothing');
    assert.equal(s.lastSha256, appHash(img).toString('hex'));
  });

  it('under host policy it waits for the host: pending verify, CONFIRM makes it valid', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    await installLikeTheSeed(rig, image());
    const c = new Central(rig).connect();
    const s = await c.readStatus();
    assert.equal(s.otaStateName, 'pending-verify');
    assert.ok(has(s.lastFlags, LastFlags.OTHER_INSTALLER) && s.last.diagnosticsPassed && !s.last.confirmed);
    assert.equal((await c.tagged(Op.CONFIRM)).err, ErrorCode.OK);
    const after = await c.readStatus();
    assert.equal(after.otaStateName, 'valid');
    assert.ok(after.last.confirmed);
  });

  it('NVS erased after an install: the pending image is still diagnosed and confirmed (record for another installer)', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image()), 0)).err, 0);
    rig.device.flash.nvs.erase();
    await c.tagged(Op.REBOOT);
    await afterReboot(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '2.0.0');
    assert.equal(s.otaStateName, 'valid');
    assert.ok(has(s.lastFlags, LastFlags.OTHER_INSTALLER) && s.last.confirmed);
  });

  it('policy auto confirms only once BLE advertises: a build whose BLE stack fails stays unconfirmed and the next reset rolls back', async () => {
    const rig = makeRig({}, { model: { bleStartFails: true } });
    await installLikeTheSeed(rig, image());
    assert.equal(rig.device.advertisement(), null);
    await new Promise<void>((resolve) => rig.clock.setTimer(resolve, 2000));
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.PENDING_VERIFY, 'never confirmed');
    rig.device.powerLoss(10);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.ABORTED);
    assert.equal(rig.device.flash.nvs.record.flags & LastFlags.ROLLED_BACK, LastFlags.ROLLED_BACK);
  });

  it('WRONG_CHIP_REVISION (31) with the header, before any flash write: min and max revision', async () => {
    for (const [revision, extra] of [[3, { minChipRevFull: 4 }], [101, { maxChipRevFull: 100 }]] as const) {
      const rig = makeRig({}, { model: { chipRevision: revision } });
      const c = new Central(rig).connect();
      const t = rawTransfer(image('2.0.0', extra));
      const begin = await c.begin(t);
      assert.equal(begin.err, 0);
      const stallsBefore = rig.host.stalls.length;
      await assert.rejects(c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window }), /SESSION_ABORTED 31/);
      const after = rig.host.stalls.slice(stallsBefore).map((x) => x.ms);
      assert.ok(after.every((ms) => ms < 1), `no erase, no image write, only the record of the refusal: ${after.join(' ')}`);
      assert.ok(rig.device.flash.slots[1].isErased(0, IMAGE_SIZE));
      const s = await c.readStatus();
      assert.equal(s.lastResult, ErrorCode.WRONG_CHIP_REVISION);
      assert.equal(s.lastResultName, 'WRONG_CHIP_REVISION');
    }
    // a revision inside the range installs
    const rig = makeRig({}, { model: { chipRevision: 4 } });
    assert.equal((await new Central(rig).connect().update(rawTransfer(image('2.0.0', { minChipRevFull: 4, maxChipRevFull: 199 })))).err, 0);
  });

  it('NO_MEMORY (32) when the session buffers do not fit the free heap: nothing erased, no record', async () => {
    const rig = makeRig({}, { model: { freeHeapBytes: 40000 } });
    const c = new Central(rig).connect();
    const refused = await c.begin(deflateTransfer(image()));
    assert.equal(refused.err, ErrorCode.NO_MEMORY, 'deflate needs the ring, the writer buffer and a 43.8 KB inflater');
    assert.equal(rig.host.stalls.length, 0);
    assert.equal((await c.readStatus()).lastResult, 0xff, 'the record is untouched');
    const raw = await c.begin(rawTransfer(image()));
    assert.equal(raw.err, ErrorCode.OK, 'raw needs no inflater');
  });

  it('OTA state read fresh: an app that confirmed itself can BEGIN without a reboot', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image()))).err, 0);
    await afterReboot(rig);
    const c2 = new Central(rig).connect();
    assert.equal((await c2.begin(rawTransfer(image('3.0.0')))).err, ErrorCode.INVALID_STATE);
    const { otadata } = rig.device.flash;
    otadata.apply(otadata.planMarkActive(OtaStateCode.VALID) as never); // the app's own esp_ota_mark_app_valid_cancel_rollback
    assert.equal((await c2.begin(rawTransfer(image('3.0.0')))).err, ErrorCode.OK);
  });

  it('chunk_size fills whole LL PDUs for the MTU and data length (4 + 3 + 4 + chunk = k x DL)', async () => {
    const cases: Array<[number, number, number]> = [
      [256, 251, 240],
      [517, 251, 491],
      [247, 251, 240],
      [23, 251, 16],
      [256, 27, 232],
      [185, 27, 178],
    ];
    for (const [mtu, dataLength, chunk] of cases) {
      const rig = makeRig({}, { model: { dataLength } });
      const c = new Central(rig, 0, mtu).connect();
      const r = await c.begin(rawTransfer(image()), { chunkSize: 508 });
      assert.equal(r.chunkSize, chunk, `MTU ${mtu}, DL ${dataLength}`);
    }
    // The firmware core rounds the smallest limit down to whole PDUs, the client's request included
    // (ble_ota_session.c negotiated_chunk): 300 + 11 needs two PDUs of 251, so 240.
    const small = await new Central(makeRig(), 0, 517).connect().begin(rawTransfer(image()), { chunkSize: 300 });
    assert.equal(small.chunkSize, 240);
    const fits = await new Central(makeRig(), 0, 517).connect().begin(rawTransfer(image()), { chunkSize: 100 });
    assert.equal(fits.chunkSize, 100, 'a request that fits one PDU is kept');
  });

  it('issue 9 point 3: END without reboot, then a second update cut part-way: otadata still names the half-written slot NEW (as ESP-IDF leaves it), the old image boots', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image()), 0)).err, 0);
    assert.deepEqual(sectors(rig), [[1, OtaStateCode.VALID], [2, OtaStateCode.NEW]]);
    const t = rawTransfer(image('3.0.0'));
    const begin = await c.begin(t);
    assert.equal(begin.err, 0);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 40000 });
    assert.deepEqual(sectors(rig), [[1, OtaStateCode.VALID], [2, OtaStateCode.NEW]], 'esp_ota_begin/write touch no otadata');
    rig.device.powerLoss(50);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_0');
    assert.equal(s.appVersion, '1.0.0');
    assert.equal(s.lastMessage, 'interrupted by a reboot');
    assert.ok(has(s.lastFlags, LastFlags.INTERRUPTED));
    assert.deepEqual(sectors(rig), [[1, OtaStateCode.VALID], [2, OtaStateCode.PENDING_VERIFY]], 'the bootloader tried it and fell back');
  });
});
