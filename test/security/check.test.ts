/** Host-side refusals before BEGIN: each reason the device would give, found from Status, image and manifest. */
import { strict as assert } from 'assert';
import { createPrivateKey, createPublicKey, randomBytes } from 'crypto';
import { buildAppImage, fileSha256 } from '../../lib/image';
import { Caps } from '../../lib/protocol/constants';
import { checkBeforeBegin, generateReleaseKeyPair, manifestForImage, signManifest, type BeginCheckInput, type DeviceSecurityState } from '../../lib/security';

const pair = generateReleaseKeyPair();
const PRIV = createPrivateKey(pair.privateKeyPem);
const PUB = createPublicKey(pair.publicKeyPem);
const IMAGE = buildAppImage({ chip: 'esp32c3', version: 'v2.4.1', projectName: 'line-controller', secureVersion: 1, size: 64 * 1024 });
const DEVICE_ID = Buffer.from('a4cf12345678', 'hex');
const NOW = Date.parse('2027-01-01T00:00:00Z');
/** A provisioned ESP32-C3 that requires a session key and a manifest. */
const DEVICE: DeviceSecurityState = {
  caps: Caps.SESSION_KEY_REQUIRED | Caps.MANIFEST_REQUIRED,
  chipId: 5,
  updatePartitionSize: 0x1e0000,
  releaseFloor: 2004000,
  deviceId: DEVICE_ID,
  releaseKeyIds: 0b0001,
};

function check(overrides: Partial<BeginCheckInput> = {}, device: Partial<DeviceSecurityState> = {}): string | null {
  const input: BeginCheckInput = { device: { ...DEVICE, ...device }, image: IMAGE, manifest: manifestForImage(IMAGE, {}, PRIV), hasKey: true, now: NOW, ...overrides };
  const error = checkBeforeBegin(input);
  if (error) assert.ok(error.message.length > 30, `a sentence for ${error.code}`);
  return error ? error.code : null;
}

/** The image with a Secure Boot V1-style 68-byte signature block after it (version 0, 64 signature bytes). */
function signedImage(): Buffer {
  return Buffer.concat([IMAGE, Buffer.alloc(4), randomBytes(64)]);
}

