/**
 * flashDevice with the security of protocol v2.1 (docs/SECURITY.md, PROTOCOL.md §7, §12) on simulated devices:
 * option and manifest checks before any BLE, the host's refusals from Status before BEGIN, per-device keys from
 * a master key, the manifest on every BEGIN (resumed too), and device refusals that are final.
 */
import { strict as assert } from 'assert';
import { createPrivateKey } from 'crypto';
import { buildAppImage } from '../../lib/image';
import { flashDevice, verifyDevice } from '../../lib/ota';
import { isRetryable } from '../../lib/ota/retry';
import { OtaError } from '../../lib/errors';
import { deriveDeviceKey, generateReleaseKeyPair, manifestForImage, type ManifestOptions } from '../../lib/security';
import { SimDevice } from '../../lib/sim/device';
import { CONTROL_CHAR_UUID, Op } from '../../lib/protocol/constants';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { codeOf } from '../helpers/errors';
import { simEnv, type SimEnv } from './sim-env';

/** A BEGIN without manifest is 93 bytes (PROTOCOL.md §2.1): fewer bytes to the device mean none was sent. */
const BEGIN_SIZE = 93;
const MASTER = Buffer.alloc(32, 0x5a);
const RELEASE = generateReleaseKeyPair();
const RELEASE_PRIVATE = createPrivateKey(RELEASE.privateKeyPem);
const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 120 * 1024, seed: 11 });
const ADDRESS = 'a4:cf:12:00:00:01';

/** The OtaError a flash fails with (a flash that succeeds fails the test). */
const failure = (p: Promise<unknown>): Promise<OtaError> =>
  p.then(
    () => assert.fail('the flash succeeded'),
    (e: unknown) => {
      assert.ok(e instanceof OtaError, String(e));
      return e;
    },
  );

const manifestOf = (image: Buffer, options: ManifestOptions = {}) => manifestForImage(image, { release: 5, ...options }, RELEASE_PRIVATE).bytes;

function device(overrides: Partial<SimDeviceConfig> = {}): SimDeviceConfig {
  return { name: 'sim-01', address: ADDRESS, chip: 'esp32', version: '1.0.0', ...overrides };
}

/** A device provisioned at the factory: its key derived from MASTER, the release public key. */
const provisioned = (overrides: Partial<SimDeviceConfig> = {}) => device({ deviceKey: deriveDeviceKey(MASTER, ADDRESS), releaseKeys: [RELEASE.publicKeySec1], ...overrides });

