/**
 * The device model (lib/sim/device) and the firmware twin (firmware/build/ble_ota_twin) must spend the
 * same device time on the same update: both run one real-size update (raw, then deflate) with the same
 * image, and report the same host stalls (erase commands one by one, program windows summed), the same
 * END duration (one verification read for a size that is a multiple of 16, the record and otadata writes) and the same boot times (power-on,
 * first boot of the new image, and the boot after it with the app's hash cached)
 * (docs/DEVICE-MODEL.md §2, docs/TWIN.md "Flash timing"). Each implementation is driven directly as the
 * radio drives a VirtualPeripheral, with a host that records stalls and notifications, so the radio's
 * own timing plays no part.
 */
import { strict as assert } from 'assert';
import { sleep } from '../../lib/clock';
import { buildAppImage } from '../../lib/image';
import { decodeNotification, encodeCommand, encodeDataChunk } from '../../lib/protocol/codec';
import { Caps, CONTROL_CHAR_UUID, DATA_CHAR_UUID, EndFlags, Op, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { encodingByte, prepareTransferPayload } from '../../lib/protocol/payload';
import { createSimDevice, type SimDevice } from '../../lib/sim/device';
import { createTwinDevice } from '../../lib/sim/twin-device';
import type { PeripheralHost, SimDeviceConfig, VirtualPeripheral } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { twinAvailable, twinTargetExists, type Implementation } from './env';

const CONFIG: SimDeviceConfig = { name: 'agree', chip: 'esp32c3', version: '1.0.0', implementation: 'model', allowUnauthenticated: true };
/** A real-size app: 1 MiB of synthetic code and data (16 block erases). */
const IMAGE = buildAppImage({ chip: 'esp32c3', version: '2.0.0', projectName: 'ble_ota_app', size: 1024 * 1024 });
const MTU = 256;
/** Erase commands are 45 ms (sector) or 150 ms (block); program windows are at most 8 KiB (12.8 ms). */
const ERASE_MIN_MS = 45;

interface Seen {
  at: number;
  data: Buffer;
}

interface UpdateTiming {
  /** Boot of the factory image at power-on. */
  firstBootMs: number;
  /** Erase stalls from BEGIN to the END response, in order. */
  erases: number[];
  /** Program stalls from BEGIN to the END response, summed. */
  programMs: number;
  /** END written -> END response. */
  endMs: number;
  /** Reset after END -> the new image's application starts. */
  bootMs: number;
  /** The boot after that (REBOOT): the same app, its hash cached. */
  againMs: number;
  /** Erase commands issued by the time the checkpoint's transfer bytes were written (paced runs). */
  erasesAtCheckpoint: number;
}

/** A paced run: one chunk every paceMs (a link slower than the flash), erases counted at checkpoint bytes. */
interface Pacing {
  paceMs: number;
  checkpoint: number;
}

function lastBootMs(impl: Implementation, device: VirtualPeripheral): number {
  return impl === 'model' ? (device as SimDevice).machine.lastBootMs : (device as VirtualPeripheral & { lastBootMs: number }).lastBootMs;
}

async function runUpdate(impl: Implementation, encoding: 'raw' | 'deflate', image: Buffer = IMAGE, pacing?: Pacing): Promise<UpdateTiming> {
  const clock = new VirtualClock();
  const stalls: Array<{ at: number; ms: number }> = [];
  const notes: Seen[] = [];
  const host: PeripheralHost & { hostStall(ms: number): void } = {
    clock,
    notify: (_service, characteristic, data) => {
      if (characteristic === CONTROL_CHAR_UUID) notes.push({ at: clock.now(), data: Buffer.from(data) });
    },
    dropConnection: () => undefined,
    advertisingChanged: () => undefined,
    hostStall: (ms) => stalls.push({ at: clock.now(), ms }),
  };
  const config = { ...CONFIG, implementation: impl };
  const device: VirtualPeripheral = impl === 'model' ? createSimDevice(config, clock) : await createTwinDevice(config, clock);
  try {
    device.attach(host);
    const firstBootMs = lastBootMs(impl, device);
    await clock.runUntil(sleep(clock, 1000)); // the twin is off the air for its first boot
    device.onConnect(MTU);
    await clock.runUntil(sleep(clock, 10));
    const payload = prepareTransferPayload(image, encoding, Caps.DEFLATE);
    const transfer = payload.transfer;
    const reply = async (op: number, limitMs = 10000): Promise<Seen> => {
      const deadline = clock.now() + limitMs;
      for (;;) {
        const found = notes.find((n) => n.data[0] === (op | 0x80));
        if (found) return found;
        if (clock.now() > deadline) throw new Error(`${impl}: no response to op ${op}; last notifications ${notes.slice(-3).map((n) => n.data.toString('hex')).join(' ')}`);
        await clock.runUntil(sleep(clock, 1));
      }
    };
    const from = stalls.length;
    const begin = encodeCommand({
      op: Op.BEGIN,
      imageSize: image.length,
      transferSize: transfer.length,
      encoding: encodingByte(encoding),
      flags: 0,
      chunkSize: 512,
      sha256: payload.sha256,
      tag: Buffer.alloc(16),
    });
    await clock.runUntil(Promise.resolve(device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, begin, false)));
    const beginRsp = decodeNotification((await reply(Op.BEGIN)).data) as { err: number; chunkSize: number; window: number };
    assert.equal(beginRsp.err, 0, `${impl}: BEGIN accepted`);
    assert.equal(beginRsp.chunkSize, 240, `${impl}: MTU 256, data length 251: 240-byte chunks`);
    // Send within the window; the device acknowledges what its writer took.
    let acked = 0;
    let seenNotes = 0;
    const takeAcks = (): void => {
      for (; seenNotes < notes.length; seenNotes++) {
        const n = notes[seenNotes].data;
        if (n[0] === Op.DATA_ACK) acked = Math.max(acked, n.readUInt32LE(1));
        assert.notEqual(n[0], Op.DATA_NAK, `${impl}: no DATA_NAK`);
        assert.notEqual(n[0], Op.SESSION_ABORTED, `${impl}: session not aborted`);
      }
    };
    let erasesAtCheckpoint = -1;
    for (let offset = 0; offset < transfer.length; offset += beginRsp.chunkSize) {
      const end = Math.min(offset + beginRsp.chunkSize, transfer.length);
      if (pacing) {
        await clock.runUntil(sleep(clock, pacing.paceMs));
        takeAcks();
        if (erasesAtCheckpoint < 0 && offset >= pacing.checkpoint) erasesAtCheckpoint = stalls.slice(from).filter((s) => s.ms >= ERASE_MIN_MS).length;
      }
      const deadline = clock.now() + 10000;
      while (end > acked + beginRsp.window) {
        if (clock.now() > deadline) throw new Error(`${impl}: no DATA_ACK past ${acked}`);
        await clock.runUntil(sleep(clock, 1));
        takeAcks();
      }
      device.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeDataChunk({ offset, payload: transfer.subarray(offset, end) }), true);
    }
    const deadline = clock.now() + 20000;
    while (acked < transfer.length) {
      if (clock.now() > deadline) throw new Error(`${impl}: transfer not acknowledged (${acked} of ${transfer.length})`);
      await clock.runUntil(sleep(clock, 5));
      takeAcks();
    }
    await clock.runUntil(sleep(clock, 1000)); // the writer's last flash work
    const endAt = clock.now();
    await clock.runUntil(Promise.resolve(device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeCommand({ op: Op.END, flags: EndFlags.REBOOT }), false)));
    const endRsp = await reply(Op.END);
    assert.equal(endRsp.data[1], 0, `${impl}: END installed the image`);
    const updateStalls = stalls.slice(from).filter((s) => s.at <= endRsp.at);
    await clock.runUntil(sleep(clock, 5000)); // reboot delay, then the first boot of the new image (auto confirm)
    const bootMs = lastBootMs(impl, device);
    // REBOOT: the same app again, its hash now cached in NVS.
    device.onConnect(MTU);
    await clock.runUntil(sleep(clock, 10));
    notes.length = 0;
    await clock.runUntil(Promise.resolve(device.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeCommand({ op: Op.REBOOT, tag: Buffer.alloc(16) }), false)));
    assert.equal((await reply(Op.REBOOT)).data[1], 0, `${impl}: REBOOT accepted`);
    await clock.runUntil(sleep(clock, 5000));
    return {
      firstBootMs,
      erases: updateStalls.filter((s) => s.ms >= ERASE_MIN_MS).map((s) => s.ms),
      programMs: updateStalls.filter((s) => s.ms < ERASE_MIN_MS).reduce((sum, s) => sum + s.ms, 0),
      endMs: endRsp.at - endAt,
      bootMs,
      againMs: lastBootMs(impl, device),
      erasesAtCheckpoint,
    };
  } finally {
    await device.shutdown?.();
  }
}

