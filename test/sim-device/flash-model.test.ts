import { strict as assert } from 'assert';
import { OtaStateCode } from '../../lib/protocol/constants';
import { chooseBootSlot } from '../../lib/sim/device/bootloader';
import { flashTiming, programTimeMs } from '../../lib/sim/device/flash-timing';
import { OtaData } from '../../lib/sim/device/ota-data';
import { SparseFlash } from '../../lib/sim/device/sparse-flash';

describe('sim-device flash model', () => {
  it('behaves like NOR flash: erased reads 0xFF, programming only clears bits, erase is per 4 KiB sector', () => {
    const f = new SparseFlash('ota_1', 0x20000);
    assert.ok(f.isErased(0, 0x20000));
    f.program(4090, Buffer.from([0x0f, 0xf0, 0x00, 0xaa, 0x55, 0x12, 0x34, 0x56, 0x78, 0x9a]));
    f.program(4090, Buffer.from([0xff, 0x0f]));
    assert.deepEqual([...f.read(4090, 3)], [0x0f, 0x00, 0x00]);
    f.erase(0, 4096);
    assert.deepEqual([...f.read(4094, 4)], [0xff, 0xff, 0x34, 0x56]);
    assert.throws(() => f.program(0x20000 - 1, Buffer.alloc(2)), RangeError);
  });

  it('uses W25Q32 typical times scaled by the slowdown', () => {
    const t = flashTiming(1);
    assert.deepEqual(t, { sectorEraseMs: 45, blockEraseMs: 150, pageProgramMs: 0.4 });
    assert.equal(flashTiming(4).blockEraseMs, 600);
    assert.equal(programTimeMs(t, 0, 256), 0.4);
    assert.ok(Math.abs(programTimeMs(t, 200, 100) - 0.8) < 1e-9); // straddles two pages
  });

  it('bootloader: newest usable slot boots; NEW becomes PENDING_VERIFY; PENDING_VERIFY at boot is aborted', () => {
    const d = new OtaData();
    d.markFactory(0);
    d.setBoot(1);
    let choice = chooseBootSlot(d, () => true);
    assert.deepEqual(choice, { slot: 1, firstBoot: true, rolledBackSlot: null });
    assert.equal(d.state(1), OtaStateCode.PENDING_VERIFY);
    choice = chooseBootSlot(d, () => true);
    assert.deepEqual(choice, { slot: 0, firstBoot: false, rolledBackSlot: 1 });
    assert.equal(d.state(1), OtaStateCode.ABORTED);
  });

  it('bootloader: an image that fails verification is marked invalid and skipped', () => {
    const d = new OtaData();
    d.markFactory(0);
    d.setBoot(1);
    const choice = chooseBootSlot(d, (slot) => slot === 0);
    assert.equal(choice?.slot, 0);
    assert.equal(d.state(1), OtaStateCode.INVALID);
    assert.equal(chooseBootSlot(new OtaData(), () => false), null);
  });
});
