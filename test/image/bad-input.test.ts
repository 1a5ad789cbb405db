import * as assert from 'assert';
import { OtaError } from '../../lib/errors';
import { buildAppImage, IMAGE_ERROR_CODES, parseImage, validateAppImage } from '../../lib/image';
import { expectOtaError, readVector, reseal } from './helpers';
import { skipWithoutVectors } from '../helpers/paths';

/** A small xorshift so the "random bytes" cases are reproducible. */
function randomBuffer(seed: number, size: number): Buffer {
  let x = seed || 1;
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function isSentence(message: string): boolean {
  return /^[A-Z]/.test(message) && message.endsWith('.') && message.length > 30;
}

describe('image: bad input', () => {
  // Edits of a real ESP-IDF image: without ../shared/vectors the suite is skipped with its reason.
  let app: Buffer = Buffer.alloc(0);
  before(function () {
    skipWithoutVectors(this);
    app = readVector('esp32-hello_world.bin');
  });
  let parsedApp = {} as ReturnType<typeof parseImage>;
  before(() => {
    if (app.length) parsedApp = parseImage(app);
  });

  it('refuses anything that is not a Buffer with NOT_A_BUFFER, naming what was given', () => {
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /undefined/], [null, /null/], ['firmware.bin', /string/], [42, /number/],
      [{ data: [1, 2] }, /object/], [[0xe9, 1, 2], /array/], [new Uint8Array(app), /Uint8Array/],
    ];
    for (const [value, named] of cases) {
      const err = expectOtaError(() => validateAppImage(value as Buffer), 'NOT_A_BUFFER');
      assert.match(err.message, named);
      assert.ok(isSentence(err.message), err.message);
      assert.strictEqual(parseImage(value).valid, false, 'parseImage reports instead of throwing');
    }
  });

  it('refuses an empty file with EMPTY_IMAGE', () => {
    expectOtaError(() => validateAppImage(Buffer.alloc(0)), 'EMPTY_IMAGE');
  });

  it('refuses the image truncated at every structural point with TRUNCATED_IMAGE naming the length', () => {
    const [first, second] = parsedApp.segments;
    const cuts = [
      1, 10, 23, // inside the header
      24, 28, // inside the first segment header
      first.dataOffset + 100, // inside the DROM segment (the app description is intact)
      second.headerOffset + 4, // inside the second segment header
      second.dataOffset + second.length - 4, // inside a later segment
      parsedApp.checksumOffset as number, // right before the checksum byte
      (parsedApp.checksumOffset as number) + 1, // checksum present, hash missing
      app.length - 1, // one byte of the hash missing
    ];
    for (const cut of cuts) {
      const err = expectOtaError(() => validateAppImage(app.subarray(0, cut)), 'TRUNCATED_IMAGE');
      assert.match(err.message, new RegExp(`\\b${cut}\\b`), `message should name the length ${cut}: ${err.message}`);
      assert.ok(isSentence(err.message), err.message);
    }
  });

  it('refuses random bytes with NOT_ESP_IMAGE naming the first byte', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const buf = randomBuffer(seed, 64 + seed * 97);
      if (buf[0] === 0xe9) buf[0] = 0x00;
      const err = expectOtaError(() => validateAppImage(buf), 'NOT_ESP_IMAGE');
      assert.ok(err.message.includes(`0x${buf[0].toString(16).padStart(2, '0')}`), err.message);
    }
  });

  it('refuses random bytes behind a 0xE9 magic with a clear image error, never a crash', () => {
    const structural = new Set(['TRUNCATED_IMAGE', 'BAD_SEGMENT', 'BAD_CHECKSUM', 'BAD_SHA256', 'UNKNOWN_CHIP', 'NO_APP_DESC', 'BOOTLOADER_IMAGE', 'MERGED_FLASH_IMAGE', 'CHIP_REVISION_UNSUPPORTED']);
    const seen = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const buf = randomBuffer(seed * 7919, 24 + (seed % 40) * 53);
      buf[0] = 0xe9;
      if (seed % 3 === 0) buf[1] = 1 + (seed % 16); // plausible segment counts too
      try {
        validateAppImage(buf);
        assert.fail(`random bytes (seed ${seed}) accepted`);
      } catch (err) {
        assert.ok(err instanceof OtaError, `seed ${seed}: ${String(err)}`);
        assert.ok(structural.has(err.code), `seed ${seed}: unexpected ${err.code}`);
        assert.ok(isSentence(err.message), err.message);
        seen.add(err.code);
      }
    }
    assert.ok(seen.has('BAD_SEGMENT') && seen.has('TRUNCATED_IMAGE'), [...seen].join());
  });

  it('says what a foreign file is when it can tell', () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]), Buffer.alloc(100)]);
    assert.match(expectOtaError(() => validateAppImage(elf), 'NOT_ESP_IMAGE').message, /ELF/);
    const html = Buffer.from('<!DOCTYPE html><html><body>404 Not Found</body></html>');
    assert.match(expectOtaError(() => validateAppImage(html), 'NOT_ESP_IMAGE').message, /web page/);
    assert.match(expectOtaError(() => validateAppImage(Buffer.alloc(8192, 0xff)), 'NOT_ESP_IMAGE').message, /erased flash/);
  });

  it('detects a flipped byte in segment data as BAD_CHECKSUM with both values', () => {
    for (const s of parsedApp.segments) {
      const buf = Buffer.from(app);
      buf[s.dataOffset + Math.floor(s.length / 2)] ^= 0x10;
      const err = expectOtaError(() => validateAppImage(buf), 'BAD_CHECKSUM');
      const stored = `0x${(parsedApp.checksumStored as number).toString(16).padStart(2, '0')}`;
      const computed = `0x${((parsedApp.checksumStored as number) ^ 0x10).toString(16).padStart(2, '0')}`;
      assert.ok(err.message.includes(stored) && err.message.includes(computed), err.message);
    }
  });

  it('detects a flipped byte outside the checksummed data as BAD_SHA256', () => {
    for (const offset of [4 /* entry address */, parsedApp.segments[1].headerOffset /* load address */, app.length - 5 /* the hash itself */]) {
      const buf = Buffer.from(app);
      buf[offset] ^= 0x01;
      const parsed = parseImage(buf);
      assert.strictEqual(parsed.checksumOk, true);
      assert.strictEqual(parsed.sha256Ok, false);
      expectOtaError(() => validateAppImage(buf), 'BAD_SHA256');
    }
  });

  it('refuses impossible segments with BAD_SEGMENT', () => {
    const zeroSegments = Buffer.from(app);
    zeroSegments[1] = 0;
    assert.match(expectOtaError(() => validateAppImage(zeroSegments), 'BAD_SEGMENT').message, /0 segments/);
    const tooMany = Buffer.from(app);
    tooMany[1] = 17;
    assert.match(expectOtaError(() => validateAppImage(tooMany), 'BAD_SEGMENT').message, /17 segments/);
    const oddLength = Buffer.from(app);
    oddLength.writeUInt32LE(parsedApp.segments[0].length + 2, 28);
    assert.match(expectOtaError(() => validateAppImage(oddLength), 'BAD_SEGMENT').message, /multiple of 4/);
    const huge = Buffer.from(app);
    huge.writeUInt32LE(0x7ffffff0, parsedApp.segments[2].headerOffset + 4);
    assert.match(expectOtaError(() => validateAppImage(huge), 'BAD_SEGMENT').message, /segment 3/i);
  });

  it('refuses an unknown chip id with UNKNOWN_CHIP naming the id', () => {
    const buf = Buffer.from(app);
    buf.writeUInt16LE(23, 12);
    const err = expectOtaError(() => validateAppImage(reseal(buf)), 'UNKNOWN_CHIP');
    assert.match(err.message, /chip id 23/);
  });

  it('refuses an app without esp_app_desc_t with NO_APP_DESC', () => {
    const img = buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 32 * 1024 });
    img.writeUInt32LE(0x12345678, 32);
    const err = expectOtaError(() => validateAppImage(reseal(img)), 'NO_APP_DESC');
    assert.match(err.message, /78 56 34 12/);
  });

  it('refuses the C3 bootloader with BOOTLOADER_IMAGE', () => {
    expectOtaError(() => validateAppImage(readVector('bad-esp32c3-bootloader.bin')), 'BOOTLOADER_IMAGE');
  });

  describe('merged flash images', () => {
    let bootloader: Buffer = Buffer.alloc(0);
    let c3App: Buffer = Buffer.alloc(0);
    before(function () {
      skipWithoutVectors(this);
      bootloader = readVector('bad-esp32c3-bootloader.bin');
      c3App = readVector('esp32c3-hello_world.bin');
    });

    function partitionEntry(type: number, subtype: number, offset: number, size: number, label: string): Buffer {
      const e = Buffer.alloc(32);
      e[0] = 0xaa; e[1] = 0x50; e[2] = type; e[3] = subtype;
      e.writeUInt32LE(offset, 4);
      e.writeUInt32LE(size, 8);
      e.write(label, 12, 16, 'latin1');
      return e;
    }

    function merged(base: number, appFlashOffset: number, withTable: boolean): Buffer {
      const file = Buffer.alloc(appFlashOffset - base + c3App.length, 0xff);
      bootloader.copy(file, 0);
      if (withTable) {
        Buffer.concat([
          partitionEntry(1, 2, 0x9000, 0x6000, 'nvs'),
          partitionEntry(1, 1, 0xf000, 0x1000, 'phy_init'),
          partitionEntry(0, 0, appFlashOffset, 0x100000, 'factory'),
        ]).copy(file, 0x8000 - base);
      }
      c3App.copy(file, appFlashOffset - base);
      return file;
    }

    it('bootloader + partition table + app at 0x10000: MERGED_FLASH_IMAGE naming 0x10000', () => {
      const err = expectOtaError(() => validateAppImage(merged(0, 0x10000, true)), 'MERGED_FLASH_IMAGE');
      assert.match(err.message, /0x10000/);
      assert.strictEqual(err.details?.appOffset, 0x10000);
      assert.strictEqual(err.details?.partitionTableOffset, 0x8000);
    });

    it('finds the app at 0x20000 by scanning when there is no partition table', () => {
      const err = expectOtaError(() => validateAppImage(merged(0, 0x20000, false)), 'MERGED_FLASH_IMAGE');
      assert.match(err.message, /0x20000/);
      assert.strictEqual(err.details?.partitionTableOffset, null);
    });

    it('handles a file that starts at flash offset 0x1000 (ESP32 bootloader address)', () => {
      const err = expectOtaError(() => validateAppImage(merged(0x1000, 0x10000, true)), 'MERGED_FLASH_IMAGE');
      assert.match(err.message, /offset 0xf000 of the file \(flash address 0x10000\)/);
      assert.strictEqual(err.details?.partitionTableOffset, 0x7000);
      assert.strictEqual(err.details?.appFlashAddress, 0x10000);
    });

    it('says so when a merged image holds a partition table but no app', () => {
      const file = merged(0, 0x10000, true).subarray(0, 0x9000);
      const err = expectOtaError(() => validateAppImage(file), 'MERGED_FLASH_IMAGE');
      assert.match(err.message, /contains no application image/);
      assert.strictEqual(err.details?.appOffset, null);
    });

    it('does not mistake an app with trailing bytes for a merged image', () => {
      const padded = Buffer.concat([c3App, Buffer.alloc(0x20000, 0xff), c3App]);
      const parsed = parseImage(padded);
      assert.strictEqual(parsed.merged, null);
      assert.strictEqual(parsed.valid, true);
      assert.strictEqual(parsed.trailingBytes, 0x20000 + c3App.length);
      assert.match(parsed.warnings.join(' '), /not a signature/);
    });
  });

  it('uses only documented codes and sentences for every problem it reports', () => {
    const inputs = [Buffer.alloc(0), Buffer.from([0xe9]), randomBuffer(5, 500), app.subarray(0, 1000), readVector('bad-sha256-mismatch.bin')];
    for (const buf of inputs) {
      for (const p of parseImage(buf).problems) {
        assert.ok((IMAGE_ERROR_CODES as readonly string[]).includes(p.code), p.code);
        assert.ok(isSentence(p.message), p.message);
      }
    }
  });
});
