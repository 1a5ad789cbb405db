/**
 * lib/security against the shared protocol vectors (docs/protocol-vectors.json, written by
 * docs/gen-protocol-vectors.py with Python's own HKDF and ECDSA): per-device keys and manifests must agree
 * byte for byte with what the device side is tested against. Skipped while the file has no such kinds.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import { decodeManifest, deriveDeviceKey, publicKeyFromSec1, verifyManifest } from '../../lib/security';
import { repoPath } from '../helpers/paths';

interface Vector {
  name: string;
  kind: string;
  hex: string;
  fields: Record<string, unknown>;
}

const file = JSON.parse(fs.readFileSync(repoPath('docs', 'protocol-vectors.json'), 'utf8')) as { releasePublicKey?: string; vectors: Vector[] };
const ofKind = (kind: string) => file.vectors.filter((v) => v.kind === kind);

describe('security against the protocol vectors', () => {
  it('derives every device_key vector', function () {
    const cases = ofKind('device_key');
    if (cases.length === 0) this.skip();
    for (const v of cases) {
      const key = deriveDeviceKey(Buffer.from(String(v.fields.master_key), 'hex'), Buffer.from(String(v.fields.device_id), 'hex'));
      assert.equal(key.toString('hex'), v.fields.device_key, v.name);
    }
  });

  it('decodes every manifest vector and verifies exactly those marked valid', function () {
    const cases = ofKind('manifest');
    if (cases.length === 0 || !file.releasePublicKey) this.skip();
    const key = publicKeyFromSec1(Buffer.from(String(file.releasePublicKey), 'hex'));
    for (const v of cases) {
      const m = decodeManifest(Buffer.from(v.hex, 'hex'));
      assert.equal(m.release, v.fields.release, v.name);
      assert.equal(m.imageSha256.toString('hex'), v.fields.image_sha256, v.name);
      assert.equal(m.deviceIds.length, v.fields.device_count, v.name);
      const valid = (() => {
        try {
          verifyManifest(m, [key, key, key, key]);
          return true;
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'MANIFEST_INVALID');
          return false;
        }
      })();
      assert.equal(valid, v.fields.signature_valid, v.name);
    }
  });
});
