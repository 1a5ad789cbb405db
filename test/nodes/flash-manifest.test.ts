/** The flash node's manifest pre-flight: msg.manifest or the file next to the image, checked against the image before BLE. */
import { strict as assert } from 'assert';
import { createPrivateKey } from 'crypto';
import { buildAppImage } from '../../lib/image';
import { generateReleaseKeyPair, manifestForImage } from '../../lib/security';
import { preflightManifest } from '../../nodes/ble-ota-flash/preflight';
import { thrownCode } from '../helpers/errors';

describe('flash node manifest pre-flight', () => {
  const key = createPrivateKey(generateReleaseKeyPair().privateKeyPem);
  const image = buildAppImage({ chip: 'esp32c3', version: '1.4.0', size: 16 * 1024 });
  const other = buildAppImage({ chip: 'esp32c3', version: '1.4.1', size: 16 * 1024 });
  const manifest = manifestForImage(image, { notAfter: new Date('2030-01-01T00:00:00Z') }, key).bytes;
  const now = Date.parse('2029-01-01T00:00:00Z');

  it('takes msg.manifest over the file next to the image, and none when neither is there', () => {
    assert.deepEqual(preflightManifest(image, manifest, Buffer.from('ignored'), now), manifest);
    assert.deepEqual(preflightManifest(image, undefined, manifest, now), manifest);
    assert.equal(preflightManifest(image, undefined, undefined, now), undefined);
    assert.equal(preflightManifest(image, '', undefined, now), undefined);
  });

  it('refuses a manifest that is not a Buffer, malformed, for another image or expired', () => {
    assert.equal(thrownCode(() => preflightManifest(image, manifest.toString('base64'), undefined, now)), 'MANIFEST_INVALID');
    assert.equal(thrownCode(() => preflightManifest(image, manifest.subarray(1), undefined, now)), 'MANIFEST_INVALID');
    assert.equal(thrownCode(() => preflightManifest(other, manifest, undefined, now)), 'MANIFEST_MISMATCH');
    assert.equal(thrownCode(() => preflightManifest(other, undefined, manifest, now)), 'MANIFEST_MISMATCH');
    assert.equal(thrownCode(() => preflightManifest(image, manifest, undefined, Date.parse('2031-01-01T00:00:00Z'))), 'MANIFEST_EXPIRED');
  });
});
