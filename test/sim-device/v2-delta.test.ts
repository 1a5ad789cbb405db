/**
 * Delta updates (encoding 2, PROTOCOL.md §13) on the device model at the GATT level: a patch against the
 * running image installs the same bytes a full update does; a wrong base is refused at BEGIN with nothing
 * erased; each malformed patch ends the session with the contract's code and the old image keeps booting;
 * a resumed session keeps the applier's state.
 */
import { strict as assert } from 'assert';
import { deflateSync } from 'zlib';
import { baseImageBytes, encodePatch, makeDeltaTransfer, type PatchRecord } from '../../lib/delta';
import { appHash } from '../../lib/image';
import { buildAppImage } from '../../lib/image/builder';
import { CHIP_IDS, Caps, ErrorCode, Op } from '../../lib/protocol/constants';
import { BLOCK_ERASE_MS, VERIFY_READ_BYTES_PER_MS } from '../../lib/sim/device/flash-timing';
import type { SlotIndex } from '../../lib/sim/device/ota-data';
import { buildManifest, generateReleaseKey } from '../helpers/v21-wire';
import { Central, Rig, Transfer, afterReboot, makeRig, rawTransfer, sha256 } from './harness';

const SIZE = 96 * 1024;
/** Two builds of one app (same content seed): they differ in the app descriptor, like a version bump. */
const appImage = (version: string, seed = 42): Buffer => buildAppImage({ chip: 'esp32c3', version, projectName: 'ble_ota_app', size: SIZE, secureVersion: 0, seed });
const baseImage = appImage('1.0.0');
const newImage = appImage('1.1.0');
const delta = makeDeltaTransfer(baseImage, newImage);
const baseBytes = baseImageBytes(baseImage);

function deltaTransfer(payload: Buffer, image = newImage): Transfer {
  return { image, payload, encoding: 2, sha256: sha256(image) };
}

/** A patch of records, as one zlib stream. */
function patchTransfer(records: PatchRecord[], extraBytes = Buffer.alloc(0)): Transfer {
  return deltaTransfer(deflateSync(Buffer.concat([encodePatch(records), extraBytes])));
}

/** The device runs baseImage (factory image in ota_0). */
function rig(): Rig {
  return makeRig({ version: '1.0.0' }, { factoryImage: baseImage });
}

const OTA_1: SlotIndex = 1;

/** The first 40 KiB of the new image copied as extra bytes: the header passes and flash is written before the bad record. */
const HEAD = 40 * 1024;
const goodStart: PatchRecord = { diff: new Uint8Array(0), extra: newImage.subarray(0, HEAD), seek: 0 };

async function beginDelta(c: Central, t: Transfer, baseSha256 = delta.baseSha256): Promise<Awaited<ReturnType<Central['begin']>>> {
  return c.begin(t, { baseSha256 });
}

/** After a failed delta the device reboots into its old image. */
async function assertOldImageBoots(r: Rig, c: Central, what: string): Promise<void> {
  assert.equal((await c.tagged(Op.REBOOT)).err, 0, `${what}: REBOOT`);
  await afterReboot(r);
  const s = await new Central(r).connect().readStatus();
  assert.equal(s.runningPartition, 'ota_0', `${what}: still the old slot`);
  assert.equal(s.runningSha256, appHash(baseImage).toString('hex'), `${what}: the old image runs`);
}

