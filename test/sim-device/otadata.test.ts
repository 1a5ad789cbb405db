/**
 * otadata and the bootloader against ESP-IDF v5.3.2's sources (esp_ota_ops.c, bootloader_utility.c,
 * bootloader_common_loader.c; docs/DEVICE-MODEL.md): sector, seq and state after every step.
 */
import { strict as assert } from 'assert';
import { OtaStateCode } from '../../lib/protocol/constants';
import { BootWork, chooseBootSlot } from '../../lib/sim/device/bootloader';
import { ERASED_SEQ, OtaData, SectorIndex } from '../../lib/sim/device/ota-data';

const { NEW, PENDING_VERIFY, VALID, INVALID, ABORTED, UNDEFINED } = OtaStateCode;

/** [seq, state] of both sectors; an erased sector is [ERASED_SEQ, UNDEFINED]. */
function sectors(d: OtaData): Array<[number, number]> {
  return ([0, 1] as SectorIndex[]).map((s) => [d.entry(s).seq, d.entry(s).state]);
}

/** A device flashed by idf.py (otadata erased) after its first boot. */
function factory(): OtaData {
  const d = new OtaData();
  const choice = chooseBootSlot(d, () => true);
  assert.equal(choice?.slot, 0);
  return d;
}

describe('sim-device otadata and bootloader (ESP-IDF v5.3.2)', () => {
  it('erased otadata: ota_0 boots and the bootloader writes sector 0 = seq 1 VALID (set_actual_ota_seq)', () => {
    const d = new OtaData();
    assert.equal(d.activeSector(), -1);
    const work: BootWork = { verified: [], otadataWrites: 0 };
    assert.deepEqual(chooseBootSlot(d, () => true, work), { slot: 0, rolledBackSlot: null, fellBack: false });
    assert.deepEqual(sectors(d), [[1, VALID], [ERASED_SEQ, UNDEFINED]]);
    assert.deepEqual(work, { verified: [0], otadataWrites: 1 });
    // later boots write nothing
    const again: BootWork = { verified: [], otadataWrites: 0 };
    chooseBootSlot(d, () => true, again);
    assert.equal(again.otadataWrites, 0);
  });

  it('set_boot writes the sector after the active one with the next seq naming the slot, state NEW; the other sector is untouched', () => {
    const d = factory();
    d.setBoot(1);
    assert.deepEqual(sectors(d), [[1, VALID], [2, NEW]]);
    assert.equal(d.bootSlot(), 1);
    assert.equal(d.state(0), VALID);
    assert.equal(d.state(1), NEW);
    // first boot: NEW -> PENDING_VERIFY before loading; confirm rewrites the active sector
    assert.deepEqual(chooseBootSlot(d, () => true), { slot: 1, rolledBackSlot: null, fellBack: false });
    assert.deepEqual(sectors(d), [[1, VALID], [2, PENDING_VERIFY]]);
    d.apply(d.planMarkActive(VALID) as never);
    assert.deepEqual(sectors(d), [[1, VALID], [2, VALID]]);
    // the next update goes to ota_0: sector 0, seq 3
    d.setBoot(0);
    assert.deepEqual(sectors(d), [[3, NEW], [2, VALID]]);
    assert.equal(d.bootSlot(), 0);
  });

  it('PENDING_VERIFY found at boot becomes ABORTED and is never chosen: the previous image boots', () => {
    const d = factory();
    d.setBoot(1);
    chooseBootSlot(d, () => true);
    const work: BootWork = { verified: [], otadataWrites: 0 };
    assert.deepEqual(chooseBootSlot(d, () => true, work), { slot: 0, rolledBackSlot: 1, fellBack: false });
    assert.deepEqual(sectors(d), [[1, VALID], [2, ABORTED]]);
    assert.equal(work.otadataWrites, 1);
    assert.equal(chooseBootSlot(d, () => true)?.slot, 0);
    assert.equal(d.state(1), ABORTED);
  });

  it('an image that does not verify is not marked in otadata: its entry went PENDING_VERIFY before the load, the other slot boots', () => {
    const d = factory();
    d.setBoot(1);
    const work: BootWork = { verified: [], otadataWrites: 0 };
    assert.deepEqual(chooseBootSlot(d, (slot) => slot === 0, work), { slot: 0, rolledBackSlot: null, fellBack: true });
    assert.deepEqual(sectors(d), [[1, VALID], [2, PENDING_VERIFY]]);
    assert.deepEqual(work.verified, [1, 0]);
    // the next boot aborts it
    assert.deepEqual(chooseBootSlot(d, (slot) => slot === 0), { slot: 0, rolledBackSlot: 1, fellBack: false });
    assert.equal(d.state(1), ABORTED);
    assert.equal(chooseBootSlot(new OtaData(), () => false), null, 'nothing verifies: the bootloader resets (bricked)');
  });

  it('INVALID is never chosen; with both entries unusable the bootloader tries ota_0 then ota_1 whatever their states', () => {
    const d = factory();
    d.setBoot(1);
    chooseBootSlot(d, () => true);
    d.apply(d.planMarkActive(INVALID) as never); // esp_ota_mark_app_invalid_rollback_and_reboot
    assert.deepEqual(sectors(d), [[1, VALID], [2, INVALID]]);
    assert.equal(chooseBootSlot(d, () => true)?.slot, 0);
    d.writeSector(0, { seq: 1, state: ABORTED });
    assert.deepEqual(chooseBootSlot(d, (slot) => slot === 1), { slot: 1, rolledBackSlot: null, fellBack: true });
  });

  it('issue 9 point 3: END without reboot, then a second update to the same slot cut part-way leaves the slot NEW with the highest seq (esp_ota_begin writes no otadata)', () => {
    const d = factory();
    d.setBoot(1); // first END, no reboot: ota_0 still runs
    const afterFirstEnd = sectors(d);
    // second BEGIN on ota_1 (esp_ota_get_next_update_partition of the running ota_0), cut: no otadata write at all
    assert.deepEqual(sectors(d), afterFirstEnd);
    assert.deepEqual(sectors(d), [[1, VALID], [2, NEW]]);
    // the bootloader then picks ota_1, marks it PENDING_VERIFY, fails to load it, boots ota_0
    assert.deepEqual(chooseBootSlot(d, (slot) => slot === 0), { slot: 0, rolledBackSlot: null, fellBack: true });
    assert.deepEqual(sectors(d), [[1, VALID], [2, PENDING_VERIFY]]);
  });

  it('a second completed END to the same slot before a reboot: both sectors name ota_1 with seq 2 and ota_0 loses its entry', () => {
    const d = factory();
    d.setBoot(1);
    d.setBoot(1); // active = sector 1 (seq 2); smallest seq >= 2 naming ota_1 is 2, in sector 0
    assert.deepEqual(sectors(d), [[2, NEW], [2, NEW]]);
    assert.equal(d.state(0), UNDEFINED);
    assert.equal(d.activeSector(), 0, 'a tie goes to sector 0');
    chooseBootSlot(d, () => true);
    assert.deepEqual(sectors(d), [[2, PENDING_VERIFY], [2, NEW]]);
    // unconfirmed: the next boot aborts sector 0, then sector 1 (still NEW, ota_1) boots as a first boot again
    assert.deepEqual(chooseBootSlot(d, () => true), { slot: 1, rolledBackSlot: 1, fellBack: false });
    assert.deepEqual(sectors(d), [[2, ABORTED], [2, PENDING_VERIFY]]);
  });

  it('a power cut between the erase and the program of an otadata write leaves the sector erased: the other entry rules', () => {
    const d = factory();
    d.setBoot(1);
    chooseBootSlot(d, () => true);
    const plan = d.planMarkActive(VALID);
    assert.ok(plan && plan !== 'none');
    d.eraseSector(plan.sector); // confirm cut after its erase
    assert.deepEqual(sectors(d), [[1, VALID], [ERASED_SEQ, UNDEFINED]]);
    assert.equal(d.bootSlot(), 0, 'the confirmed image is lost: ota_0 boots (esp_ota_current_ota_is_workable rewrites the active sector in place)');
    assert.equal(chooseBootSlot(d, () => true)?.slot, 0);
  });

  it('esp_ota_get_state_partition reads the first sector naming the slot, and a bad crc hides an entry', () => {
    const d = new OtaData();
    d.writeSector(0, { seq: 1, state: VALID });
    d.writeSector(1, { seq: 3, state: NEW }); // also ota_0
    assert.equal(d.state(0), VALID, 'sector 0 first, not the highest seq');
    assert.equal(d.activeSector(), 1);
    d.writeSector(1, { seq: 3, state: NEW, crcOk: false });
    assert.equal(d.activeSector(), 0);
    assert.equal(d.isValid(1), false);
  });
});
