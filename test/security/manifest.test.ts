/** The BOM1 manifest: layout, signing and verification, refusal of forged, altered and malformed manifests. */
import { strict as assert } from 'assert';
import { createPrivateKey, createPublicKey, type KeyObject } from 'crypto';
import { buildAppImage, fileSha256 } from '../../lib/image';
import {
  decodeManifest,
  describeManifest,
  encodeManifestBody,
  generateReleaseKeyPair,
  manifestForImage,
  releaseFromVersion,
  signManifest,
  verifyManifest,
  type ManifestFields,
} from '../../lib/security';
import { thrownCode } from '../helpers/errors';

function keyPair(): { priv: KeyObject; pub: KeyObject } {
  const p = generateReleaseKeyPair();
  return { priv: createPrivateKey(p.privateKeyPem), pub: createPublicKey(p.publicKeyPem) };
}

const FIELDS: ManifestFields = {
  keyId: 1,
  imageSha256: Buffer.alloc(32, 0x11),
  imageSize: 211008,
  baseSha256: Buffer.alloc(32),
  release: 2004001,
  secureVersion: 3,
  chipId: 5,
  deviceIds: [Buffer.from('a4cf12345678', 'hex'), Buffer.from('a4cf12345679', 'hex')],
  projectName: 'line-controller',
  appVersion: 'v2.4.1',
  notAfter: 1893456000,
};

