import { strict as assert } from 'assert';
import { eraseEnd, flashTiming, programTimeMs, writeWindowsMs } from '../../lib/sim/device/flash-timing';
import { FlashWork } from '../../lib/sim/device/flash-work';
import { NVS_RECORD_ENTRIES } from '../../lib/sim/device/nvs';
import { SparseFlash } from '../../lib/sim/device/sparse-flash';
import { TimerGroup } from '../../lib/sim/device/timers';
import { VirtualClock } from '../../lib/sim/virtual-clock';

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

  it('ends a session\'s erasing at the last block when 4+ of its sectors are needed and it fits (as firmware ble_ota_erase_end)', () => {
    const KIB = 1024;
    assert.equal(eraseEnd(1433600, 0x1e0000), 22 * 64 * KIB); // 21 blocks + 14 sectors: one block erase
    assert.equal(eraseEnd(64 * KIB + 12 * KIB + 1, 0x1e0000), 128 * KIB); // 4 sectors
    assert.equal(eraseEnd(64 * KIB + 12 * KIB, 0x1e0000), 76 * KIB); // 3 sectors: cheaper one by one
    assert.equal(eraseEnd(128 * KIB, 0x1e0000), 128 * KIB);
    assert.equal(eraseEnd(1, 0x1e0000), 4 * KIB);
    assert.equal(eraseEnd(0x1e0000 - 20 * KIB, 0x1e0000 - 4 * KIB), 0x1e0000 - 20 * KIB); // the block would leave the partition
  });

  it('uses W25Q32 typical times scaled by the slowdown, and ESP-IDF\'s write windows', () => {
    const t = flashTiming(1);
    assert.deepEqual(t, { sectorEraseMs: 45, blockEraseMs: 150, pageProgramMs: 0.4, verifyBytesPerMs: 6536 });
    assert.equal(flashTiming(4).blockEraseMs, 600);
    assert.equal(flashTiming(4).verifyBytesPerMs, 1634);
    assert.equal(programTimeMs(t, 0, 256), 0.4);
    assert.ok(Math.abs(programTimeMs(t, 200, 100) - 0.8) < 1e-9); // straddles two pages
    // one cache-disabled window per 8192 bytes (CONFIG_SPI_FLASH_WRITE_CHUNK_SIZE)
    const close = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) < 1e-9);
    assert.ok(close(writeWindowsMs(t, 0, 4096), [6.4]));
    assert.ok(close(writeWindowsMs(t, 0, 20000), [12.8, 12.8, (3616 * 0.4) / 256]));
    assert.ok(close(writeWindowsMs(t, 200, 100), [100 * (0.4 / 256)]), 'charged by bytes, wherever the write starts');
  });

  it('an NVS record write is four small write windows; filling a 126-entry page costs a sector erase first', () => {
    const stalls: number[] = [];
    const work = new FlashWork({ appTimers: new TimerGroup(new VirtualClock()), stallHost: (ms) => stalls.push(ms) }, flashTiming(1));
    const first = work.nvsTime(0);
    const perByte = 0.4 / 256;
    assert.deepEqual(stalls.map((ms) => Math.round(ms / perByte)), [128, 32, 4, 4], 'blob entries, index, two state-bitmap updates');
    assert.ok(Math.abs(first - 168 * perByte) < 1e-9);
    stalls.length = 0;
    const crossing = work.nvsTime(126 - NVS_RECORD_ENTRIES + 1);
    assert.equal(stalls[0], 45, 'the page erase comes first');
    assert.ok(crossing > 45);
  });
});
