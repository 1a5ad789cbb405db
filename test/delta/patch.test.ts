import { strict as assert } from 'assert';
import * as fs from 'fs';
import { createInflate, deflateSync, inflateSync } from 'zlib';
import { buildSyntheticPair } from '../../lib/bench/images';
import { PatchApplier, applyPatch, baseImageBytes, chooseEncoding, createPatch, encodePatch, isPatchError, makeDeltaTransfer, makeDeltaTransferInWorker } from '../../lib/delta';
import type { PatchError, PatchProblem, PatchRecord } from '../../lib/delta';
import { appHash, buildAppImage, parseImage, validateAppImage } from '../../lib/image';
import { Prng } from '../../lib/image/prng';
import { vectorPath } from '../helpers/paths';

const bytes = (...values: number[]) => Buffer.from(values);
const record = (diff: number[], extra: number[], seek: number): PatchRecord => ({ diff: bytes(...diff), extra: bytes(...extra), seek });

/** Feeds the patch in pieces of the given sizes (cycled); returns the output or the PatchError. */
function applyInPieces(base: Buffer, patch: Buffer, imageSize: number, sizes: number[]): Buffer | PatchError {
  const applier = new PatchApplier(base, imageSize);
  const out: Buffer[] = [];
  try {
    for (let at = 0, k = 0; at < patch.length; k++) {
      const n = Math.max(1, sizes[k % sizes.length]);
      out.push(applier.push(patch.subarray(at, at + n)));
      at += n;
    }
    applier.finish();
  } catch (err) {
    if (isPatchError(err)) return err;
    throw err;
  }
  return Buffer.concat(out);
}

function expectProblem(base: Buffer, patch: Buffer, imageSize: number, reason: PatchProblem): void {
  assert.throws(() => applyPatch(base, patch, imageSize), (err: unknown) => {
    assert.ok(isPatchError(err), String(err));
    assert.equal(err.code, 'PATCH_INVALID');
    assert.equal(err.reason, reason, err.message);
    assert.equal(err.details?.reason, reason);
    return true;
  });
  // The same verdict when the patch arrives one byte at a time.
  const piecewise = applyInPieces(base, patch, imageSize, [1]);
  assert.ok(isPatchError(piecewise) && piecewise.reason === reason, `byte by byte: ${String(piecewise)}`);
}