describe('sim-device v2.1: delta updates', () => {
  it('caps bit 7; a delta installs byte for byte what a full update installs, in far fewer bytes on Data', async () => {
    const viaDelta = rig();
    const c = new Central(viaDelta).connect();
    assert.ok(((await c.challenge()).caps ?? 0) & Caps.DELTA, 'caps bit 7');
    const before = await c.readStatus();
    assert.equal(before.runningSha256, delta.baseSha256.toString('hex'), 'the base is the image Status reports');
    const t = deltaTransfer(delta.transfer);
    const b = await beginDelta(c, t);
    assert.equal(b.err, 0);
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
    assert.equal((await c.end(0)).err, 0);

    const viaFull = rig();
    assert.equal((await new Central(viaFull).connect().update(rawTransfer(newImage), 0)).err, 0);
    const deltaSlot = viaDelta.device.flash.imageBytes(OTA_1);
    assert.ok(deltaSlot.equals(viaFull.device.flash.imageBytes(OTA_1)), 'ota_1 holds the same bytes');
    assert.ok(deltaSlot.subarray(0, newImage.length).equals(newImage), 'and they are the new image');
    assert.ok(delta.transfer.length * 10 < newImage.length, `${delta.transfer.length} bytes on Data for a ${newImage.length}-byte image`);

    assert.equal((await c.tagged(Op.REBOOT)).err, 0);
    await afterReboot(viaDelta);
    const s = await new Central(viaDelta).connect().readStatus();
    assert.equal(s.runningPartition, 'ota_1');
    assert.equal(s.appVersion, '1.1.0');
    assert.equal(s.lastResult, ErrorCode.OK);
  });

  it('charges the base reads at the flash read rate, as cache-disabled windows of the writer', async () => {
    const r = rig();
    const c = new Central(r).connect();
    const t = deltaTransfer(delta.transfer);
    const b = await beginDelta(c, t);
    const stallsBefore = r.host.stalls.length;
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
    assert.equal((await c.end(0)).err, 0);
    // The generator's patch reads (almost) every output byte from the base through diff parts.
    const diffBytes = readsOf(delta.patch);
    const readMs = diffBytes / VERIFY_READ_BYTES_PER_MS;
    const stalled = r.host.stalls.slice(stallsBefore).reduce((sum, s) => sum + s.ms, 0);
    const full = rig();
    const fc = new Central(full).connect();
    const fb = await fc.begin(rawTransfer(newImage));
    const fullBefore = full.host.stalls.length;
    await fc.send(newImage, { chunkSize: fb.chunkSize, window: fb.window });
    assert.equal((await fc.end(0)).err, 0);
    const fullStalled = full.host.stalls.slice(fullBefore).reduce((sum, s) => sum + s.ms, 0);
    assert.ok(readMs > 10, `the patch reads ${diffBytes} base bytes`);
    const longest = Math.max(...r.host.stalls.slice(stallsBefore).map((s) => s.ms));
    assert.ok(longest <= BLOCK_ERASE_MS, 'reads come in windows of at most 16 KiB (esp_flash_read chunks), none longer than a block erase');
    assert.ok(Math.abs(stalled - fullStalled - readMs) < 0.01, `delta stalls ${stalled} ms, full ${fullStalled} ms, reads ${readMs} ms`);
  });

  it('BASE_MISMATCH at BEGIN when the base is not the running image: nothing erased, no record', async () => {
    const r = rig();
    const c = new Central(r).connect();
    const before = await c.readStatus();
    const other = makeDeltaTransfer(appImage('0.9.0', 7), newImage);
    assert.equal((await beginDelta(c, deltaTransfer(other.transfer), other.baseSha256)).err, ErrorCode.BASE_MISMATCH);
    assert.equal((await beginDelta(c, deltaTransfer(delta.transfer), Buffer.alloc(32))).err, ErrorCode.BASE_MISMATCH, 'zero base');
    assert.equal(r.device.flash.opCount, 0, 'nothing erased or written');
    const after = await c.readStatus();
    assert.equal(after.lastResult, before.lastResult, 'the update record is untouched');
    assert.equal(after.sessionState, 0);
  });

  it('each malformed patch ends the session with its code and the old image keeps booting', async () => {
    const cases: Array<[string, Transfer, 'abort' | 'end', number]> = [
      // pos moves to base_len - 50 and a diff of 100 reads past the base.
      ['reads outside the base', patchTransfer([{ ...goodStart, seek: baseBytes.length - 50 }, { diff: new Uint8Array(100), extra: new Uint8Array(0), seek: 0 }]), 'abort', ErrorCode.PATCH_INVALID],
      ['reads before the base', patchTransfer([{ ...goodStart, seek: -1 }, { diff: new Uint8Array(10), extra: new Uint8Array(0), seek: 0 }]), 'abort', ErrorCode.PATCH_INVALID],
      ['produces more than image_size', patchTransfer([goodStart, { diff: new Uint8Array(0), extra: Buffer.alloc(newImage.length - HEAD + 1), seek: 0 }]), 'abort', ErrorCode.PATCH_INVALID],
      ['trailing bytes after the last record', patchTransfer([{ diff: new Uint8Array(0), extra: newImage, seek: 0 }], Buffer.from([0, 0, 0])), 'abort', ErrorCode.PATCH_INVALID],
      ['an overlong varint', patchTransfer([goodStart], Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), 'abort', ErrorCode.PATCH_INVALID],
      ['ends before image_size', patchTransfer([goodStart]), 'end', ErrorCode.SIZE_MISMATCH],
      // Every image byte produced, but the last record's seek is missing.
      ['ends without the last seek', deltaTransfer(deflateSync(encodePatch([{ diff: new Uint8Array(0), extra: newImage, seek: 0 }]).subarray(0, -1))), 'end', ErrorCode.SIZE_MISMATCH],
    ];
    for (const [what, t, when, code] of cases) {
      const r = rig();
      const c = new Central(r).connect();
      const b = await beginDelta(c, t);
      assert.equal(b.err, 0, `${what}: BEGIN`);
      if (when === 'abort') {
        await assert.rejects(c.send(t.payload, { chunkSize: b.chunkSize, window: b.window }), new RegExp(`SESSION_ABORTED ${code}$`), what);
      } else {
        await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
        assert.equal((await c.end(1)).err, code, `${what}: END`);
      }
      assert.equal((await c.readStatus()).lastResult, code, `${what}: recorded`);
      await assertOldImageBoots(r, c, what);
    }
  });

  it('a signed manifest bound to the base: the delta installs; bound to another base it is MANIFEST_MISMATCH at BEGIN', async () => {
    const key = generateReleaseKey();
    const manifest = (baseSha256: Buffer): Buffer =>
      buildManifest({ imageSha256: sha256(newImage), imageSize: newImage.length, baseSha256, release: 1, secureVersion: 0, chipId: CHIP_IDS.esp32c3, projectName: 'ble_ota_app', appVersion: '1.1.0' }, key.privateKey);
    const r = makeRig({ version: '1.0.0', releaseKeys: [key.publicPoint] }, { factoryImage: baseImage });
    const c = new Central(r).connect();
    const t = deltaTransfer(delta.transfer);
    assert.equal((await c.begin(t, { baseSha256: delta.baseSha256, manifest: manifest(Buffer.alloc(32, 5)) })).err, ErrorCode.MANIFEST_MISMATCH);
    assert.equal(r.device.flash.opCount, 0);
    const b = await c.begin(t, { baseSha256: delta.baseSha256, manifest: manifest(delta.baseSha256) });
    assert.equal(b.err, 0);
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
    assert.equal((await c.end(0)).err, 0);
    assert.ok(r.device.flash.imageBytes(OTA_1).subarray(0, newImage.length).equals(newImage));
  });

  it('resumes mid-patch: the applier keeps its state across the reconnect', async () => {
    // A build with other content: a patch of tens of kilobytes, so the link can drop in its middle.
    const image = appImage('1.1.0', 43);
    const big = makeDeltaTransfer(baseImage, image);
    const r = rig();
    const first = new Central(r).connect();
    const t = deltaTransfer(big.transfer, image);
    const b = await beginDelta(first, t);
    const half = Math.floor(t.payload.length / 2);
    const acked = await first.send(t.payload, { chunkSize: b.chunkSize, window: b.window, stopAt: half });
    assert.ok(acked > 0, 'part of the patch is in');
    first.disconnect();
    const second = new Central(r, 1).connect();
    const again = await second.begin(t, { baseSha256: delta.baseSha256 });
    assert.equal(again.err, 0);
    assert.ok(again.resumeOffset > 0 && again.resumeOffset <= half, `resumed at ${again.resumeOffset}`);
    await second.send(t.payload, { chunkSize: again.chunkSize, window: again.window, from: again.resumeOffset });
    assert.equal((await second.end(0)).err, 0);
    assert.ok(r.device.flash.imageBytes(OTA_1).subarray(0, image.length).equals(image), 'the new image, byte for byte');
  });

  it('a resume with another base is a new session, refused when that base is not the running image', async () => {
    const r = rig();
    const first = new Central(r).connect();
    const t = deltaTransfer(delta.transfer);
    const b = await beginDelta(first, t);
    await first.send(t.payload, { chunkSize: b.chunkSize, window: b.window, stopAt: Math.floor(t.payload.length / 2) });
    first.disconnect();
    const second = new Central(r, 1).connect();
    assert.equal((await second.begin(t, { baseSha256: Buffer.alloc(32, 7) })).err, ErrorCode.BASE_MISMATCH);
  });
});

/** Base bytes a patch reads: the sum of its diff lengths (records parsed like the device does). */
function readsOf(patch: Buffer): number {
  let at = 0;
  let reads = 0;
  const uvarint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = patch[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
  };
  while (at < patch.length) {
    const diff = uvarint();
    reads += diff;
    at += diff;
    at += uvarint();
    uvarint();
  }
  return reads;
}
