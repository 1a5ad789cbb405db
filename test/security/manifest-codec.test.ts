/** The manifest codec (lib/security/manifest) against the manifest vectors (Python's ECDSA) and malformed manifests. */
import { strict as assert } from 'assert';
import { createPrivateKey, generateKeyPairSync } from 'crypto';
import type { KeyObject } from 'crypto';
import { publicKeyFromSec1 } from '../../lib/security/keys';
import { decodeManifest, encodeManifestBody, signManifest, verifyManifest, type Manifest } from '../../lib/security/manifest';
import { OtaError } from '../../lib/errors';
import { loadVectors } from '../protocol/vectors';

const file = loadVectors();
const publicPoint = Buffer.from(file.releasePublicKey, 'hex');

function releasePrivateKey() {
  const b64url = (b: Buffer) => b.toString('base64url');
  return createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: b64url(Buffer.from(file.releasePrivateKey, 'hex')), x: b64url(publicPoint.subarray(1, 33)), y: b64url(publicPoint.subarray(33)) },
    format: 'jwk',
  });
}

function verifies(m: Manifest, key: KeyObject): boolean {
  try {
    verifyManifest(m, [key, key, key, key]);
    return true;
  } catch (err) {
    assert.equal((err as OtaError).code, 'MANIFEST_INVALID');
    return false;
  }
}

function invalid(buf: Buffer, why: RegExp): void {
  assert.throws(() => decodeManifest(buf), (e: unknown) => e instanceof OtaError && e.code === 'MANIFEST_INVALID' && why.test(e.message));
}

describe('signed update manifest (§12)', () => {
  const vectors = file.vectors.filter((v) => v.kind === 'manifest');

  for (const v of vectors) {
    it(`${v.name}: decodes to the vector's fields and its signature ${v.fields.signature_valid ? 'verifies' : 'fails'}`, () => {
      const m = decodeManifest(Buffer.from(v.hex, 'hex'));
      const f = v.fields;
      assert.deepEqual(
        [m.keyId, m.bytes.length, m.imageSize, m.release, m.secureVersion, m.chipId, m.projectName, m.appVersion, m.notAfter],
        [f.key_id, f.length, f.image_size, f.release, f.secure_version, f.chip_id, f.project_name, f.app_version, f.not_after],
      );
      assert.equal(m.imageSha256.toString('hex'), f.image_sha256);
      assert.equal(m.baseSha256.toString('hex'), f.base_sha256);
      assert.deepEqual(m.deviceIds.map((d) => d.toString('hex')), f.device_ids);
      assert.equal(m.signature.toString('hex'), f.signature);
      assert.equal(verifies(m, publicKeyFromSec1(publicPoint)), f.signature_valid);
    });
  }

  it('signs what the vectors sign: the same body, a signature that verifies under the release public key', () => {
    const v = vectors.find((x) => x.fields.signature_valid && (x.fields.device_count as number) > 0);
    assert.ok(v);
    const m = decodeManifest(Buffer.from(v.hex, 'hex'));
    assert.ok(encodeManifestBody(m).equals(m.body));
    const signed = signManifest(m, releasePrivateKey());
    assert.ok(signed.body.equals(m.body));
    const publicKey = publicKeyFromSec1(publicPoint);
    assert.ok(verifies(signed, publicKey));
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.equal(verifies(signManifest(m, other.privateKey), publicKey), false);
  });

  it('refuses malformed manifests with MANIFEST_INVALID naming the field', () => {
    const good = Buffer.from(vectors[0].hex, 'hex');
    const edit = (offset: number, write: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      write(b.subarray(offset));
      return b;
    };
    invalid(good.subarray(0, 100), /got 100/);
    invalid(edit(0, (b) => b.write('BOM2')), /magic/);
    invalid(edit(4, (b) => (b[0] = 2)), /format 2/);
    invalid(edit(5, (b) => (b[0] = 4)), /key_id 4/);
    invalid(edit(86, (b) => b.writeUInt16LE(33)), /33 devices/);
    invalid(edit(86, (b) => b.writeUInt16LE(1)), /length field 224/);
    invalid(Buffer.concat([good, Buffer.alloc(6)]), /230 bytes/);
  });

  it('refuses a release public key that is not an uncompressed P-256 point', () => {
    assert.throws(() => publicKeyFromSec1(publicPoint.subarray(0, 33)), /65 bytes/);
    const offCurve = Buffer.from(publicPoint);
    offCurve[64] ^= 1;
    assert.throws(() => publicKeyFromSec1(offCurve), /not a point on P-256/);
  });
});