describe('ota/flashDevice with keys and signed manifests (simulated fleet)', function () {
  this.timeout(20000);
  let env: SimEnv;
  afterEach(async () => env?.close());

  const nothingSent = () => {
    const stats = env.radio.stats().devices[ADDRESS];
    assert.equal(stats.connections, 0, 'no connection was made');
  };
  const noBegin = () => {
    assert.ok(env.bytesToDevice(ADDRESS) < BEGIN_SIZE, `only the subscription went out (${env.bytesToDevice(ADDRESS)} bytes), no BEGIN`);
    assert.equal((env.devices[0] as SimDevice).flash.opCount, 0, 'nothing erased or written');
  };

  it('refuses conflicting or malformed keys and a manifest that does not match the image before any BLE', async () => {
    env = await simEnv([provisioned()]);
    const manifest = manifestOf(IMAGE);
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, fleetKey: MASTER, manifest })), 'BAD_OPTION');
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: Buffer.alloc(16), manifest })), 'BAD_KEY');
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest: Buffer.from('not a manifest') })), 'MANIFEST_INVALID');
    const other = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 120 * 1024, seed: 12 });
    const err = await failure(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest: manifestOf(other) }));
    assert.equal(err.code, 'MANIFEST_MISMATCH');
    assert.match(err.message, /image_sha256/);
    nothingSent();
  });

  it('updates a provisioned device with the master key and the manifest, resuming after a dropped link (manifest on the resumed BEGIN)', async () => {
    env = await simEnv([provisioned()]);
    env.radio.injectFault(ADDRESS, { kind: 'disconnectAfterBytes', bytes: Math.floor(IMAGE.length / 2) });
    const writes = controlWrites();
    const manifest = manifestOf(IMAGE);
    const result = await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest, encoding: 'raw' });
    assert.equal(result.attempts, 2);
    // A resume, not a restart: the device kept the session because the second BEGIN carried the same manifest.
    assert.ok(result.bytesOnAir < IMAGE.length * 1.25, `bytesOnAir ${result.bytesOnAir}`);
    // MANIFEST ahead of the first BEGIN only; the resumed BEGIN carries the manifest (no verify again on the device).
    assert.equal(writes.filter((w) => w[0] === Op.MANIFEST).length, 1);
    const begins = writes.filter((w) => w[0] === Op.BEGIN);
    assert.deepEqual(begins.map((b) => b.length), [BEGIN_SIZE, BEGIN_SIZE + manifest.length]);
    assert.equal(begins[1][10], 0x03, 'resume and manifest flags');
  });

  /** Control writes the device receives, in order (a spy on the model's GATT write entry). */
  function controlWrites(): Buffer[] {
    const model = env.devices[0] as SimDevice;
    const writes: Buffer[] = [];
    const original = model.onWrite.bind(model);
    model.onWrite = (service, characteristic, data, withoutResponse, connectionId) => {
      if (characteristic.toLowerCase() === CONTROL_CHAR_UUID) writes.push(Buffer.from(data));
      return original(service, characteristic, data, withoutResponse, connectionId);
    };
    return writes;
  }

  it('sends the manifest with MANIFEST right after Status (before CHALLENGE), then a plain BEGIN (revision 2.2)', async () => {
    env = await simEnv([provisioned()]);
    const writes = controlWrites();
    const manifest = manifestOf(IMAGE);
    await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest, encoding: 'raw' });
    const ops = writes.map((w) => w[0]);
    assert.deepEqual(ops.slice(0, 3), [Op.MANIFEST, Op.CHALLENGE, Op.BEGIN], ops.join(','));
    assert.ok(writes[0].subarray(1).equals(manifest));
    assert.equal(writes[2].length, BEGIN_SIZE, 'BEGIN without the manifest');
  });

  it('stages the manifest on Data and commits it with an empty MANIFEST when MANIFEST would not fit one write (MTU 23, revision 2.3), then a plain BEGIN', async () => {
    env = await simEnv([provisioned({ maxMtu: 23 })], { link: 'mtu-23' });
    const writes = controlWrites();
    const manifest = manifestOf(IMAGE);
    await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest, encoding: 'deflate' });
    const ops = writes.map((w) => w[0]);
    assert.deepEqual(ops.slice(0, 3), [Op.MANIFEST, Op.CHALLENGE, Op.BEGIN], ops.join(','));
    assert.equal(writes[0].length, 1, 'MANIFEST 0x09 alone: the commit of the staged bytes');
    assert.equal(writes[2].length, BEGIN_SIZE, 'BEGIN without the manifest');
  });

  it('refuses before BEGIN what the device would refuse: no key, no manifest, not provisioned, unsigned image, too old, expired, not allowed', async () => {
    const cases: Array<[string, Partial<SimDeviceConfig>, () => { manifest?: Buffer; masterKey?: Buffer; image?: Buffer }, string]> = [
      ['no key for a keyed device', {}, () => ({ manifest: manifestOf(IMAGE) }), 'FLEET_KEY_REQUIRED'],
      ['no manifest for a device with release keys', {}, () => ({ masterKey: MASTER }), 'MANIFEST_REQUIRED'],
      ['a device without any key (secure by default)', { deviceKey: undefined, releaseKeys: undefined, allowUnauthenticated: false }, () => ({ masterKey: MASTER }), 'DEVICE_NOT_PROVISIONED'],
      ['an unsigned image for a device that requires signed images', { signedImagesRequired: true }, () => ({ masterKey: MASTER, manifest: manifestOf(IMAGE) }), 'IMAGE_NOT_SIGNED'],
      ['a release below the floor', { releaseFloor: 9 }, () => ({ masterKey: MASTER, manifest: manifestOf(IMAGE, { release: 8 }) }), 'RELEASE_TOO_OLD'],
      ['an expired manifest', {}, () => ({ masterKey: MASTER, manifest: manifestOf(IMAGE, { notAfter: new Date('2024-01-01T00:00:00Z') }) }), 'MANIFEST_EXPIRED'],
      ['a manifest for other devices', {}, () => ({ masterKey: MASTER, manifest: manifestOf(IMAGE, { devices: ['a4:cf:12:00:00:02'] }) }), 'DEVICE_NOT_ALLOWED'],
    ];
    for (const [what, overrides, options, code] of cases) {
      env = await simEnv([provisioned(overrides)]);
      assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, ...options() })), code, what);
      noBegin();
      await env.close();
    }
  });

  it("a device's refusal of the manifest is final (one attempt, DEVICE_MANIFEST_INVALID), nothing written", async () => {
    // Signed with key_id 0 of another release key pair: only the device, which holds the real key 0, can tell.
    const stranger = createPrivateKey(generateReleaseKeyPair().privateKeyPem);
    env = await simEnv([provisioned()]);
    const forged = manifestForImage(IMAGE, { release: 5 }, stranger).bytes;
    const err = await failure(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest: forged }));
    assert.equal(err.code, 'DEVICE_MANIFEST_INVALID', err.message);
    assert.equal(env.radio.stats().devices[ADDRESS].connections, 1, 'not retried');
    assert.equal((env.devices[0] as SimDevice).flash.opCount, 0);
  });

  it('a key derived for another device is refused by this one (DEVICE_AUTH_FAILED, not retried)', async () => {
    env = await simEnv([provisioned({ deviceKey: deriveDeviceKey(Buffer.alloc(32, 1), ADDRESS) })]);
    assert.equal(await codeOf(flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest: manifestOf(IMAGE) })), 'DEVICE_AUTH_FAILED');
    assert.equal(env.radio.stats().devices[ADDRESS].connections, 1);
  });

  it('verifyDevice takes the master key (confirm with the derived key) and refuses it together with a fleet key', async () => {
    env = await simEnv([provisioned({ confirmPolicy: 'host' })]);
    assert.equal(await codeOf(verifyDevice(env.scheduler, { device: 'sim-01', expect: {}, masterKey: MASTER, fleetKey: MASTER })), 'BAD_OPTION');
    await flashDevice(env.scheduler, { device: 'sim-01', image: IMAGE, masterKey: MASTER, manifest: manifestOf(IMAGE) });
    const other = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.1.0' }, onPass: 'confirm', masterKey: Buffer.alloc(32, 1) }).catch((e: unknown) => e as OtaError);
    assert.equal((other as OtaError).code, 'DEVICE_AUTH_FAILED', 'a key derived from another master key is refused');
    const verified = await verifyDevice(env.scheduler, { device: 'sim-01', expect: { version: '1.1.0' }, onPass: 'confirm', masterKey: MASTER });
    assert.equal(verified.action, 'confirmed');
    assert.equal(verified.status.releaseFloor, 5);
  });

  it('treats every security refusal as final in the retry policy', () => {
    const codes = ['DEVICE_NOT_PROVISIONED', 'DEVICE_MANIFEST_REQUIRED', 'DEVICE_MANIFEST_INVALID', 'DEVICE_MANIFEST_MISMATCH', 'DEVICE_RELEASE_TOO_OLD', 'DEVICE_AUTH_FAILED', 'DEVICE_AUTH_REQUIRED', 'MANIFEST_REQUIRED', 'MANIFEST_MISMATCH', 'RELEASE_TOO_OLD', 'MANIFEST_EXPIRED', 'DEVICE_NOT_ALLOWED', 'IMAGE_NOT_SIGNED', 'IMAGE_TOO_LARGE', 'FLEET_KEY_REQUIRED'];
    for (const code of codes) assert.equal(isRetryable(new OtaError(code, 'refused')), false, code);
  });
});