describe('security checks before BEGIN', () => {
  it('passes a matching, signed manifest for a device that requires one', () => {
    assert.equal(check(), null);
    assert.equal(check({ publicKeys: [PUB] }), null);
  });

  it('passes without manifest on a device that does not require one, and on a format-1 Status', () => {
    assert.equal(check({ manifest: null }, { caps: Caps.SESSION_KEY_REQUIRED, releaseKeyIds: 0 }), null);
    assert.equal(checkBeforeBegin({ device: { caps: 0 }, image: IMAGE, hasKey: false, now: NOW }), null);
  });

  it('IMAGE_TOO_LARGE when the update partition is known and smaller', () => {
    assert.equal(check({}, { updatePartitionSize: IMAGE.length - 1 }), 'IMAGE_TOO_LARGE');
    assert.equal(check({}, { updatePartitionSize: IMAGE.length }), null);
    assert.equal(check({}, { updatePartitionSize: 0 }), null, '0 = unknown');
  });

  it('DEVICE_NOT_PROVISIONED when the device has no key at all (caps bit 10)', () => {
    assert.equal(check({}, { caps: Caps.NOT_PROVISIONED }), 'DEVICE_NOT_PROVISIONED');
  });

  it('FLEET_KEY_REQUIRED when the device needs a session key and none is configured', () => {
    assert.equal(check({ hasKey: false }), 'FLEET_KEY_REQUIRED');
    assert.equal(check({ hasKey: false }, { caps: Caps.MANIFEST_REQUIRED }), null);
  });

  it('IMAGE_NOT_SIGNED when the device requires signed images and the image has no signature block', () => {
    const caps = DEVICE.caps | Caps.SIGNED_IMAGES;
    assert.equal(check({}, { caps }), 'IMAGE_NOT_SIGNED');
    const signed = signedImage();
    assert.equal(check({ image: signed, manifest: manifestForImage(signed, {}, PRIV) }, { caps }), null);
  });

  it('MANIFEST_REQUIRED when the device requires a manifest and none is given', () => {
    assert.equal(check({ manifest: undefined }), 'MANIFEST_REQUIRED');
    assert.equal(check({ manifest: null }), 'MANIFEST_REQUIRED');
  });

  it('MANIFEST_INVALID for a malformed manifest, a forged one (with public keys) and a key the device lacks', () => {
    const m = manifestForImage(IMAGE, {}, PRIV);
    assert.equal(check({ manifest: m.bytes.subarray(0, 100) }), 'MANIFEST_INVALID');
    const other = createPrivateKey(generateReleaseKeyPair().privateKeyPem);
    assert.equal(check({ manifest: manifestForImage(IMAGE, {}, other), publicKeys: [PUB] }), 'MANIFEST_INVALID');
    assert.equal(check({ manifest: manifestForImage(IMAGE, { keyId: 2 }, PRIV) }), 'MANIFEST_INVALID');
    assert.equal(check({ manifest: manifestForImage(IMAGE, { keyId: 2 }, PRIV) }, { releaseKeyIds: 0b0100 }), null);
  });

  it('MANIFEST_MISMATCH when the manifest is for another image (digest, size, version, project, secure_version)', () => {
    const other = buildAppImage({ chip: 'esp32c3', version: 'v2.4.2', projectName: 'line-controller', secureVersion: 1, size: 64 * 1024 });
    assert.equal(check({ manifest: manifestForImage(other, {}, PRIV) }), 'MANIFEST_MISMATCH');
    const fields = manifestForImage(IMAGE, {}, PRIV);
    const forImage = { ...fields, deviceIds: [] };
    for (const change of [{ imageSize: IMAGE.length + 16 }, { appVersion: 'v2.4.2' }, { projectName: 'other' }, { secureVersion: 2 }]) {
      const error = checkBeforeBegin({ device: DEVICE, image: IMAGE, manifest: signManifest({ ...forImage, ...change }, PRIV), hasKey: true, now: NOW });
      assert.equal(error?.code, 'MANIFEST_MISMATCH', JSON.stringify(change));
      assert.match(error!.message, /does not belong to this image/);
    }
  });

  it('MANIFEST_MISMATCH for a delta-only manifest sent with a full image or another base', () => {
    const base = randomBytes(32);
    const deltaOnly = manifestForImage(IMAGE, { baseSha256: base }, PRIV);
    assert.equal(check({ manifest: deltaOnly }), 'MANIFEST_MISMATCH');
    assert.equal(check({ manifest: deltaOnly, baseSha256: randomBytes(32) }), 'MANIFEST_MISMATCH');
    assert.equal(check({ manifest: deltaOnly, baseSha256: base }), null);
    assert.equal(check({ baseSha256: base }), null, 'a manifest without base allows any transfer');
  });

  it('WRONG_CHIP when the manifest (and image) is for another chip than the device', () => {
    assert.equal(check({}, { chipId: 9 }), 'WRONG_CHIP');
  });

  it('RELEASE_TOO_OLD below the device release floor; equal is allowed', () => {
    assert.equal(check({ manifest: manifestForImage(IMAGE, { release: 2003999 }, PRIV) }), 'RELEASE_TOO_OLD');
    assert.equal(check({ manifest: manifestForImage(IMAGE, { release: 2004000 }, PRIV) }), null);
  });

  it('MANIFEST_EXPIRED after not_after', () => {
    const m = manifestForImage(IMAGE, { notAfter: new Date(NOW) }, PRIV);
    assert.equal(check({ manifest: m, now: NOW }), null);
    assert.equal(check({ manifest: m, now: NOW + 1000 }), 'MANIFEST_EXPIRED');
    assert.equal(check({ manifest: m, now: new Date(NOW + 86400e3) }), 'MANIFEST_EXPIRED');
  });

  it('DEVICE_NOT_ALLOWED when the allow-list does not name the device', () => {
    assert.equal(check({ manifest: manifestForImage(IMAGE, { devices: ['a4:cf:12:34:56:78', 'a4:cf:12:34:56:99'] }, PRIV) }), null);
    const error = checkBeforeBegin({ device: DEVICE, image: IMAGE, manifest: manifestForImage(IMAGE, { devices: ['a4:cf:12:34:56:99'] }, PRIV), hasKey: true, now: NOW });
    assert.equal(error?.code, 'DEVICE_NOT_ALLOWED');
    assert.match(error!.message, /a4:cf:12:34:56:78 is not among them/);
    const asText = checkBeforeBegin({ device: { ...DEVICE, deviceId: 'a4:cf:12:34:56:78' }, image: IMAGE, manifest: manifestForImage(IMAGE, { devices: ['a4:cf:12:34:56:99'] }, PRIV), hasKey: true, now: NOW });
    assert.equal(asText?.code, 'DEVICE_NOT_ALLOWED', 'the Status decoder writes the id as text');
  });

  it('checks the raw manifest bytes as the decoded manifest', () => {
    assert.equal(check({ manifest: manifestForImage(IMAGE, {}, PRIV).bytes }), null);
    assert.deepEqual(manifestForImage(IMAGE, {}, PRIV).imageSha256, fileSha256(IMAGE));
  });
});