describe('delta: patch records and applier (§F)', () => {
  const base = bytes(10, 20, 30, 40, 50, 60, 70, 80);

  it('adds diff bytes to the base mod 256, copies extra bytes, seeks backwards and forwards', () => {
    const patch = encodePatch([record([1, 0, 250], [9, 9], -3), record([0, 0], [], 5), record([0], [7], 0)]);
    // base[0..3) + diff = 11 20 24 (30 + 250 = 280 mod 256); extra 9 9; pos 3 - 3 = 0: 10 20; pos 2 + 5 = 7: 80; extra 7.
    assert.deepEqual([...applyPatch(base, patch, 9)], [11, 20, 24, 9, 9, 10, 20, 80, 7]);
  });

  it('encodes varints as LEB128 and seeks as zigzag (byte-level)', () => {
    const diff = Buffer.alloc(300);
    const patch = encodePatch([{ diff, extra: Buffer.alloc(0), seek: -2 }]);
    assert.deepEqual([...patch.subarray(0, 2)], [0xac, 0x02]); // 300
    assert.deepEqual([...patch.subarray(302)], [0x00, 0x03]); // extra_len 0, zigzag(-2) = 3
    assert.deepEqual([...encodePatch([record([], [], 1)])], [0, 0, 2]);
    assert.deepEqual([...encodePatch([record([], [], -2147483648)])], [0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
  });

  it('lets the base position leave the base between reads', () => {
    const patch = encodePatch([record([], [1], 100), record([], [2], -200), record([], [3], 102), record([0], [], 0)]);
    assert.deepEqual([...applyPatch(base, patch, 4)], [1, 2, 3, 30]);
  });

  it('an empty image is an empty patch', () => {
    assert.equal(applyPatch(base, Buffer.alloc(0), 0).length, 0);
    expectProblem(base, encodePatch([record([], [], 0)]), 0, 'trailing-bytes');
  });

  describe('malformed patches: typed errors naming the reason', () => {
    it('read outside the base: past its end, straddling the end, at a negative position', () => {
      expectProblem(base, encodePatch([record([], [], 8), record([0], [], 0)]), 1, 'read-outside-base');
      expectProblem(base, encodePatch([record([], [], 6), record([0, 0, 0], [], 0)]), 3, 'read-outside-base');
      expectProblem(base, encodePatch([record([], [], -1), record([0], [], 0)]), 1, 'read-outside-base');
      expectProblem(Buffer.alloc(0), encodePatch([record([0], [], 0)]), 1, 'read-outside-base');
    });

    it('output past image_size, by a diff part or an extra part', () => {
      expectProblem(base, encodePatch([record([0, 0, 0], [], 0)]), 2, 'output-past-image-size');
      expectProblem(base, encodePatch([record([0], [1, 2], 0)]), 2, 'output-past-image-size');
      expectProblem(base, encodePatch([record([], [1], 0), record([], [2], 0)]), 1, 'trailing-bytes');
    });

    it('overlong varints: more than 5 bytes, or 5 bytes not below 2^32', () => {
      expectProblem(base, bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x00), 1, 'overlong-varint');
      expectProblem(base, bytes(0x80, 0x80, 0x80, 0x80, 0x10), 1, 'overlong-varint');
      expectProblem(base, bytes(0, 1, 0xaa, 0xff, 0xff, 0xff, 0xff, 0x1f), 1, 'overlong-varint');
      // The largest 5-byte value is fine where a length may be that big (a seek).
      assert.deepEqual([...applyPatch(base, bytes(0, 1, 0xaa, 0xff, 0xff, 0xff, 0xff, 0x0f), 1)], [0xaa]);
      // A zero-padded varint within 5 bytes is accepted (LEB128 allows it).
      assert.deepEqual([...applyPatch(base, bytes(0x80, 0x00, 1, 0xaa, 0), 1)], [0xaa]);
    });

    it('trailing bytes after the record that completes the image', () => {
      const good = encodePatch([record([0, 0], [], 0)]);
      expectProblem(base, Buffer.concat([good, bytes(0)]), 2, 'trailing-bytes');
      expectProblem(base, Buffer.concat([good, encodePatch([record([], [], 0)])]), 2, 'trailing-bytes');
    });

    it('ends early: nothing, inside a varint, inside a diff or extra part, or without the last seek', () => {
      const good = encodePatch([record([1, 2], [3, 4], 0)]);
      for (let cut = 0; cut < good.length; cut++) expectProblem(base, good.subarray(0, cut), 4, 'ends-early');
      expectProblem(base, bytes(0x80), 1, 'ends-early');
      assert.deepEqual([...applyPatch(base, good, 4)], [11, 22, 3, 4]);
    });

    it('stays failed: later pieces and finish() repeat the first error', () => {
      const applier = new PatchApplier(base, 1);
      assert.throws(() => applier.push(bytes(0x02)), (e: unknown) => isPatchError(e) && e.reason === 'output-past-image-size');
      assert.throws(() => applier.push(bytes(0)), (e: unknown) => isPatchError(e) && e.reason === 'output-past-image-size');
      assert.throws(() => applier.finish(), (e: unknown) => isPatchError(e) && e.reason === 'output-past-image-size');
    });
  });

  describe('generator', () => {
    it('round trips edge cases: empty target, empty base, identical, unrelated, repetitive data', () => {
      const rng = new Prng(5);
      const random = (n: number) => rng.fill(Buffer.alloc(n));
      const a = random(5000);
      const cases: Array<[Buffer, Buffer]> = [
        [a, Buffer.alloc(0)],
        [Buffer.alloc(0), a],
        [a, a],
        [a, random(3000)],
        [Buffer.alloc(4000), Buffer.alloc(6000)],
        [Buffer.alloc(4000, 0x55), Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(3000, 0x55)])],
        [a, Buffer.concat([a.subarray(2500), random(17), a.subarray(0, 2500)])],
      ];
      for (const [from, to] of cases) assert.ok(applyPatch(from, createPatch(from, to), to.length).equals(to));
      // An unchanged image costs a few bytes.
      assert.ok(deflateSync(createPatch(a, a)).length < 40);
    });

    it('round trips random edits of random data, byte-identical', () => {
      const rng = new Prng(6);
      for (let t = 0; t < 60; t++) {
        const from = rng.fill(Buffer.alloc(rng.below(3000)));
        const parts = [from.subarray(0, rng.below(from.length + 1)), rng.fill(Buffer.alloc(rng.below(40))), from.subarray(rng.below(from.length + 1))];
        const to = Buffer.concat(parts);
        for (let m = 0; m < 4 && to.length > 0; m++) to[rng.below(to.length)] ^= 1 + rng.below(255);
        assert.ok(applyPatch(from, createPatch(from, to), to.length).equals(to), `case ${t}`);
      }
    });

    it('finds whole runs as one match: long zero runs shifted by a few bytes cost a few bytes', () => {
      const zeros = Buffer.alloc(256 * 1024);
      const runs = Buffer.from(zeros).fill(0xff, 100_000, 100_500);
      const cases: Array<[Buffer, Buffer]> = [
        [zeros, Buffer.alloc(zeros.length + 16)],
        [runs, Buffer.concat([Buffer.alloc(16), runs, Buffer.alloc(16, 0xff)])],
      ];
      for (const [from, to] of cases) {
        // Comparing only the common length (as bsdiff's search does) steers to the shortest suffixes in a
        // run: 2-byte matches, one search per byte, each as long as the run (minutes at this size).
        const patch = createPatch(from, to);
        assert.ok(applyPatch(from, patch, to.length).equals(to));
        assert.ok(deflateSync(patch).length < 1500, `deflated patch ${deflateSync(patch).length} B`);
      }
    });

    it('writes seek 0 in the last record', () => {
      const rng = new Prng(8);
      const from = rng.fill(Buffer.alloc(2000));
      const to = Buffer.concat([from.subarray(1000), from.subarray(0, 1000)]);
      const patch = createPatch(from, to);
      assert.equal(patch[patch.length - 1], 0);
    });
  });

  describe('synthetic pair (a small code change)', function () {
    this.timeout(60000);
    const pair = buildSyntheticPair({ size: 256 * 1024 });

    it('both versions are valid images that differ in length, version and contents', () => {
      const a = validateAppImage(pair.base);
      const b = validateAppImage(pair.image);
      assert.equal(a.appDesc?.version, '2.0.0');
      assert.equal(b.appDesc?.version, '2.0.1');
      assert.notEqual(pair.base.length, pair.image.length);
      assert.equal(a.segments.length, b.segments.length);
    });

    it('the delta transfer reproduces the new image and is at least 10x smaller than the deflated image', () => {
      const delta = makeDeltaTransfer(pair.base, pair.image);
      assert.ok(inflateSync(delta.transfer).equals(delta.patch));
      assert.ok(applyPatch(pair.base, delta.patch, pair.image.length).equals(pair.image));
      assert.ok(delta.baseSha256.equals(appHash(pair.base)));
      assert.equal(delta.baseLength, pair.base.length);
      const deflated = deflateSync(pair.image, { level: 9 }).length;
      assert.ok(delta.transfer.length * 10 < deflated, `patch ${delta.transfer.length} B vs deflated image ${deflated} B`);
      assert.equal(chooseEncoding({ deflatedSize: deflated, patchSize: delta.transfer.length }), 'delta');
    });

    it('decodes the same whatever the pieces the inflater hands out', () => {
      const patch = createPatch(pair.base, pair.image);
      for (const sizes of [[1], [2, 3, 5, 7, 11, 13], [4096], [patch.length - 1, 1], [61, 1, 1, 977]]) {
        const out = applyInPieces(pair.base, patch, pair.image.length, sizes);
        assert.ok(Buffer.isBuffer(out) && out.equals(pair.image), `pieces ${sizes.join(',')}`);
      }
    });

    it('streams through zlib as the device does: small inflater outputs fed to the applier give the image', async () => {
      const delta = makeDeltaTransfer(pair.base, pair.image);
      const applier = new PatchApplier(pair.base, pair.image.length);
      const inflater = createInflate({ chunkSize: 64 });
      const out: Buffer[] = [];
      inflater.on('data', (piece: Buffer) => out.push(applier.push(piece)));
      const ended = new Promise((resolve, reject) => inflater.on('end', resolve).on('error', reject));
      for (let at = 0; at < delta.transfer.length; at += 100) inflater.write(delta.transfer.subarray(at, at + 100));
      inflater.end();
      await ended;
      applier.finish();
      assert.ok(Buffer.concat(out).equals(pair.image));
    });

    it('the patch read against a shorter base fails with read-outside-base, not a wrong image', () => {
      const patch = createPatch(pair.base, pair.image);
      expectProblem(pair.base.subarray(0, pair.base.length - 64), patch, pair.image.length, 'read-outside-base');
      expectProblem(pair.base, patch, pair.image.length - 1, 'output-past-image-size');
    });
  });

  describe('makeDeltaTransfer bases', () => {
    it('diffs against the image as ESP-IDF measures it: bytes after it (a signature block) are not read', () => {
      const baseImage = buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 16 * 1024, seed: 3 });
      const signed = Buffer.concat([baseImage, Buffer.alloc(68, 0xa5)]); // a Secure Boot V1 block's size
      assert.equal(parseImage(signed).imageLength, baseImage.length);
      const next = buildAppImage({ chip: 'esp32c3', version: '1.0.1', size: 16 * 1024, seed: 3 });
      const delta = makeDeltaTransfer(signed, next);
      assert.equal(delta.baseLength, baseImage.length);
      assert.ok(delta.baseSha256.equals(baseImage.subarray(baseImage.length - 32)), 'running_sha256 = the appended hash');
      assert.ok(applyPatch(baseImageBytes(signed), delta.patch, next.length).equals(next));
    });

    it('refuses a base that is no valid app image with the image error', () => {
      const image = buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 16 * 1024 });
      assert.throws(() => makeDeltaTransfer(image.subarray(0, 100), image), { code: 'TRUNCATED_IMAGE' });
      assert.throws(() => makeDeltaTransfer(Buffer.from('<html>'), image), { code: 'NOT_ESP_IMAGE' });
    });
  });

  it('chooseEncoding: delta only below 0.9 x the deflated image, full deflate without a patch', () => {
    assert.equal(chooseEncoding({ deflatedSize: 1000, patchSize: 899 }), 'delta');
    assert.equal(chooseEncoding({ deflatedSize: 1000, patchSize: 900 }), 'deflate');
    assert.equal(chooseEncoding({ deflatedSize: 1000, patchSize: 5000 }), 'deflate');
    assert.equal(chooseEncoding({ deflatedSize: 1000, patchSize: null }), 'deflate');
    assert.equal(chooseEncoding({ deflatedSize: 1000 }), 'deflate');
  });

  describe('real images (../shared/vectors)', function () {
    this.timeout(60000);
    // The vectors hold no two builds of one app with one toolchain: the closest pair is the ESP32
    // hello_world of IDF v3.3 and of v5.1.2, which share almost nothing: the delta saves under 10% there,
    // as across chips, and the full image is chosen.
    const pairs: Array<[string, string]> = [
      ['esp32-hello_world-signed_v1.bin', 'esp32-hello_world.bin'],
      ['esp32-hello_world.bin', 'esp32-hello_world-signed_v1.bin'],
      ['esp32c3-hello_world.bin', 'esp32s3-hello_world.bin'],
    ];
    for (const [from, to] of pairs) {
      it(`${from} -> ${to}: byte-identical; an unrelated base falls back to full deflate`, () => {
        const base = fs.readFileSync(vectorPath(from));
        const image = fs.readFileSync(vectorPath(to));
        const delta = makeDeltaTransfer(base, image);
        assert.ok(applyPatch(baseImageBytes(base), inflateSync(delta.transfer), image.length).equals(image));
        const deflated = deflateSync(image, { level: 9 }).length;
        assert.equal(chooseEncoding({ deflatedSize: deflated, patchSize: delta.transfer.length }), 'deflate', `patch ${delta.transfer.length} B vs ${deflated} B`);
      });
    }
  });
});

describe('delta: generation in a worker thread', function () {
  this.timeout(20000);

  it('gives the bytes of makeDeltaTransfer, and the typed image error of a bad base', async () => {
    const a = buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 32 * 1024, seed: 4 });
    const b = buildAppImage({ chip: 'esp32c3', version: '1.0.1', size: 32 * 1024, seed: 4 });
    const inWorker = await makeDeltaTransferInWorker(a, b);
    const here = makeDeltaTransfer(a, b);
    assert.ok(inWorker.transfer.equals(here.transfer) && inWorker.patch.equals(here.patch) && inWorker.baseSha256.equals(here.baseSha256));
    assert.equal(inWorker.baseLength, here.baseLength);
    await assert.rejects(makeDeltaTransferInWorker(Buffer.from('<html>'), b), { name: 'OtaError', code: 'NOT_ESP_IMAGE' });
  });
});
