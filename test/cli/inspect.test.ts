import { strict as assert } from 'assert';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CLI, VECTORS, hasVectors, runCli, skipWithoutVectors, vectorPath } from './run-cli';


interface Expected {
  chip: string;
  chip_id: number;
  segment_count: number;
  hash_appended: boolean;
  checksum_ok: boolean;
  sha256_ok: boolean | null;
  image_length: number;
  app_desc: null | { version: string; project_name: string; idf_ver: string; secure_version: number; date: string; time: string };
}


describe('cli inspect', () => {
  const expected = hasVectors() ? (JSON.parse(readFileSync(vectorPath('expected.json'), 'utf8')) as Record<string, Expected>) : {};
  const files = hasVectors() ? readdirSync(VECTORS).filter((f) => f.endsWith('.bin')) : [];

  it('has vectors to check', function () {
    skipWithoutVectors(this);
    assert.ok(existsSync(CLI), 'build the CLI first (npx tsc)');
    assert.ok(files.length >= 5);
  });

  for (const file of files) {
    it(`reports ${file} field by field with the right exit code`, () => {
      const want = expected[file];
      const { code, stdout, stderr } = runCli(['inspect', join(VECTORS, file)]);
      const got = JSON.parse(stdout);
      const shouldBeValid = !file.startsWith('bad-');
      assert.equal(got.valid, shouldBeValid);
      assert.equal(code, shouldBeValid ? 0 : 1);
      if (!shouldBeValid) {
        assert.match(got.error.code, /^[A-Z0-9_]+$/);
        assert.ok(got.error.message.length > 20);
        assert.ok(stderr.includes(got.error.message), 'the message is repeated on stderr');
      } else {
        assert.equal(stderr, '');
      }
      assert.equal(got.chip, want.chip);
      assert.equal(got.chipId, want.chip_id);
      assert.equal(got.segmentCount, want.segment_count);
      assert.equal(got.imageLength, want.image_length);
      assert.equal(got.hashAppended, want.hash_appended);
      assert.equal(got.checksumOk, want.checksum_ok);
      assert.equal(got.sha256Ok, want.sha256_ok);
      if (want.app_desc) {
        assert.equal(got.appDesc.version, want.app_desc.version);
        assert.equal(got.appDesc.projectName, want.app_desc.project_name);
        assert.equal(got.appDesc.idfVer, want.app_desc.idf_ver);
        assert.equal(got.appDesc.secureVersion, want.app_desc.secure_version);
        assert.equal(got.appDesc.date, want.app_desc.date);
        assert.equal(got.appDesc.time, want.app_desc.time);
      }
      assert.equal(got.signature, file.includes('signed_v1') ? 'secure-boot-v1' : null);
    });
  }

  it('gives distinct codes for a bootloader and a damaged image', () => {
    const a = JSON.parse(runCli(['inspect', vectorPath('bad-esp32c3-bootloader.bin')]).stdout);
    const b = JSON.parse(runCli(['inspect', vectorPath('bad-sha256-mismatch.bin')]).stdout);
    assert.equal(a.error.code, 'BOOTLOADER_IMAGE');
    assert.equal(b.error.code, 'BAD_SHA256');
  });

  it('exits 1 with a JSON error for a missing file, an empty file and a non-image', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ota-cli-'));
    writeFileSync(join(dir, 'empty.bin'), Buffer.alloc(0));
    writeFileSync(join(dir, 'text.bin'), 'hello, this is not firmware at all, just some text to parse');
    const codes = ['missing.bin', 'empty.bin', 'text.bin'].map((f) => {
      const r = runCli(['inspect', join(dir, f)]);
      assert.equal(r.code, 1);
      const got = JSON.parse(r.stdout);
      assert.equal(got.valid, false);
      assert.ok(r.stderr.includes(got.error.message));
      return got.error.code;
    });
    assert.deepEqual(codes, ['FILE_NOT_FOUND', 'EMPTY_IMAGE', 'NOT_ESP_IMAGE']);
  });

  it('prints usage and exits 2 for an unknown command', () => {
    const r = runCli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: esp32-ble-ota/);
  });
});
