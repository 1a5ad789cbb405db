import * as assert from 'assert';
import { createHash } from 'crypto';
import * as zlib from 'zlib';
import { appHash, buildAppImage, CHIP_IDS, CHIP_NAMES, validateAppImage } from '../../lib/image';
import { expectOtaError } from './helpers';

describe('image: synthetic app image builder', () => {
  it('builds a valid image for every chip, with its chip id and the app description asked for', () => {
    for (const chip of CHIP_NAMES) {
      const buf = buildAppImage({ chip, version: 'v2.1.0', projectName: 'greenhouse', secureVersion: 3, idfVer: 'v5.2.1', size: 40 * 1024 });
      const img = validateAppImage(buf);
      assert.strictEqual(img.chip, chip);
      assert.strictEqual(buf.readUInt16LE(12), CHIP_IDS[chip]);
      assert.strictEqual(img.appDesc?.version, 'v2.1.0');
      assert.strictEqual(img.appDesc?.projectName, 'greenhouse');
      assert.strictEqual(img.appDesc?.secureVersion, 3);
      assert.strictEqual(img.appDesc?.idfVer, 'v5.2.1');
      assert.match(img.appDesc?.time ?? '', /^\d\d:\d\d:\d\d$/);
      assert.match(img.appDesc?.date ?? '', /^[A-Z][a-z]{2} [ \d]\d \d{4}$/);
      assert.ok(img.segments.length >= 4, `${img.segments.length} segments`);
      assert.strictEqual(img.trailingBytes, 0);
      assert.strictEqual(img.hashAppended, true);
    }
  });

  it('maps flash segments at addresses congruent to their file offset modulo 64 KiB, as the MMU needs', () => {
    const img = validateAppImage(buildAppImage({ chip: 'esp32', version: '1.0.0', size: 300 * 1024 }));
    const mapped = img.segments.filter((s) => s.flashMapped);
    assert.ok(mapped.length >= 2);
    for (const s of mapped) assert.strictEqual((s.loadAddr - s.dataOffset) % 0x10000, 0, `segment ${s.index}`);
    assert.ok(img.segments.some((s) => !s.flashMapped), 'RAM segments too');
  });

  it('is deterministic from its options and seed', () => {
    const a = buildAppImage({ chip: 'esp32s3', version: '1.0.0', size: 100_000 });
    assert.ok(a.equals(buildAppImage({ chip: 'esp32s3', version: '1.0.0', size: 100_000 })));
    assert.ok(!a.equals(buildAppImage({ chip: 'esp32s3', version: '1.0.1', size: 100_000 })), 'version changes content');
    const s1 = buildAppImage({ chip: 'esp32s3', version: '1.0.0', size: 100_000, seed: 1 });
    assert.ok(s1.equals(buildAppImage({ chip: 'esp32s3', version: '1.0.0', size: 100_000, seed: 1 })));
    assert.ok(!s1.equals(buildAppImage({ chip: 'esp32s3', version: '1.0.0', size: 100_000, seed: 2 })));
  });

  it('has the requested size within 16 bytes', () => {
    for (const size of [4096, 10_000, 65_537, 1_500_000]) {
      const len = buildAppImage({ chip: 'esp32c6', version: '1.0.0', size }).length;
      assert.ok(len <= size && size - len < 16, `asked ${size}, got ${len}`);
    }
  });

  it('compresses with deflate to 40-65 % of its size, like real firmware', () => {
    for (const [size, seed] of [[64 * 1024, 1], [256 * 1024, 2], [1_500_000, 3]]) {
      const buf = buildAppImage({ chip: 'esp32', version: '3.0.0', size, seed });
      const ratio = zlib.deflateSync(buf).length / buf.length;
      assert.ok(ratio >= 0.4 && ratio <= 0.65, `size ${size}: ratio ${ratio.toFixed(3)}`);
    }
  });

  it('appHash of a built image equals its appended hash and the SHA-256 through the checksum byte', () => {
    const buf = buildAppImage({ chip: 'esp32h2', version: '0.1.0', size: 20_000 });
    const independent = createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest();
    assert.deepStrictEqual(appHash(buf), independent);
    assert.deepStrictEqual(appHash(buf), buf.subarray(buf.length - 32));
  });

  it('refuses impossible options with BAD_BUILD_OPTIONS', () => {
    expectOtaError(() => buildAppImage({ chip: 'esp8266' as never, version: '1.0.0' }), 'BAD_BUILD_OPTIONS');
    expectOtaError(() => buildAppImage({ chip: 'esp32', version: '' }), 'BAD_BUILD_OPTIONS');
    expectOtaError(() => buildAppImage({ chip: 'esp32', version: 'x'.repeat(32) }), 'BAD_BUILD_OPTIONS');
    expectOtaError(() => buildAppImage({ chip: 'esp32', version: '1.0.0', size: 100 }), 'BAD_BUILD_OPTIONS');
    expectOtaError(() => buildAppImage({ chip: 'esp32', version: '1.0.0', secureVersion: -1 }), 'BAD_BUILD_OPTIONS');
  });
});
