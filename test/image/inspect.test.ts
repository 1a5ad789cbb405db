import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { IMAGE_ERROR_CODES, inspectImage } from '../../lib/image';
import { readVector } from './helpers';
import { repoRoot, vectorsDir } from '../helpers/paths';

describe('image: inspect JSON (CLI contract, issue 3 point 6)', () => {
  it('has every contract field for a valid image, with values from the file', () => {
    const expected = JSON.parse(fs.readFileSync(path.join(vectorsDir(), 'expected.json'), 'utf8'))['esp32s3-hello_world.bin'];
    const r = JSON.parse(JSON.stringify(inspectImage(readVector('esp32s3-hello_world.bin'))));
    assert.strictEqual(r.valid, true);
    assert.strictEqual(r.chip, expected.chip);
    assert.strictEqual(r.chipId, expected.chip_id);
    assert.strictEqual(r.segmentCount, expected.segment_count);
    assert.strictEqual(r.imageLength, expected.image_length);
    assert.strictEqual(r.hashAppended, expected.hash_appended);
    assert.strictEqual(r.checksumOk, expected.checksum_ok);
    assert.strictEqual(r.sha256Ok, expected.sha256_ok);
    assert.strictEqual(r.trailingBytes, expected.trailing_bytes);
    assert.strictEqual(r.entryAddr, expected.entry_addr);
    assert.strictEqual(r.minChipRevFull, expected.min_chip_rev_full);
    assert.strictEqual(r.maxChipRevFull, expected.max_chip_rev_full);
    assert.strictEqual(r.fileSha256, expected.file_sha256);
    assert.deepStrictEqual(r.appDesc, {
      version: expected.app_desc.version,
      projectName: expected.app_desc.project_name,
      idfVer: expected.app_desc.idf_ver,
      secureVersion: expected.app_desc.secure_version,
      date: expected.app_desc.date,
      time: expected.app_desc.time,
      elfSha256: expected.app_desc.app_elf_sha256,
    });
    assert.strictEqual(r.signature, null);
    assert.strictEqual(r.error, undefined);
    const buf = readVector('esp32s3-hello_world.bin');
    assert.strictEqual(r.appSha256, buf.subarray(buf.length - 32).toString('hex'));
  });

  it('gives the signature kind of a signed image', () => {
    const r = inspectImage(readVector('esp32-hello_world-signed_v1.bin'));
    assert.strictEqual(r.valid, true);
    assert.strictEqual(r.signature?.kind, 'secure-boot-v1');
  });

  it('reports invalid input as valid:false with error {code, message}, never throwing', () => {
    const cases: Array<[unknown, string]> = [
      [undefined, 'NOT_A_BUFFER'],
      [Buffer.alloc(0), 'EMPTY_IMAGE'],
      [Buffer.from('hello'), 'NOT_ESP_IMAGE'],
      [readVector('bad-sha256-mismatch.bin'), 'BAD_SHA256'],
      [readVector('bad-esp32c3-bootloader.bin'), 'BOOTLOADER_IMAGE'],
    ];
    for (const [input, code] of cases) {
      const r = inspectImage(input as Buffer);
      assert.strictEqual(r.valid, false);
      assert.strictEqual(r.error?.code, code);
      assert.ok((r.error?.message ?? '').length > 20);
    }
    const boot = inspectImage(readVector('bad-esp32c3-bootloader.bin'));
    assert.strictEqual(boot.chip, 'esp32c3', 'what could be read is still reported');
    assert.strictEqual(boot.appDesc, null);
  });

  it('every error code is documented in docs/ERRORS.md', () => {
    const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'ERRORS.md'), 'utf8');
    for (const code of IMAGE_ERROR_CODES) assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/ERRORS.md`);
  });
});
