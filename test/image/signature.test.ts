import * as assert from 'assert';
import { createHash } from 'crypto';
import { buildAppImage, parseImage, validateAppImage } from '../../lib/image';
import { crc32 } from '../../lib/image/digest';
import { expectOtaError } from './helpers';

/** A Secure Boot V2 sector: blocks of 1216 bytes (magic 0xE7, version, digest, filler key/signature, CRC32), rest 0xFF. */
function signV2(image: Buffer, versions: number[]): Buffer {
  const padded = Buffer.concat([image, Buffer.alloc((4096 - (image.length % 4096)) % 4096, 0xff)]);
  const digest = createHash('sha256').update(padded).digest();
  const sector = Buffer.alloc(4096, 0xff);
  versions.forEach((version, i) => {
    const block = Buffer.alloc(1216);
    block[0] = 0xe7;
    block[1] = version;
    digest.copy(block, 4);
    for (let j = 36; j < 1196; j++) block[j] = (j * 31 + i) & 0xff;
    block.writeUInt32LE(crc32(block.subarray(0, 1196)), 1196);
    block.copy(sector, i * 1216);
  });
  return Buffer.concat([padded, sector]);
}

describe('image: signature blocks', () => {
  const image = buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 50_000 });

  it('crc32 is the standard CRC-32 (check value of "123456789" is 0xcbf43926)', () => {
    assert.strictEqual(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.strictEqual(crc32(Buffer.alloc(0)), 0);
  });

  it('recognises a Secure Boot V2 RSA sector with three blocks', () => {
    const signed = signV2(image, [2, 2, 2]);
    const p = validateAppImage(signed);
    assert.deepStrictEqual(p.signature, { kind: 'secure-boot-v2-rsa', offset: Math.ceil(image.length / 4096) * 4096, count: 3, crcOk: true, digestOk: true });
    assert.strictEqual(p.trailingBytes, signed.length - image.length);
    assert.deepStrictEqual(p.warnings, []);
  });

  it('recognises a Secure Boot V2 ECDSA sector with one block', () => {
    const p = validateAppImage(signV2(image, [3]));
    assert.strictEqual(p.signature?.kind, 'secure-boot-v2-ecdsa');
    assert.strictEqual(p.signature?.count, 1);
  });

  it('reports a damaged V2 block as BAD_SIGNATURE_BLOCK', () => {
    const signed = signV2(image, [2, 2]);
    const sector = Math.ceil(image.length / 4096) * 4096;
    signed[sector + 1216 + 500] ^= 0xff;
    const p = parseImage(signed);
    assert.strictEqual(p.signature?.crcOk, false);
    const err = expectOtaError(() => validateAppImage(signed), 'BAD_SIGNATURE_BLOCK');
    assert.match(err.message, new RegExp(`0x${sector.toString(16)}`));
  });

  it('notices a V2 digest that does not belong to this image', () => {
    const other = buildAppImage({ chip: 'esp32c3', version: '1.0.1', size: 50_000 });
    const signedOther = signV2(other, [2]);
    const mixed = Buffer.concat([signV2(image, [2]).subarray(0, signedOther.length - 4096), signedOther.subarray(signedOther.length - 4096)]);
    assert.strictEqual(parseImage(mixed).signature?.digestOk, false);
  });

  it('recognises a V1 block after the image and ignores zero padding', () => {
    const block = Buffer.alloc(68);
    for (let i = 4; i < 68; i++) block[i] = (i * 7) & 0xff;
    const p = validateAppImage(Buffer.concat([image, block, Buffer.alloc(12)]));
    assert.deepStrictEqual(p.signature, { kind: 'secure-boot-v1', offset: image.length, count: 1, crcOk: null, digestOk: null });
    const zeros = parseImage(Buffer.concat([image, Buffer.alloc(100)]));
    assert.strictEqual(zeros.signature, null);
    assert.strictEqual(zeros.trailingBytes, 100);
    assert.match(zeros.warnings[0], /100 bytes follow the image/);
  });
});
