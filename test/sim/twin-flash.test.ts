import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import { sleep } from '../../lib/clock';
import { buildAppImage } from '../../lib/image';
import { encodeCommand, encodeDataChunk } from '../../lib/protocol/codec';
import { CONTROL_CHAR_UUID, DATA_CHAR_UUID, Op, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { createTwinDevice, findTwinBinary } from '../../lib/sim/twin-device';
import type { PeripheralHost, VirtualPeripheral } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';

interface Seen {
  at: number;
  data: Buffer;
}

/** The twin reports its flash work; the simulator stalls the device's BLE host for erases and programs. */
describe('sim/twin flash timing (needs make -C firmware/test twin)', () => {
  let device: VirtualPeripheral | null = null;
  afterEach(async () => {
    await device?.shutdown?.();
    device = null;
  });

  /** Sends an image of `size` bytes to a fresh twin (raw, every chunk at once) and ends it; what the host saw. */
  async function updateTwin(size: number): Promise<{ image: Buffer; stalls: number[]; chunk: number; endAt: number; endRsp: Seen }> {
    const clock = new VirtualClock();
    const stalls: number[] = [];
    const notes: Seen[] = [];
    const host: PeripheralHost & { hostStall(ms: number): void } = {
      clock,
      notify: (_service, _characteristic, data) => notes.push({ at: clock.now(), data }),
      dropConnection: () => undefined,
      advertisingChanged: () => undefined,
      hostStall: (ms) => stalls.push(ms),
    };
    // no keys: the development opt-out (flash timing is what this test is about)
    device = await createTwinDevice({ name: 'twin-flash', chip: 'esp32c3', version: '1.0.0', implementation: 'twin', allowUnauthenticated: true }, clock);
    device.attach(host);
    await clock.runUntil(sleep(clock, 500)); // boot (about 390 ms) first
    device.onConnect(256);
    const image = buildAppImage({ chip: 'esp32c3', version: '2.0.0', size });
    const sha256 = createHash('sha256').update(image).digest();
    const begin = encodeCommand({ op: Op.BEGIN, imageSize: image.length, transferSize: image.length, encoding: 0, flags: 0, chunkSize: 512, sha256, tag: Buffer.alloc(16) });
    await clock.runUntil(Promise.resolve(device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, begin, false)));
    await clock.runUntil(sleep(clock, 10));
    const beginRsp = notes.find((n) => n.data[0] === (Op.BEGIN | 0x80));
    assert.ok(beginRsp, 'BEGIN answered');
    assert.equal(beginRsp.data[1], 0);
    const chunk = beginRsp.data.readUInt16LE(2);
    for (let offset = 0; offset < image.length; offset += chunk) {
      device.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeDataChunk({ offset, payload: image.subarray(offset, offset + chunk) }), true);
    }
    await clock.runUntil(sleep(clock, 3000));
    const endAt = clock.now();
    await clock.runUntil(Promise.resolve(device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeCommand({ op: Op.END, flags: 0 }), false)));
    await clock.runUntil(sleep(clock, 1000));
    const endRsp = notes.find((n) => n.data[0] === (Op.END | 0x80));
    assert.ok(endRsp, 'END answered');
    assert.equal(endRsp.data[1], 0, 'installed');
    return { image, stalls, chunk, endAt, endRsp };
  }

  it('stalls the host for each erase / program and answers END after the image verification', async function () {
    if (!findTwinBinary()) this.skip();
    const { image, stalls, chunk, endAt, endRsp } = await updateTwin(128 * 1024);
    assert.equal(chunk, 240, 'MTU 256 with 251-octet PDUs: 240-byte chunks fill one PDU');
    // esp_ota_set_boot_partition reads the whole image (6536 B/ms; esp_ota_end does not, as the size is a
    // multiple of 16: the handle is closed with esp_ota_abort), then the otadata sector erase (45 ms) and the
    // record writes: the response waits for all of it.
    assert.ok(endRsp.at - endAt >= image.length / 6536 + 45, `END answered ${endRsp.at - endAt} ms after it was written`);
    assert.ok(endRsp.at - endAt < (2 * image.length) / 6536 + 45, `one verification read, not two (${endRsp.at - endAt} ms)`);
    // 128 KiB image: two 64 KiB block erases (first unit at the header check, one erase-ahead), then the
    // otadata sector of the boot switch.
    const erases = stalls.filter((ms) => ms >= 45);
    assert.deepEqual(erases, [150, 150, 45]);
    const programs = stalls.filter((ms) => ms < 45);
    assert.ok(programs.length >= image.length / chunk, 'a program stall per write');
    // 0.4 ms per 256 bytes: the image, the otadata entry (32 B) and three record writes (88-byte blob:
    // 128 + 32 + 4 + 4 bytes each)
    const programmed = programs.reduce((a, b) => a + b, 0) / (0.4 / 256);
    assert.ok(Math.abs(programmed - (image.length + 32 + 3 * 168)) < 1e-3, `programmed ${programmed} bytes`);
  });

  it('erases an image\'s last block whole when 4 or more of its sectors are needed, as the TS model does (eraseEnd)', async function () {
    if (!findTwinBinary()) this.skip();
    // 120 KiB: the 14 sectors of the second block as one block erase; then the otadata sector.
    const long = await updateTwin(120 * 1024);
    assert.deepEqual(
      long.stalls.filter((ms) => ms >= 45),
      [150, 150, 45],
    );
    await device?.shutdown?.();
    // 76 KiB: 3 sectors of the second block stay sector erases (3 x 45 ms < 150 ms).
    const short = await updateTwin(76 * 1024);
    assert.deepEqual(
      short.stalls.filter((ms) => ms >= 45),
      [150, 45, 45, 45, 45],
    );
  });
});