describe('conformance: model and twin spend the same flash time (needs make -C firmware/test twin)', function () {
  this.timeout(120000);

  before(function () {
    if (!twinAvailable()) {
      if (twinTargetExists()) throw new Error('the firmware twin is not built: run `make -C firmware/test twin`');
      this.skip();
    }
  });

  it('an image size that is not a multiple of 16: esp_ota_end has a tail to flush and validates too, on both (two reads)', async () => {
    // Eight bytes after the image: its size is no multiple of 16 and the image itself still verifies.
    const odd = Buffer.concat([IMAGE, Buffer.alloc(8, 0xff)]);
    const model = await runUpdate('model', 'raw', odd);
    const twin = await runUpdate('twin', 'raw', odd);
    assert.ok(Math.abs(model.endMs - twin.endMs) <= 0.01, `END: model ${model.endMs} ms, twin ${twin.endMs} ms`);
    assert.ok(model.endMs >= (2 * odd.length) / 6536 + 45, `END covers both verification reads (${model.endMs} ms)`);
    assert.deepEqual(model.erases, twin.erases, 'erase commands');
  });

  it('a link slower than the flash: while the writer waits for data both erase ahead, up to 256 KiB in front of the write position', async () => {
    // One 240-byte chunk every 2.5 ms (96 KB/s, the reference link's rate); look after 200 KiB were written.
    const pacing = { paceMs: 2.5, checkpoint: 200 * 1024 };
    const model = await runUpdate('model', 'raw', IMAGE, pacing);
    const twin = await runUpdate('twin', 'raw', IMAGE, pacing);
    // Written ~200 KiB: erased ahead to the first block boundary at least 256 KiB past it (512 KiB, 8 blocks),
    // long before a write needs them; a write-time erase-ahead (64 KiB) would have 4 or 5.
    assert.equal(model.erasesAtCheckpoint, 8, `model: ${model.erasesAtCheckpoint} erases`);
    assert.equal(twin.erasesAtCheckpoint, model.erasesAtCheckpoint, `twin: ${twin.erasesAtCheckpoint} erases`);
    assert.deepEqual(model.erases, twin.erases, 'erase commands');
    assert.ok(Math.abs(model.programMs - twin.programMs) <= 0.01, `program time: model ${model.programMs} ms, twin ${twin.programMs} ms`);
  });

  for (const encoding of ['raw', 'deflate'] as const) {
    it(`${encoding} 1 MiB update: same erase commands, program time, END duration and boot times`, async () => {
      const model = await runUpdate('model', encoding);
      const twin = await runUpdate('twin', encoding);
      const near = (a: number, b: number, tolerance: number): boolean => Math.abs(a - b) <= tolerance;
      assert.ok(near(model.firstBootMs, twin.firstBootMs, 0.01), `power-on boot: model ${model.firstBootMs} ms, twin ${twin.firstBootMs} ms`);
      // 16 block erases of the image, then the otadata sector of the boot switch.
      assert.deepEqual(model.erases, twin.erases, 'erase commands');
      assert.deepEqual(model.erases, [...Array<number>(16).fill(150), 45]);
      // 1 MiB at 0.4 ms per 256 bytes, plus the record and otadata writes: the same bytes on both.
      assert.ok(near(model.programMs, twin.programMs, 0.01), `program time: model ${model.programMs} ms, twin ${twin.programMs} ms`);
      assert.ok(model.programMs >= (IMAGE.length / 256) * 0.4, `program time covers the image (${model.programMs} ms)`);
      // One whole-image read at 6536 B/ms (the size is a multiple of 16: esp_ota_abort closes the handle and
      // esp_ota_set_boot_partition validates), the records and the otadata write; not a second read.
      assert.ok(near(model.endMs, twin.endMs, 0.01), `END: model ${model.endMs} ms, twin ${twin.endMs} ms`);
      assert.equal(IMAGE.length % 16, 0);
      assert.ok(model.endMs >= IMAGE.length / 6536 + 45, `END covers the validation read (${model.endMs} ms)`);
      assert.ok(model.endMs < (2 * IMAGE.length) / 6536 + 45, `END reads the image once (${model.endMs} ms)`);
      assert.ok(near(model.bootMs, twin.bootMs, 0.01), `first boot of the new image: model ${model.bootMs} ms, twin ${twin.bootMs} ms`);
      // 300 ms + the bootloader's read + NEW -> PENDING_VERIFY + the app's hash read and its NVS cache write.
      assert.ok(model.bootMs >= 300 + (2 * IMAGE.length) / 6536 + 45, `boot covers two image reads and the otadata write (${model.bootMs} ms)`);
      // The bootloader reads the image on every boot; the app reads its hash from NVS.
      assert.ok(near(model.againMs, twin.againMs, 0.01), `next boot: model ${model.againMs} ms, twin ${twin.againMs} ms`);
      assert.ok(near(model.againMs, 300 + IMAGE.length / 6536, 0.01), `next boot: ${model.againMs} ms`);
    });
  }
});
