import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inflateSync } from 'zlib';
import { applyPatch } from '../../lib/delta/apply';
import { ImageStore } from '../../lib/delta/image-store';
import { appHash, buildAppImage } from '../../lib/image';

const image = (version: string, seed = 1) => buildAppImage({ chip: 'esp32c3', version, size: 32 * 1024, seed });

describe('delta: base image store', function () {
  this.timeout(20000);
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-store-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keys images by running_sha256 (the appended hash of a hash_appended image) and finds them by Buffer or hex', () => {
    const store = new ImageStore(dir);
    const a = image('1.0.0');
    const stored = store.add(a);
    const appended = a.subarray(a.length - 32);
    assert.equal(stored.sha256, appended.toString('hex'));
    assert.equal(stored.length, a.length);
    assert.equal(path.basename(stored.file), `${stored.sha256}.bin`);
    assert.ok(store.get(appended)?.equals(a));
    assert.ok(store.get(stored.sha256.toUpperCase())?.equals(a));
    assert.equal(store.get(Buffer.alloc(32)), null);
  });

  it('adds from a file path; keeps only the image as ESP-IDF measures it (no signature block after it)', () => {
    const a = image('1.0.0');
    const file = path.join(dir, '..', `${path.basename(dir)}-signed.bin`);
    fs.writeFileSync(file, Buffer.concat([a, Buffer.alloc(68, 0x5a)]));
    try {
      const store = new ImageStore(dir);
      const stored = store.add(file);
      assert.equal(stored.length, a.length);
      assert.ok(store.get(stored.sha256)?.equals(a));
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('finds images dropped into the directory under any name; other files are ignored', () => {
    const store = new ImageStore(dir);
    assert.deepEqual(store.list(), []);
    const a = image('1.0.0');
    fs.writeFileSync(path.join(dir, 'release-1.0.0.bin'), a);
    fs.writeFileSync(path.join(dir, 'notes.bin'), 'not an image');
    fs.writeFileSync(path.join(dir, 'readme.txt'), 'hello');
    const listed = store.list();
    assert.equal(listed.length, 1);
    assert.equal(listed[0].sha256, appHash(a).toString('hex'));
    // A file replaced under the same name is hashed again.
    const b = image('1.0.1', 2);
    fs.writeFileSync(path.join(dir, 'release-1.0.0.bin'), b);
    fs.utimesSync(path.join(dir, 'release-1.0.0.bin'), new Date(), new Date(Date.now() + 5000));
    assert.equal(store.get(appHash(a)), null);
    assert.ok(store.get(appHash(b))?.equals(b));
  });

  it('refuses invalid images and malformed digests with typed errors', () => {
    const store = new ImageStore(dir);
    assert.throws(() => store.add(Buffer.from('<html>')), { code: 'NOT_ESP_IMAGE' });
    assert.throws(() => store.add(path.join(dir, 'missing.bin')), { code: 'FILE_NOT_FOUND' });
    assert.throws(() => store.get('abc'), { code: 'BAD_PARAMETER' });
    assert.throws(() => store.get(Buffer.alloc(31)), { code: 'BAD_PARAMETER' });
    assert.throws(() => new ImageStore(dir, { patchCacheBytes: -1 }), { code: 'BAD_OPTION' });
  });

  it('makes a delta from a stored base, caches it by (base, new image), and answers null for an unknown base', () => {
    const store = new ImageStore(dir);
    const a = image('1.0.0');
    const b = image('1.0.1');
    const { sha256 } = store.add(a);
    assert.equal(store.delta(Buffer.alloc(32, 1), b), null);
    const first = store.delta(sha256, b);
    assert.ok(first);
    assert.equal(first.baseSha256, sha256);
    assert.equal(first.baseLength, a.length);
    assert.ok(applyPatch(a, inflateSync(first.transfer), b.length).equals(b));
    assert.equal(store.patchCacheUsed, first.transfer.length);
    // Served from the cache even when the base has left the directory meanwhile.
    fs.rmSync(path.join(dir, `${sha256}.bin`));
    assert.equal(store.delta(sha256, b), first);
    assert.equal(store.get(sha256), null);
  });

  it('generates in a worker thread the same delta, once for concurrent requests of one pair', async () => {
    const store = new ImageStore(dir);
    const a = image('1.0.0');
    const b = image('1.0.1');
    const { sha256 } = store.add(a);
    const [first, second] = await Promise.all([store.deltaInWorker(sha256, b), store.deltaInWorker(sha256, b)]);
    assert.ok(first && first === second, 'one generation shared');
    assert.ok(first.transfer.equals(new ImageStore(dir).delta(sha256, b)!.transfer), 'same bytes as the synchronous generator');
    assert.equal(store.delta(sha256, b), first, 'cached');
    assert.equal(await store.deltaInWorker(Buffer.alloc(32, 2), b), null);
  });

  it('keeps the cache under its byte cap, dropping the least recently used patch first', () => {
    const a = image('1.0.0');
    const targets = ['1.0.1', '1.0.2', '1.0.3'].map((v, i) => image(v, 10 + i));
    const probe = new ImageStore(dir);
    const { sha256 } = probe.add(a);
    const sizes = targets.map((t) => probe.delta(sha256, t)!.transfer.length);
    // Room for the two largest, not for all three.
    const cap = sizes.reduce((x, y) => x + y) - Math.min(...sizes);
    const store = new ImageStore(dir, { patchCacheBytes: cap });
    const d0 = store.delta(sha256, targets[0]);
    const d1 = store.delta(sha256, targets[1]);
    assert.equal(store.delta(sha256, targets[0]), d0); // a hit makes targets[0] the most recent
    store.delta(sha256, targets[2]); // over the cap: targets[1], the least recently used, goes
    assert.ok(store.patchCacheUsed <= cap);
    assert.equal(store.delta(sha256, targets[0]), d0);
    assert.notEqual(store.delta(sha256, targets[1]), d1, 'the least recently used entry was dropped');

    const uncached = new ImageStore(dir, { patchCacheBytes: 0 });
    const x = uncached.delta(sha256, targets[0]);
    assert.notEqual(uncached.delta(sha256, targets[0]), x);
    assert.equal(uncached.patchCacheUsed, 0);
  });
});
