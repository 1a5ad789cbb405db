import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { appHash, fileSha256, parseImage, validateAppImage } from '../../lib/image';
import { expectOtaError } from './helpers';
import { SHARED_VECTORS_DIR, hasVectors, skipWithoutVectors } from '../helpers/paths';

interface ExpectedImage {
  file_sha256: string;
  chip: string;
  chip_id: number;
  segment_count: number;
  entry_addr: string;
  hash_appended: boolean;
  checksum_ok: boolean;
  sha256_ok: boolean;
  image_length: number;
  trailing_bytes: number;
  min_chip_rev_full: number;
  max_chip_rev_full: number;
  app_desc: null | {
    secure_version: number;
    version: string;
    project_name: string;
    time: string;
    date: string;
    idf_ver: string;
    app_elf_sha256: string;
  };
}

/** Why each bad vector must be refused (from SOURCES.md). */
const REJECTION_CODES: Record<string, string> = {
  'bad-sha256-mismatch.bin': 'BAD_SHA256',
  'bad-esp32c3-bootloader.bin': 'BOOTLOADER_IMAGE',
};

describe('image: shared real ESP-IDF vectors', () => {
  const dir = SHARED_VECTORS_DIR;
  const present = hasVectors();
  const expected = present ? (JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Record<string, ExpectedImage>) : {};
  const sources = present ? fs.readFileSync(path.join(dir, 'SOURCES.md'), 'utf8') : '';
  const files = present ? fs.readdirSync(dir).filter((f) => f !== 'expected.json' && f !== 'SOURCES.md').sort() : [];

  it('has an expectation and a source for every file, and a file for every expectation', function () {
    skipWithoutVectors(this);
    assert.ok(files.length >= 7, `only ${files.length} vector files in ${dir}`);
    assert.deepStrictEqual(files, Object.keys(expected).sort());
    for (const f of files) assert.ok(sources.includes(f), `${f} is not described in SOURCES.md`);
  });

  for (const file of files) {
    describe(file, () => {
      const buf = fs.readFileSync(path.join(dir, file));
      const exp = expected[file];
      const parsed = parseImage(buf);

      it('matches expected.json field by field', () => {
        assert.ok(parsed.header, `header not parsed: ${JSON.stringify(parsed.problems)}`);
        assert.strictEqual(fileSha256(buf).toString('hex'), exp.file_sha256, 'file_sha256');
        assert.strictEqual(parsed.chip, exp.chip, 'chip');
        assert.strictEqual(parsed.chipId, exp.chip_id, 'chip_id');
        assert.strictEqual(parsed.header.segmentCount, exp.segment_count, 'segment_count');
        assert.strictEqual(parsed.segments.length, exp.segment_count, 'segments read');
        assert.strictEqual(parsed.header.entryAddr, parseInt(exp.entry_addr, 16), 'entry_addr');
        assert.strictEqual(parsed.hashAppended, exp.hash_appended, 'hash_appended');
        assert.strictEqual(parsed.checksumOk, exp.checksum_ok, 'checksum_ok');
        assert.strictEqual(parsed.sha256Ok, exp.sha256_ok, 'sha256_ok');
        assert.strictEqual(parsed.imageLength, exp.image_length, 'image_length');
        assert.strictEqual(parsed.trailingBytes, exp.trailing_bytes, 'trailing_bytes');
        assert.strictEqual(parsed.header.minChipRevFull, exp.min_chip_rev_full, 'min_chip_rev_full');
        assert.strictEqual(parsed.header.maxChipRevFull, exp.max_chip_rev_full, 'max_chip_rev_full');
      });

      it('has the expected app description', () => {
        if (exp.app_desc === null) {
          assert.strictEqual(parsed.appDesc, null);
          return;
        }
        assert.ok(parsed.appDesc, 'app description missing');
        assert.strictEqual(parsed.appDesc.secureVersion, exp.app_desc.secure_version, 'secure_version');
        assert.strictEqual(parsed.appDesc.version, exp.app_desc.version, 'version');
        assert.strictEqual(parsed.appDesc.projectName, exp.app_desc.project_name, 'project_name');
        assert.strictEqual(parsed.appDesc.time, exp.app_desc.time, 'time');
        assert.strictEqual(parsed.appDesc.date, exp.app_desc.date, 'date');
        assert.strictEqual(parsed.appDesc.idfVer, exp.app_desc.idf_ver, 'idf_ver');
        assert.strictEqual(parsed.appDesc.appElfSha256, exp.app_desc.app_elf_sha256, 'app_elf_sha256');
      });

      it('segments lie inside the file, in order, with lengths a multiple of 4', () => {
        let end = 24;
        for (const s of parsed.segments) {
          assert.strictEqual(s.headerOffset, end);
          assert.strictEqual(s.dataOffset, end + 8);
          assert.strictEqual(s.length % 4, 0);
          assert.strictEqual(buf.readUInt32LE(s.headerOffset), s.loadAddr);
          end = s.dataOffset + s.length;
        }
        assert.ok(end <= buf.length);
      });

      if (file.startsWith('bad-')) {
        it(`is refused with ${REJECTION_CODES[file]}`, () => {
          assert.ok(REJECTION_CODES[file], `no rejection code declared for ${file}`);
          const err = expectOtaError(() => validateAppImage(buf), REJECTION_CODES[file]);
          assert.ok(err.message.length > 30 && err.message.endsWith('.'), `message is not a sentence: ${err.message}`);
          assert.strictEqual(parsed.valid, false);
        });
      } else {
        it('is a valid OTA application image', () => {
          const v = validateAppImage(buf);
          assert.strictEqual(v.valid, true);
          assert.deepStrictEqual(v.problems, []);
        });

        it('appHash equals the SHA-256 appended to the image', () => {
          const appended = buf.subarray(exp.image_length - 32, exp.image_length);
          assert.deepStrictEqual(appHash(buf), appended);
        });
      }

      if (file.includes('signed_v1')) {
        it('carries a Secure Boot V1 signature block right after the image', () => {
          assert.ok(parsed.signature);
          assert.strictEqual(parsed.signature.kind, 'secure-boot-v1');
          assert.strictEqual(parsed.signature.offset, exp.image_length);
          assert.strictEqual(parsed.signature.count, 1);
          assert.deepStrictEqual(parsed.warnings, []);
        });
      } else {
        it('has no signature block', () => assert.strictEqual(parsed.signature, null));
      }
    });
  }
});