describe('security manifest (BOM1)', () => {
  const release = keyPair();
  const keys = [undefined, release.pub];

  it('lays the fields out at the offsets of the contract', () => {
    const body = encodeManifestBody(FIELDS);
    assert.equal(body.length, 160 + 12);
    assert.equal(body.subarray(0, 4).toString('latin1'), 'BOM1');
    assert.equal(body[4], 1);
    assert.equal(body[5], 1);
    assert.equal(body.readUInt16LE(6), 224 + 12);
    assert.deepEqual(body.subarray(8, 40), FIELDS.imageSha256);
    assert.equal(body.readUInt32LE(40), 211008);
    assert.ok(body.subarray(44, 76).every((b) => b === 0));
    assert.equal(body.readUInt32LE(76), 2004001);
    assert.equal(body.readUInt32LE(80), 3);
    assert.equal(body.readUInt16LE(84), 5);
    assert.equal(body.readUInt16LE(86), 2);
    assert.equal(body.subarray(88, 120).toString('latin1').replace(/\0+$/, ''), 'line-controller');
    assert.equal(body.subarray(120, 152).toString('latin1').replace(/\0+$/, ''), 'v2.4.1');
    assert.equal(body.readUInt32LE(152), 1893456000);
    assert.equal(body.readUInt32LE(156), 0);
    assert.equal(body.subarray(160, 172).toString('hex'), 'a4cf12345678a4cf12345679');
  });

  it('signs with P-256 (r ‖ s, 64 bytes) and verifies with the key its key_id names', () => {
    const m = signManifest(FIELDS, release.priv);
    assert.equal(m.bytes.length, 224 + 12);
    assert.equal(m.signature.length, 64);
    verifyManifest(m, keys);
    const again = decodeManifest(m.bytes);
    verifyManifest(again, keys);
    assert.deepEqual({ ...again, body: undefined, signature: undefined, bytes: undefined }, { ...FIELDS, body: undefined, signature: undefined, bytes: undefined });
    assert.deepEqual(describeManifest(again).devices, ['a4:cf:12:34:56:78', 'a4:cf:12:34:56:79']);
  });

  it('refuses every single flipped bit of body and signature', () => {
    const m = signManifest({ ...FIELDS, deviceIds: [] }, release.priv);
    let refused = 0;
    for (let bit = 0; bit < m.bytes.length * 8; bit++) {
      const forged = Buffer.from(m.bytes);
      forged[bit >> 3] ^= 1 << (bit & 7);
      const code = thrownCode(() => verifyManifest(decodeManifest(forged), [release.pub, release.pub, release.pub, release.pub]));
      assert.equal(code, 'MANIFEST_INVALID', `bit ${bit} flipped was accepted`);
      refused++;
    }
    assert.equal(refused, 224 * 8);
  });

  it('refuses a manifest signed by another key, or naming a key_id that was not given', () => {
    const stranger = keyPair();
    const forged = signManifest(FIELDS, stranger.priv);
    assert.throws(() => verifyManifest(forged, keys), (e: Error & { code: string }) => e.code === 'MANIFEST_INVALID' && /does not verify with release key 1/.test(e.message));
    assert.throws(() => verifyManifest(signManifest({ ...FIELDS, keyId: 2 }, release.priv), keys), /key_id 2, and no public key with that id was given \(have: 1\)/);
  });

  it('refuses a changed field re-encoded around the old signature (e.g. an added device)', () => {
    const m = signManifest(FIELDS, release.priv);
    const widened = Buffer.concat([encodeManifestBody({ ...FIELDS, deviceIds: [...FIELDS.deviceIds, Buffer.from('deadbeef0001', 'hex')] }), m.signature]);
    assert.equal(thrownCode(() => verifyManifest(decodeManifest(widened), keys)), 'MANIFEST_INVALID');
    const newer = Buffer.concat([encodeManifestBody({ ...FIELDS, release: FIELDS.release + 1 }), m.signature]);
    assert.equal(thrownCode(() => verifyManifest(decodeManifest(newer), keys)), 'MANIFEST_INVALID');
  });

  it('decodes only well-formed manifests, naming the problem', () => {
    const good = signManifest(FIELDS, release.priv).bytes;
    const withByte = (offset: number, value: number) => {
      const b = Buffer.from(good);
      b[offset] = value;
      return b;
    };
    const cases: Array<[Buffer, RegExp]> = [
      [good.subarray(0, 200), /at least 224 bytes, got 200/],
      [withByte(0, 0x58), /magic 584f4d31 instead of "BOM1"/],
      [withByte(4, 2), /format 2 is not supported/],
      [withByte(5, 4), /key_id 4 is outside 0..3/],
      [withByte(6, 0), /length field .* does not match 2 device/],
      [Buffer.concat([good, Buffer.alloc(1)]), /is 237 bytes, its length field says 236/],
      [withByte(86, 33), /lists 33 devices, more than 32/],
      [withByte(156, 1), /reserved field is not zero/],
      [withByte(110, 0x41), /project_name is not NUL-padded/],
    ];
    for (const [buf, message] of cases) {
      assert.throws(() => decodeManifest(buf), (e: Error & { code: string }) => e.code === 'MANIFEST_INVALID' && message.test(e.message), String(message));
    }
    assert.equal(thrownCode(() => decodeManifest('BOM1' as unknown as Buffer)), 'MANIFEST_INVALID');
  });

  it('refuses fields that do not fit when signing', () => {
    assert.equal(thrownCode(() => encodeManifestBody({ ...FIELDS, release: 0 })), 'BAD_OPTION');
    assert.equal(thrownCode(() => encodeManifestBody({ ...FIELDS, keyId: 4 })), 'BAD_OPTION');
    assert.equal(thrownCode(() => encodeManifestBody({ ...FIELDS, deviceIds: Array.from({ length: 33 }, () => Buffer.alloc(6)) })), 'BAD_OPTION');
    assert.equal(thrownCode(() => encodeManifestBody({ ...FIELDS, projectName: 'x'.repeat(33) })), 'BAD_OPTION');
    assert.equal(encodeManifestBody({ ...FIELDS, deviceIds: Array.from({ length: 32 }, () => Buffer.alloc(6)) }).readUInt16LE(6), 224 + 192);
  });

  describe('manifestForImage', () => {
    const image = buildAppImage({ chip: 'esp32c3', version: 'v2.4.1', projectName: 'line-controller', secureVersion: 2, size: 64 * 1024 });

    it('takes digest, size, chip, secure_version, project and version from the image', () => {
      const m = manifestForImage(image, { devices: ['a4:cf:12:34:56:78'], notAfter: new Date('2030-01-01T00:00:00Z') }, release.priv);
      assert.deepEqual(m.imageSha256, fileSha256(image));
      assert.equal(m.imageSize, image.length);
      assert.equal(m.chipId, 5);
      assert.equal(m.secureVersion, 2);
      assert.equal(m.projectName, 'line-controller');
      assert.equal(m.appVersion, 'v2.4.1');
      assert.equal(m.release, 2004001);
      assert.equal(m.keyId, 0);
      assert.equal(m.notAfter, 1893456000);
      verifyManifest(m, [release.pub]);
    });

    it('needs an explicit release when the version is no major.minor.patch', () => {
      const hashBuild = buildAppImage({ chip: 'esp32', version: '6970792-dirty', size: 16 * 1024 });
      assert.throws(() => manifestForImage(hashBuild, {}, release.priv), (e: Error & { code: string }) => e.code === 'BAD_OPTION' && /"6970792-dirty" gives no release number/.test(e.message));
      assert.equal(manifestForImage(hashBuild, { release: 42 }, release.priv).release, 42);
      assert.equal(thrownCode(() => manifestForImage(Buffer.from('not an image'), {}, release.priv)), 'NOT_ESP_IMAGE');
      assert.equal(thrownCode(() => manifestForImage(image, { baseSha256: 'abc' }, release.priv)), 'BAD_OPTION');
    });

    it('maps versions to release numbers', () => {
      assert.equal(releaseFromVersion('v2.4.1'), 2004001);
      assert.equal(releaseFromVersion('1.2'), 1002000);
      assert.equal(releaseFromVersion('1.2.0-rc1'), 1002000);
      assert.equal(releaseFromVersion('v1.2.3-4-g6970792'), 1002003);
      assert.equal(releaseFromVersion('0.0.0'), null);
      assert.equal(releaseFromVersion('1.1000.0'), null);
      assert.equal(releaseFromVersion('5000.0.0'), null);
      assert.equal(releaseFromVersion('custom'), null);
    });
  });
});
