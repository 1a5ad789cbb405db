import { strict as assert } from 'assert';
import { createHash, generateKeyPairSync } from 'crypto';
import { sleep } from '../../lib/clock';
import { makeDeltaTransfer } from '../../lib/delta';
import { buildAppImage } from '../../lib/image';
import { encodeCommand, encodeDataChunk } from '../../lib/protocol/codec';
import { CONTROL_CHAR_UUID, DATA_CHAR_UUID, Op, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { manifestForImage } from '../../lib/security/release';
import { publicKeyToSec1 } from '../../lib/security/keys';
import { createTwinDevice, findTwinBinary } from '../../lib/sim/twin-device';
import type { PeripheralHost, SimDeviceConfig, VirtualPeripheral } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';

interface Seen {
  at: number;
  data: Buffer;
}

/** The image the twin runs (lib/sim/twin-device.ts writes it at start). */
function twinRunningImage(version: string): Buffer {
  return buildAppImage({ chip: 'esp32c3', version, secureVersion: 0, projectName: 'ble_ota_app', size: 128 * 1024 });
}

/** Delta (encoding 2) and the manifest's verify on the firmware twin (needs make -C firmware/test twin). */
describe('sim/twin delta and manifest verify timing (needs make -C firmware/test twin)', () => {
  let device: VirtualPeripheral | null = null;
  afterEach(async () => {
    await device?.shutdown?.();
    device = null;
  });

  async function start(config: SimDeviceConfig): Promise<{ clock: VirtualClock; notes: Seen[]; stalls: number[] }> {
    const clock = new VirtualClock();
    const notes: Seen[] = [];
    const stalls: number[] = [];
    const host: PeripheralHost & { hostStall(ms: number): void } = {
      clock,
      notify: (_service, _characteristic, data) => notes.push({ at: clock.now(), data }),
      dropConnection: () => undefined,
      advertisingChanged: () => undefined,
      hostStall: (ms) => stalls.push(ms),
    };
    device = await createTwinDevice(config, clock);
    device.attach(host);
    await clock.runUntil(sleep(clock, 500)); // boot first
    device.onConnect(256);
    return { clock, notes, stalls };
  }

  it('installs a patch against the running image; each base read stalls the host like a program', async function () {
    if (!findTwinBinary()) this.skip();
    const { clock, notes, stalls } = await start({ name: 'twin-delta', chip: 'esp32c3', version: '1.0.0', implementation: 'twin', allowUnauthenticated: true });
    const image = twinRunningImage('1.0.1');
    const delta = makeDeltaTransfer(twinRunningImage('1.0.0'), image);
    const sha256 = createHash('sha256').update(image).digest();
    const begin = encodeCommand({ op: Op.BEGIN, imageSize: image.length, transferSize: delta.transfer.length, encoding: 2, flags: 0, chunkSize: 512, sha256, baseSha256: delta.baseSha256, tag: Buffer.alloc(16) });
    await clock.runUntil(Promise.resolve(device!.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, begin, false)));
    await clock.runUntil(sleep(clock, 10));
    const beginRsp = notes.find((n) => n.data[0] === (Op.BEGIN | 0x80));
    assert.ok(beginRsp, 'BEGIN answered');
    assert.equal(beginRsp.data[1], 0, 'a delta from the running image is accepted');
    const chunk = beginRsp.data.readUInt16LE(2);
    const stallsBefore = stalls.length;
    for (let offset = 0; offset < delta.transfer.length; offset += chunk) {
      device!.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeDataChunk({ offset, payload: delta.transfer.subarray(offset, offset + chunk) }), true);
    }
    await clock.runUntil(sleep(clock, 3000));
    await clock.runUntil(Promise.resolve(device!.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeCommand({ op: Op.END, flags: 0 }), false)));
    await clock.runUntil(sleep(clock, 1000));
    const endRsp = notes.find((n) => n.data[0] === (Op.END | 0x80));
    assert.ok(endRsp, 'END answered');
    assert.equal(endRsp.data[1], 0, 'the SHA-256 of the new image matched: the patch rebuilt it byte for byte');
    // base reads of at most 512 bytes: 4/35.2 ms per call + bytes / 6536 per ms (docs/TWIN.md "read"), so
    // between 0.1136 and 0.19 ms; the image is mostly diff bytes, read in 512-byte pieces
    const reads = stalls.slice(stallsBefore).filter((ms) => ms > 4 / 35.2 && ms <= 4 / 35.2 + 512 / 6536 + 1e-9);
    assert.ok(reads.length >= (0.9 * image.length) / 512, `${reads.length} base reads for ${image.length} bytes`);
  });

  it('refuses a delta from another base at BEGIN with BASE_MISMATCH (38), with no flash work', async function () {
    if (!findTwinBinary()) this.skip();
    const { clock, notes, stalls } = await start({ name: 'twin-delta-base', chip: 'esp32c3', version: '1.0.0', implementation: 'twin', allowUnauthenticated: true });
    const image = twinRunningImage('1.0.1');
    const delta = makeDeltaTransfer(twinRunningImage('0.9.0'), image);
    const sha256 = createHash('sha256').update(image).digest();
    const stallsBefore = stalls.length;
    const begin = encodeCommand({ op: Op.BEGIN, imageSize: image.length, transferSize: delta.transfer.length, encoding: 2, flags: 0, chunkSize: 512, sha256, baseSha256: delta.baseSha256, tag: Buffer.alloc(16) });
    await clock.runUntil(Promise.resolve(device!.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, begin, false)));
    await clock.runUntil(sleep(clock, 100));
    const beginRsp = notes.find((n) => n.data[0] === (Op.BEGIN | 0x80));
    assert.ok(beginRsp);
    assert.equal(beginRsp.data[1], 38);
    assert.equal(stalls.length, stallsBefore, 'nothing erased, written or read');
  });

  it('answers BEGIN at once and verifies the manifest in the writer: ACKs wait for it, the host never stalls for it', async function () {
    if (!findTwinBinary()) this.skip();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const { clock, notes, stalls } = await start({ name: 'twin-manifest', chip: 'esp32c3', version: '1.0.0', implementation: 'twin', releaseKeys: [publicKeyToSec1(publicKey)] });
    const image = twinRunningImage('1.0.1');
    const manifest = manifestForImage(image, {}, privateKey);
    const sha256 = createHash('sha256').update(image).digest();
    const begin = encodeCommand({ op: Op.BEGIN, imageSize: image.length, transferSize: image.length, encoding: 0, flags: 2, chunkSize: 512, sha256, tag: Buffer.alloc(16), manifest: manifest.bytes });
    const sentAt = clock.now();
    await clock.runUntil(Promise.resolve(device!.onWrite(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, begin, false)));
    await clock.runUntil(sleep(clock, 1));
    const beginRsp = notes.find((n) => n.data[0] === (Op.BEGIN | 0x80));
    assert.ok(beginRsp, 'BEGIN answered without waiting for the ECDSA verify');
    assert.equal(beginRsp.data[1], 0);
    assert.ok(beginRsp.at - sentAt < 1, `BEGIN answered ${beginRsp.at - sentAt} ms after it was written`);
    const chunk = beginRsp.data.readUInt16LE(2);
    for (let offset = 0; offset < 8192; offset += chunk) {
      device!.onWrite(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeDataChunk({ offset, payload: image.subarray(offset, Math.min(offset + chunk, 8192)) }), true);
    }
    await clock.runUntil(sleep(clock, 1000));
    const firstAck = notes.find((n) => n.data[0] === 0xa0);
    assert.ok(firstAck, 'DATA_ACK after the verify');
    // esp32c3: no ECC peripheral, 134 ms assumed (docs/TWIN.md "Manifest check time")
    assert.ok(firstAck.at - sentAt >= 134, `first ACK ${firstAck.at - sentAt} ms after BEGIN`);
    // the stalls are the erases (150 ms per 64 KiB block) and programs; none is the 134 ms verify
    assert.ok(!stalls.some((ms) => Math.abs(ms - 134) < 1), `the verify is writer time, not a host stall: ${stalls.filter((ms) => ms > 1).join(', ')}`);
    assert.ok(!notes.some((n) => n.data[0] === 0xa2), 'no SESSION_ABORTED: the signature verified');
  });
});
