/** Keys: HKDF per-device keys (RFC 5869), release key formats, and loading secrets from files and the environment. */
import { strict as assert } from 'assert';
import { createHmac, createPublicKey, generateKeyPairSync, hkdfSync } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  DEVICE_KEY_SALT,
  decodeReleaseKeysFile,
  deriveDeviceKey,
  encodeReleaseKeysFile,
  formatDeviceId,
  generateReleaseKeyPair,
  loadReleasePrivateKey,
  loadReleasePublicKeys,
  loadSecretKey,
  parseDeviceId,
  publicKeyFromSec1,
  publicKeyToSec1,
  sessionKeyFor,
} from '../../lib/security';
import { thrownCode } from '../helpers/errors';

/** HKDF-SHA256 written out from RFC 5869 §2.2/2.3 (one block: L ≤ 32), independent of crypto.hkdfSync. */
function hkdfByHand(ikm: Buffer, salt: Buffer, info: Buffer): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk).update(Buffer.concat([info, Buffer.from([1])])).digest();
}

describe('security keys', () => {
  const master = Buffer.from([...Array(32).keys()]);

  it('hkdfSync reproduces RFC 5869 test case 1', () => {
    const okm = Buffer.from(hkdfSync('sha256', Buffer.alloc(22, 0x0b), Buffer.from('000102030405060708090a0b0c', 'hex'), Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex'), 42));
    assert.equal(okm.toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  });

  it('derives the per-device key with salt "BLEOTA2-DEVICE-KEY" and the 6-byte device id as info', () => {
    const id = 'a4:cf:12:34:56:78';
    const key = deriveDeviceKey(master, id);
    assert.equal(key.length, 32);
    assert.deepEqual(key, hkdfByHand(master, DEVICE_KEY_SALT, Buffer.from('a4cf12345678', 'hex')));
    // Known answer (computed with Python's hmac module), for the firmware's and the model's tests.
    assert.equal(key.toString('hex'), '83b775867585678ac3a15acd25d672038b72811de7693e41e239cdbd94f10963');
    assert.deepEqual(deriveDeviceKey(master, Buffer.from('a4cf12345678', 'hex')), key);
  });

  it('gives every device its own key, and another master key other keys', () => {
    const a = deriveDeviceKey(master, 'a4:cf:12:34:56:78');
    const b = deriveDeviceKey(master, 'a4:cf:12:34:56:79');
    const c = deriveDeviceKey(Buffer.alloc(32, 7), 'a4:cf:12:34:56:78');
    assert.notDeepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('refuses a master key that is not 32 bytes and a malformed device id', () => {
    assert.equal(thrownCode(() => deriveDeviceKey(Buffer.alloc(16), 'a4:cf:12:34:56:78')), 'BAD_KEY');
    assert.equal(thrownCode(() => deriveDeviceKey(master, 'a4:cf:12:34:56')), 'BAD_DEVICE_ID');
    assert.equal(thrownCode(() => parseDeviceId(Buffer.alloc(5))), 'BAD_DEVICE_ID');
    assert.equal(thrownCode(() => parseDeviceId('a4:cf-12:34:56:78')), 'BAD_DEVICE_ID');
    assert.equal(formatDeviceId(parseDeviceId('A4CF12345678')), 'a4:cf:12:34:56:78');
  });

  it('picks the session key from the options: derived, fleet key as is, none; both set is refused', () => {
    const fleet = Buffer.alloc(32, 9);
    assert.deepEqual(sessionKeyFor({ masterKey: master }, 'a4:cf:12:34:56:78'), deriveDeviceKey(master, 'a4:cf:12:34:56:78'));
    assert.deepEqual(sessionKeyFor({ fleetKey: fleet }, null), fleet);
    assert.equal(sessionKeyFor({}, 'a4:cf:12:34:56:78'), undefined);
    assert.equal(thrownCode(() => sessionKeyFor({ masterKey: master, fleetKey: fleet }, 'a4:cf:12:34:56:78')), 'BAD_OPTION');
    assert.equal(thrownCode(() => sessionKeyFor({ masterKey: master }, undefined)), 'DEVICE_ID_UNKNOWN');
  });

  it('converts a release public key to the 65-byte SEC1 point and back', () => {
    const pair = generateReleaseKeyPair();
    assert.match(pair.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(pair.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(pair.publicKeySec1.length, 65);
    assert.equal(pair.publicKeySec1[0], 0x04);
    const back = publicKeyFromSec1(pair.publicKeySec1);
    assert.equal(back.export({ type: 'spki', format: 'pem' }).toString(), pair.publicKeyPem);
    assert.deepEqual(publicKeyToSec1(createPublicKey(pair.privateKeyPem)), pair.publicKeySec1);
  });

  it('refuses a SEC1 point of the wrong size, compressed, or not on the curve', () => {
    const point = generateReleaseKeyPair().publicKeySec1;
    assert.equal(thrownCode(() => publicKeyFromSec1(point.subarray(0, 64))), 'BAD_KEY');
    assert.equal(thrownCode(() => publicKeyFromSec1(Buffer.concat([Buffer.from([0x02]), point.subarray(1)]))), 'BAD_KEY');
    const offCurve = Buffer.from(point);
    offCurve[64] ^= 1;
    assert.equal(thrownCode(() => publicKeyFromSec1(offCurve)), 'BAD_KEY');
  });

  it('writes and reads release_keys.bin (n × 65 bytes, key_id = index)', () => {
    const keys = [generateReleaseKeyPair(), generateReleaseKeyPair()].map((p) => createPublicKey(p.publicKeyPem));
    const file = encodeReleaseKeysFile(keys);
    assert.equal(file.length, 130);
    assert.deepEqual(decodeReleaseKeysFile(file).map(publicKeyToSec1), keys.map(publicKeyToSec1));
    assert.equal(thrownCode(() => decodeReleaseKeysFile(file.subarray(0, 100))), 'BAD_KEY');
    assert.equal(thrownCode(() => encodeReleaseKeysFile([...keys, ...keys, keys[0]])), 'BAD_KEY');
  });

  describe('loading keys', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-keys-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reads a secret from a hex file, a raw 32-byte file or the environment; a file wins', () => {
      const hexFile = path.join(dir, 'hex.key');
      fs.writeFileSync(hexFile, `${master.toString('hex')}\n`, { mode: 0o600 });
      const rawFile = path.join(dir, 'raw.key');
      fs.writeFileSync(rawFile, master, { mode: 0o600 });
      const env = { BLE_OTA_MASTER_KEY: Buffer.alloc(32, 5).toString('hex') };
      assert.deepEqual(loadSecretKey({ file: hexFile }, 'master key')?.key, master);
      assert.deepEqual(loadSecretKey({ file: rawFile }, 'master key')?.key, master);
      assert.deepEqual(loadSecretKey({ file: hexFile, envName: 'BLE_OTA_MASTER_KEY', env }, 'master key')?.key, master);
      const fromEnv = loadSecretKey({ envName: 'BLE_OTA_MASTER_KEY', env }, 'master key');
      assert.deepEqual(fromEnv?.key, Buffer.alloc(32, 5));
      assert.equal(fromEnv?.source, 'environment BLE_OTA_MASTER_KEY');
      assert.equal(loadSecretKey({ envName: 'BLE_OTA_MASTER_KEY', env: {} }, 'master key'), undefined);
    });

    it('warns about a key file others can read and never puts the key into an error', () => {
      const open = path.join(dir, 'open.key');
      fs.writeFileSync(open, master.toString('hex'));
      fs.chmodSync(open, 0o644);
      assert.match(loadSecretKey({ file: open }, 'master key')!.warnings.join(), /can be read by other users: chmod 600/);
      const short = path.join(dir, 'short.key');
      const secret = 'ab'.repeat(31);
      fs.writeFileSync(short, secret);
      assert.throws(() => loadSecretKey({ file: short }, 'master key'), (err: Error & { code: string }) => err.code === 'BAD_KEY' && !err.message.includes(secret) && /32 bytes/.test(err.message));
      assert.equal(thrownCode(() => loadSecretKey({ file: path.join(dir, 'missing.key') }, 'master key')), 'BAD_KEY');
      assert.equal(thrownCode(() => loadSecretKey({ envName: 'K', env: { K: 'xyz' } }, 'fleet key')), 'BAD_KEY');
    });

    it('loads the release private key (PEM, P-256 only) and public keys from PEM or release_keys.bin', () => {
      const pair = generateReleaseKeyPair();
      const priv = path.join(dir, 'release.pem');
      const pub = path.join(dir, 'release.pub.pem');
      const bin = path.join(dir, 'release_keys.bin');
      fs.writeFileSync(priv, pair.privateKeyPem);
      fs.writeFileSync(pub, pair.publicKeyPem);
      fs.writeFileSync(bin, pair.publicKeySec1);
      assert.deepEqual(publicKeyToSec1(loadReleasePrivateKey(priv)), pair.publicKeySec1);
      assert.deepEqual(loadReleasePublicKeys(pub).map(publicKeyToSec1), [pair.publicKeySec1]);
      assert.deepEqual(loadReleasePublicKeys(bin).map(publicKeyToSec1), [pair.publicKeySec1]);
      assert.equal(thrownCode(() => loadReleasePrivateKey(pub)), 'BAD_KEY');
      const other = path.join(dir, 'p384.pem');
      fs.writeFileSync(other, generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
      assert.equal(thrownCode(() => loadReleasePrivateKey(other)), 'BAD_KEY');
    });
  });
});
