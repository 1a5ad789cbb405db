/**
 * Protocol v2.1 security on the device model, at the GATT level (PROTOCOL.md §B-§E): secure by default,
 * session keys on every tagged command, replays, per-device keys, PROVISION, signed manifests checked
 * before anything is written, the release floor, signed images, Status format 2.
 */
import { strict as assert } from 'assert';
import { hkdfSync, randomBytes } from 'crypto';
import { sleep } from '../../lib/clock';
import { buildAppImage } from '../../lib/image/builder';
import { crc32 } from '../../lib/image/digest';
import { CHIP_IDS, CONTROL_CHAR_UUID, Caps, ErrorCode, Op } from '../../lib/protocol/constants';
import { SimDevice } from '../../lib/sim/device';
import { manifestCheckMs } from '../../lib/sim/device/manifest-timing';
import { createSimFleet, deriveDeviceKey } from '../../lib/sim/fleet';
import type { ChipName } from '../../lib/sim/types';
import { ManifestFields, buildManifest, commandTagV21, encodeProvision, generateReleaseKey } from '../helpers/v21-wire';
import { Central, Rig, Transfer, afterReboot, bootSettled, makeRig, rawTransfer, sha256, until } from './harness';

const Err = { NOT_PROVISIONED: 33, MANIFEST_REQUIRED: 34, MANIFEST_INVALID: 35, MANIFEST_MISMATCH: 36, RELEASE_TOO_OLD: 37 } as const;
const CapBit = { SIGNED: 1 << 5, MANIFEST: 1 << 6, DELTA: 1 << 7, WINDOW: 1 << 8, UNAUTH: 1 << 9, NOT_PROVISIONED: 1 << 10 } as const;

const releaseKey = generateReleaseKey();
const otherKey = generateReleaseKey();

function newImage(version = '1.1.0', chip: ChipName = 'esp32c3', secureVersion = 0): Buffer {
  return buildAppImage({ chip, version, projectName: 'ble_ota_app', size: 48 * 1024, secureVersion });
}

function deviceIdOf(rig: Rig): Buffer {
  return Buffer.from(rig.device.address.replace(/:/g, ''), 'hex');
}

function manifestFor(image: Buffer, over: Partial<ManifestFields> = {}, key = releaseKey.privateKey): Buffer {
  return buildManifest(
    { imageSha256: sha256(image), imageSize: image.length, release: 1, secureVersion: 0, chipId: CHIP_IDS.esp32c3, projectName: 'ble_ota_app', appVersion: '1.1.0', ...over },
    key,
  );
}

/** Nothing was erased or programmed in the app partitions. */
function assertNothingWritten(rig: Rig, what: string): void {
  assert.equal(rig.device.flash.opCount, 0, `${what}: flash erase/program operations`);
}

/** A Secure Boot V2 sector after the image padded to 4 KiB: one block (magic 0xE7, version 2, digest, CRC32). */
function signV2(image: Buffer): Buffer {
  const padded = Buffer.concat([image, Buffer.alloc((4096 - (image.length % 4096)) % 4096, 0xff)]);
  const block = Buffer.alloc(1216);
  block[0] = 0xe7;
  block[1] = 2;
  sha256(padded).copy(block, 4);
  block.writeUInt32LE(crc32(block.subarray(0, 1196)), 1196);
  const sector = Buffer.alloc(4096, 0xff);
  block.copy(sector);
  return Buffer.concat([padded, sector]);
}

describe('sim-device v2.1: secure by default and session keys', () => {
  it('a default device (no keys, no opt-out) refuses a stranger: BEGIN, REBOOT, ABORT, CONFIRM, ROLLBACK get NOT_PROVISIONED', async () => {
    const rig = makeRig({ allowUnauthenticated: false });
    const c = new Central(rig).connect();
    const ch = await c.challenge();
    assert.equal((ch.caps ?? 0) & CapBit.NOT_PROVISIONED, CapBit.NOT_PROVISIONED);
    assert.equal((ch.caps ?? 0) & (CapBit.UNAUTH | Caps.FLEET_KEY_REQUIRED), 0);
    assert.equal((await c.begin(rawTransfer(newImage()))).err, Err.NOT_PROVISIONED);
    for (const op of [Op.REBOOT, Op.ABORT, Op.CONFIRM, Op.ROLLBACK] as const) {
      assert.equal((await c.tagged(op)).err, Err.NOT_PROVISIONED, `op ${op}`);
    }
    await sleep(rig.clock, 1000);
    assert.equal(rig.device.machine.restarts.length, 0, 'REBOOT refused: no restart');
    assertNothingWritten(rig, 'unprovisioned');
    const s = await c.readStatus();
    assert.equal(s.caps & CapBit.NOT_PROVISIONED, CapBit.NOT_PROVISIONED);
    assert.equal(s.sessionStateName, 'idle');
  });

  it('the development opt-out (allowUnauthenticated) takes an untagged update and says so in caps bit 9', async () => {
    const rig = makeRig({ allowUnauthenticated: true });
    const c = new Central(rig).connect();
    const caps = (await c.challenge()).caps ?? 0;
    assert.equal(caps & (CapBit.UNAUTH | CapBit.NOT_PROVISIONED), CapBit.UNAUTH);
    assert.equal((await c.update(rawTransfer(newImage()))).err, 0);
  });

  it('with a session key, REBOOT and ABORT without a valid tag are refused (AUTH_REQUIRED / AUTH_FAILED); a valid tag works', async () => {
    const key = randomBytes(32);
    const rig = makeRig({ deviceKey: key });
    const stranger = new Central(rig, 1).connect();
    assert.equal((await stranger.tagged(Op.REBOOT, Buffer.alloc(16))).err, ErrorCode.AUTH_REQUIRED, 'no CHALLENGE');
    await stranger.challenge();
    assert.equal((await stranger.tagged(Op.REBOOT, Buffer.alloc(16))).err, ErrorCode.AUTH_FAILED, 'zero tag');
    const wrong = new Central(rig, 2, 247, randomBytes(32)).connect();
    assert.equal((await wrong.tagged(Op.REBOOT)).err, ErrorCode.AUTH_FAILED, 'tag with another key');
    assert.equal((await wrong.tagged(Op.ABORT)).err, ErrorCode.AUTH_FAILED);
    await stranger.challenge();
    assert.equal((await stranger.tagged(Op.ABORT, Buffer.alloc(16))).err, ErrorCode.AUTH_FAILED);
    assert.equal(rig.device.machine.restarts.length, 0);
    const owner = new Central(rig, 0, 247, key).connect();
    assert.equal(((await owner.challenge()).caps ?? 0) & (Caps.FLEET_KEY_REQUIRED | CapBit.UNAUTH | CapBit.NOT_PROVISIONED), Caps.FLEET_KEY_REQUIRED);
    assert.equal((await owner.tagged(Op.ABORT)).err, 0);
    assert.equal((await owner.tagged(Op.REBOOT)).err, 0);
    await afterReboot(rig);
    assert.deepEqual(rig.device.machine.restarts.map((r) => r.reason), ['reboot command']);
  });

  it('a replay of a captured BEGIN or REBOOT is refused (the nonce is spent, a new CHALLENGE gives a new one)', async () => {
    const key = randomBytes(32);
    const rig = makeRig({ fleetKey: key });
    const owner = new Central(rig, 0, 247, key).connect();
    const t = rawTransfer(newImage());
    await owner.challenge();
    const capturedBegin = owner.beginRequest(t);
    assert.equal((await owner.command(capturedBegin)).err, 0);
    assert.equal((await owner.tagged(Op.ABORT)).err, 0);
    await owner.challenge();
    const capturedReboot = Buffer.concat([Buffer.from([Op.REBOOT]), commandTagV21(key, owner.nonce as Buffer, Op.REBOOT)]);
    assert.equal((await owner.command(capturedReboot)).err, 0);
    await afterReboot(rig);
    const opsBefore = rig.device.flash.opCount;
    const attacker = new Central(rig, 3).connect();
    assert.equal((await attacker.command(capturedBegin)).err, ErrorCode.AUTH_REQUIRED, 'BEGIN replayed without a CHALLENGE');
    await attacker.challenge();
    assert.equal((await attacker.command(capturedBegin)).err, ErrorCode.AUTH_FAILED, 'BEGIN replayed on a fresh nonce');
    await attacker.challenge();
    assert.equal((await attacker.command(capturedReboot)).err, ErrorCode.AUTH_FAILED, 'REBOOT replayed');
    await owner.connect().challenge();
    assert.equal((await owner.command(capturedBegin)).err, ErrorCode.AUTH_FAILED, 'even on the owner link: the tag names the old nonce');
    assert.equal(rig.device.machine.restarts.length, 1);
    assert.equal(rig.device.flash.opCount, opsBefore, 'nothing written by the replays');
  });

  it('the BEGIN tag covers begin[1..76]: a changed chunk_size fails the tag; a non-zero base_sha256 is BAD_PARAMETER first', async () => {
    const key = randomBytes(32);
    const rig = makeRig({ deviceKey: key });
    const c = new Central(rig, 0, 247, key).connect();
    await c.challenge();
    const good = c.beginRequest(rawTransfer(newImage()));
    const flipped = Buffer.from(good);
    flipped[60] ^= 1; // inside base_sha256: with encoding 0 a parameter error, checked before the tag
    assert.equal((await c.command(flipped)).err, ErrorCode.BAD_PARAMETER);
    const moved = Buffer.from(good);
    moved[12] ^= 1; // chunk_size high byte: still a valid request, but not the one the tag was made for
    assert.equal((await c.command(moved)).err, ErrorCode.AUTH_FAILED);
  });

  it("per-device keys: the fleet derives HKDF-SHA256(master, 'BLEOTA2-DEVICE-KEY', device_id); device A's key is refused by device B", async () => {
    const master = randomBytes(32);
    const fleet = await createSimFleet({
      devices: [
        { name: 'dev-a', chip: 'esp32c3', version: '1.0.0' },
        { name: 'dev-b', chip: 'esp32c3', version: '1.0.0' },
        { name: 'dev-c', chip: 'esp32c3', version: '1.0.0', fleetKey: Buffer.alloc(32, 7) },
      ],
      masterKey: master,
      releaseKeys: [releaseKey.publicPoint],
      clock: 'virtual',
    });
    try {
      const keyOf = (name: string): Buffer | null => (fleet.devices.get(name) as SimDevice).flash.nvs.deviceKey;
      for (const name of ['dev-a', 'dev-b']) {
        const id = Buffer.from((fleet.devices.get(name) as SimDevice).address.replace(/:/g, ''), 'hex');
        const expected = Buffer.from(hkdfSync('sha256', master, Buffer.from('BLEOTA2-DEVICE-KEY'), id, 32));
        assert.ok(keyOf(name)?.equals(expected), `${name}: derived key`);
        assert.ok(deriveDeviceKey(master, id).equals(expected));
      }
      assert.equal(keyOf('dev-c'), null, 'a device with its own fleet key keeps it');
      assert.ok((fleet.devices.get('dev-c') as SimDevice).flash.nvs.fleetKey?.equals(Buffer.alloc(32, 7)));
      for (const name of ['dev-a', 'dev-b', 'dev-c']) {
        assert.deepEqual((fleet.devices.get(name) as SimDevice).settings.releaseKeys, [releaseKey.publicPoint], `${name}: fleet release keys`);
      }
    } finally {
      await fleet.close();
    }
    const a = makeRig({ name: 'dev-a' });
    const keyA = deriveDeviceKey(master, deviceIdOf(a));
    const b = makeRig({ name: 'dev-b', deviceKey: deriveDeviceKey(master, Buffer.from(makeRig({ name: 'dev-b' }).device.address.replace(/:/g, ''), 'hex')) });
    const c = new Central(b, 0, 247, keyA).connect();
    assert.equal((await c.begin(rawTransfer(newImage()))).err, ErrorCode.AUTH_FAILED);
    assert.equal((await c.tagged(Op.REBOOT)).err, ErrorCode.AUTH_FAILED);
    assertNothingWritten(b, "device A's key on device B");
  });
});

describe('sim-device v2.1: key settings', () => {
  it('refuses malformed keys with typed errors', async () => {
    const bad = (config: Parameters<typeof makeRig>[0], code: string) => assert.throws(() => makeRig(config), (e: unknown) => (e as { code?: string }).code === code);
    bad({ deviceKey: Buffer.alloc(31) }, 'BAD_FLEET_KEY');
    bad({ releaseKeys: [Buffer.alloc(65)] }, 'BAD_PARAMETER'); // no 0x04 prefix
    bad({ releaseKeys: [releaseKey.publicPoint.subarray(0, 64)] }, 'BAD_PARAMETER');
    bad({ releaseKeys: Array.from({ length: 5 }, () => releaseKey.publicPoint) }, 'BAD_PARAMETER');
    bad({ provisioningWindowMs: -1 }, 'BAD_PARAMETER');
    bad({ releaseFloor: 1.5 }, 'BAD_PARAMETER');
    await assert.rejects(createSimFleet({ devices: [], masterKey: Buffer.alloc(16) }), (e: unknown) => (e as { code?: string }).code === 'BAD_FLEET_KEY');
  });

  it('device_key wins over the legacy fleet_key as the session key', async () => {
    const deviceKey = randomBytes(32);
    const fleetKey = randomBytes(32);
    const rig = makeRig({ deviceKey, fleetKey });
    assert.equal((await new Central(rig, 0, 247, fleetKey).connect().tagged(Op.ABORT)).err, ErrorCode.AUTH_FAILED);
    assert.equal((await new Central(rig, 1, 247, deviceKey).connect().tagged(Op.ABORT)).err, 0);
  });
});

describe('sim-device v2.1: the development opt-out with keys', () => {
  it('a session key overrides the opt-out: tags still required, caps bit 9 clear', async () => {
    const key = randomBytes(32);
    const rig = makeRig({ deviceKey: key, allowUnauthenticated: true });
    const c = new Central(rig).connect();
    assert.equal(((await c.challenge()).caps ?? 0) & (CapBit.UNAUTH | Caps.FLEET_KEY_REQUIRED), Caps.FLEET_KEY_REQUIRED);
    assert.equal((await c.tagged(Op.REBOOT, Buffer.alloc(16))).err, ErrorCode.AUTH_FAILED);
    assert.equal((await c.begin(rawTransfer(newImage()))).err, ErrorCode.AUTH_REQUIRED);
  });

  it('release keys with the opt-out and no session key: BEGIN still needs a manifest, tagged commands pass (caps bits 6 and 9)', async () => {
    const rig = makeRig({ releaseKeys: [releaseKey.publicPoint], allowUnauthenticated: true });
    const c = new Central(rig).connect();
    assert.equal(((await c.challenge()).caps ?? 0) & (CapBit.MANIFEST | CapBit.UNAUTH | CapBit.NOT_PROVISIONED), CapBit.MANIFEST | CapBit.UNAUTH);
    assert.equal((await c.begin(rawTransfer(newImage()))).err, Err.MANIFEST_REQUIRED);
    assert.equal((await c.tagged(Op.ABORT)).err, 0);
  });
});

describe('sim-device v2.1: PROVISION', () => {
  it('inside the window: caps bit 8, PROVISION stores the session key (0x88 00) and updates then need its tag', async () => {
    const rig = makeRig({ allowUnauthenticated: false, provisioningWindowMs: 120_000 });
    const c = new Central(rig).connect();
    const caps = (await c.challenge()).caps ?? 0;
    assert.equal(caps & (CapBit.WINDOW | CapBit.NOT_PROVISIONED), CapBit.WINDOW | CapBit.NOT_PROVISIONED);
    assert.deepEqual(await c.command(Buffer.from([0x08, 1, 2])), { op: 0x88, err: ErrorCode.BAD_LENGTH });
    const key = randomBytes(32);
    assert.deepEqual(await c.command(encodeProvision(key)), { op: 0x88, err: 0 });
    assert.ok(rig.device.flash.nvs.deviceKey?.equals(key), 'NVS device_key');
    const after = (await c.challenge()).caps ?? 0;
    assert.equal(after & (Caps.FLEET_KEY_REQUIRED | CapBit.NOT_PROVISIONED), Caps.FLEET_KEY_REQUIRED);
    assert.equal((await c.begin(rawTransfer(newImage()))).err, ErrorCode.AUTH_FAILED, 'untagged BEGIN after provisioning');
    const owner = new Central(rig, 1, 247, key).connect();
    assert.equal((await owner.update(rawTransfer(newImage()))).err, 0);
    await afterReboot(rig);
    assert.ok(rig.device.flash.nvs.deviceKey?.equals(key), 'the key survives the reboot');
  });

  it('outside the window (closed, or none configured): PROVISION is INVALID_STATE and caps bit 8 is clear', async () => {
    const rig = makeRig({ allowUnauthenticated: false, provisioningWindowMs: 5_000 });
    const c = new Central(rig).connect();
    await sleep(rig.clock, 5_100);
    assert.equal(((await c.challenge()).caps ?? 0) & CapBit.WINDOW, 0);
    assert.equal((await c.readStatus()).caps & CapBit.WINDOW, 0);
    assert.deepEqual(await c.command(encodeProvision(randomBytes(32))), { op: 0x88, err: ErrorCode.INVALID_STATE });
    assert.equal(rig.device.flash.nvs.deviceKey, null);
    const none = makeRig({ allowUnauthenticated: false });
    assert.deepEqual(await new Central(none).connect().command(encodeProvision(randomBytes(32))), { op: 0x88, err: ErrorCode.INVALID_STATE });
  });
});

describe('sim-device v2.1: signed manifests', () => {
  const keyed = (over: Parameters<typeof makeRig>[0] = {}, options: Parameters<typeof makeRig>[1] = {}): Rig =>
    makeRig({ releaseKeys: [releaseKey.publicPoint], ...over }, options);

  it('release keys without a session key: caps bit 6; BEGIN without a manifest is MANIFEST_REQUIRED, tagged commands NOT_PROVISIONED', async () => {
    const rig = keyed();
    const c = new Central(rig).connect();
    const caps = (await c.challenge()).caps ?? 0;
    assert.equal(caps & (CapBit.MANIFEST | CapBit.NOT_PROVISIONED | Caps.FLEET_KEY_REQUIRED), CapBit.MANIFEST);
    assert.equal((await c.begin(rawTransfer(newImage()))).err, Err.MANIFEST_REQUIRED);
    assert.equal((await c.tagged(Op.REBOOT)).err, Err.NOT_PROVISIONED);
    assertNothingWritten(rig, 'no manifest');
  });

  it('refuses malformed manifests and unknown key_ids with MANIFEST_INVALID at BEGIN, before any flash write', async () => {
    const rig = keyed();
    const c = new Central(rig).connect();
    const image = newImage();
    const t = rawTransfer(image);
    const good = manifestFor(image);
    const cases: Array<[string, Buffer]> = [];
    const magic = Buffer.from(good);
    magic[0] = 0x58;
    cases.push(['bad magic', magic]);
    const format = Buffer.from(good);
    format[4] = 2;
    cases.push(['format 2', format]);
    cases.push(['unknown key_id', manifestFor(image, { keyId: 1 })]);
    const keyId4 = Buffer.from(good);
    keyId4[5] = 4;
    cases.push(['key_id 4', keyId4]);
    const short = Buffer.alloc(8);
    short.write('BOM1');
    short[4] = 1;
    short.writeUInt16LE(8, 6);
    cases.push(['8-byte manifest', short]);
    for (const [what, manifest] of cases) {
      assert.equal((await c.command(c.beginRequest(t, { manifest }))).err, Err.MANIFEST_INVALID, what);
    }
    assertNothingWritten(rig, 'invalid manifests');
    const b = await c.command(c.beginRequest(t, { manifest: good }));
    assert.equal(b.err, 0, 'the good manifest');
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
    assert.ok(rig.device.flash.opCount > 0, 'the counter sees the accepted transfer write');
    assert.equal((await c.end(0)).err, 0);
  });

  it('a forged, tampered or unsigned manifest: BEGIN answered at once, then SESSION_ABORTED MANIFEST_INVALID from the writer before anything is erased', async () => {
    const image = newImage();
    const t = rawTransfer(image);
    const good = manifestFor(image);
    const tampered = Buffer.from(good);
    tampered[120] ^= 1; // a byte of app_version
    const zeroSig = Buffer.from(good);
    zeroSig.fill(0, 160);
    const cases: Array<[string, Buffer]> = [
      ['signed by another key', manifestFor(image, {}, otherKey.privateKey)],
      ['a signed byte changed', tampered],
      ['no signature (zeros)', zeroSig],
    ];
    for (const [what, manifest] of cases) {
      const rig = keyed();
      const c = new Central(rig).connect();
      const sentAt = rig.clock.now();
      const b = await c.command(c.beginRequest(t, { manifest }));
      assert.equal(b.err, 0, `${what}: the signature is not checked at BEGIN`);
      assert.ok(rig.clock.now() - sentAt < 1, `${what}: answered without the verify time`);
      // The client streams its first window; the writer, busy verifying, takes nothing.
      for (let off = 0; off < b.window; off += b.chunkSize) c.data(off, t.payload.subarray(off, Math.min(off + b.chunkSize, b.window)));
      await until(rig.clock, () => c.fresh().some((n) => n.op === Op.SESSION_ABORTED && n.err === Err.MANIFEST_INVALID) || rig.device.flash.opCount > 0, 2000);
      assertNothingWritten(rig, what);
      assert.ok(!rig.host.control(0).some((n) => n.op === Op.DATA_ACK), `${what}: no byte acknowledged`);
      const s = await c.readStatus();
      assert.equal(s.lastResult, Err.MANIFEST_INVALID, `${what}: recorded`);
      assert.equal(s.sessionState, 0, `${what}: back to IDLE`);
    }
  });

  it('refuses a manifest that does not match the BEGIN or the device (MANIFEST_MISMATCH) or is older than the floor (RELEASE_TOO_OLD)', async () => {
    const rig = keyed({ releaseFloor: 5 });
    const c = new Central(rig).connect();
    const image = newImage();
    const t = rawTransfer(image);
    const id = deviceIdOf(rig);
    const cases: Array<[string, Buffer, number]> = [
      ['image_sha256', manifestFor(image, { release: 5, imageSha256: sha256(Buffer.from('other')) }), Err.MANIFEST_MISMATCH],
      ['image_size', manifestFor(image, { release: 5, imageSize: image.length + 1 }), Err.MANIFEST_MISMATCH],
      ['base_sha256 bound to a delta', manifestFor(image, { release: 5, baseSha256: Buffer.alloc(32, 9) }), Err.MANIFEST_MISMATCH],
      ['another chip', manifestFor(image, { release: 5, chipId: CHIP_IDS.esp32 }), Err.MANIFEST_MISMATCH],
      ['device not in the allow-list', manifestFor(image, { release: 5, deviceIds: [Buffer.from('0a0b0c0d0e0f', 'hex')] }), Err.MANIFEST_MISMATCH],
      ['older release', manifestFor(image, { release: 4 }), Err.RELEASE_TOO_OLD],
    ];
    for (const [what, manifest, err] of cases) assert.equal((await c.command(c.beginRequest(t, { manifest }))).err, err, what);
    assertNothingWritten(rig, 'mismatched manifests');
    const listed = manifestFor(image, { release: 5, deviceIds: [Buffer.from('0a0b0c0d0e0f', 'hex'), id] });
    assert.equal((await c.command(c.beginRequest(t, { manifest: listed }))).err, 0, 'listed device, release = floor');
  });

  it('a manifest on a device without release keys is MANIFEST_INVALID (unknown key_id)', async () => {
    const rig = makeRig({ allowUnauthenticated: true });
    const c = new Central(rig).connect();
    const image = newImage();
    assert.equal((await c.command(c.beginRequest(rawTransfer(image), { manifest: manifestFor(image) }))).err, Err.MANIFEST_INVALID);
  });

  it('refuses at the 288-byte header check, before the first flash write, an image whose descriptor differs from the manifest', async () => {
    for (const [what, over] of [
      ['app_version', { appVersion: '9.9.9' }],
      ['project_name', { projectName: 'other_app' }],
      ['secure_version', { secureVersion: 3 }],
    ] as const) {
      const rig = keyed();
      const c = new Central(rig).connect();
      const image = newImage();
      const t = rawTransfer(image);
      const b = await c.begin(t, { manifest: manifestFor(image, over) });
      assert.equal(b.err, 0, what);
      await assert.rejects(c.send(t.payload, { chunkSize: b.chunkSize, window: b.window }), new RegExp(`SESSION_ABORTED ${Err.MANIFEST_MISMATCH}`), what);
      assertNothingWritten(rig, what);
      assert.equal((await c.readStatus()).lastResult, Err.MANIFEST_MISMATCH);
    }
  });

  it('answers BEGIN at once; the writer verifies for one modeled SHA-256 + ECDSA P-256 time while Data fills the window unacknowledged; the host is not stalled by it', async () => {
    for (const chip of ['esp32c3', 'esp32c6'] as const) {
      const rig = keyed({ chip, allowUnauthenticated: true });
      const c = new Central(rig).connect();
      const image = newImage('1.1.0', chip);
      const t = rawTransfer(image);
      const manifest = manifestFor(image, { chipId: CHIP_IDS[chip] });
      const sentAt = rig.clock.now();
      const r = await c.command(c.beginRequest(t, { manifest }));
      assert.equal(r.err, 0);
      const answeredAt = rig.host.sent.filter((n) => n.characteristic === CONTROL_CHAR_UUID && n.data[0] === 0x82).at(-1)?.at ?? NaN;
      assert.ok(answeredAt - sentAt < 1, `${chip}: answered after ${answeredAt - sentAt} ms`);
      const verifyMs = manifestCheckMs(chip, 160);
      for (let off = 0; off < r.window; off += r.chunkSize) c.data(off, t.payload.subarray(off, Math.min(off + r.chunkSize, r.window)));
      await until(rig.clock, () => rig.host.control(0).some((n) => n.op === Op.DATA_ACK), 5000, 1);
      const firstAckAt = rig.host.sent.find((n) => n.characteristic === CONTROL_CHAR_UUID && n.data[0] === Op.DATA_ACK)?.at ?? NaN;
      assert.ok(firstAckAt >= sentAt + verifyMs - 1e-9, `${chip}: first ACK at ${firstAckAt - sentAt} ms, verify ${verifyMs} ms`);
      assert.ok(firstAckAt < sentAt + verifyMs + 50, `${chip}: the writer starts right after the verify`);
      assert.ok(!rig.host.stalls.some((s) => s.at < sentAt + verifyMs && s.ms >= verifyMs - 1), `${chip}: the BLE host is not stalled by the verify`);
    }
    assert.ok(manifestCheckMs('esp32c3', 160) > 134 && manifestCheckMs('esp32c6', 160) < 28);
  });
});

describe('sim-device v2.1: release floor', () => {
  async function signedUpdate(c: Central, image: Buffer, release: number): Promise<number> {
    const t: Transfer = rawTransfer(image);
    const desc = image.subarray(32 + 16, 32 + 48);
    const appVersion = desc.subarray(0, desc.indexOf(0)).toString();
    const b = await c.begin(t, { manifest: manifestFor(image, { release, appVersion }) });
    if (b.err !== 0) return b.err;
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
    return (await c.end(1)).err;
  }

  it('raised to the release at CONFIRM (host policy), not at ROLLBACK; kept across reboots; older releases then refused', async () => {
    const rig = makeRig({ confirmPolicy: 'host', releaseKeys: [releaseKey.publicPoint], allowUnauthenticated: true });
    let c = new Central(rig).connect();
    assert.equal(await signedUpdate(c, newImage('1.1.0'), 7), 0);
    await afterReboot(rig);
    c = new Central(rig).connect();
    let s = await c.readStatus();
    assert.equal(s.otaStateName, 'pending-verify');
    assert.equal(s.releaseFloor, 0, 'not raised at install');
    assert.equal((await c.tagged(Op.ROLLBACK)).err, 0);
    await afterReboot(rig);
    c = new Central(rig).connect();
    assert.equal((await c.readStatus()).releaseFloor, 0, 'not raised at rollback');
    assert.equal(await signedUpdate(c, newImage('1.2.0'), 7), 0);
    await afterReboot(rig);
    c = new Central(rig).connect();
    assert.equal((await c.tagged(Op.CONFIRM)).err, 0);
    s = await c.readStatus();
    assert.equal(s.releaseFloor, 7, 'raised at CONFIRM');
    assert.equal(s.otaStateName, 'valid');
    assert.equal((await c.tagged(Op.REBOOT)).err, 0);
    await afterReboot(rig);
    c = new Central(rig).connect();
    assert.equal((await c.readStatus()).releaseFloor, 7, 'persisted (NVS rel_floor)');
    assert.equal(await signedUpdate(c, newImage('1.3.0'), 6), Err.RELEASE_TOO_OLD);
  });

  it('raised at auto-confirm after the first boot diagnostics pass', async () => {
    const rig = makeRig({ releaseKeys: [releaseKey.publicPoint], allowUnauthenticated: true });
    const c = new Central(rig).connect();
    assert.equal(await signedUpdate(c, newImage('1.1.0'), 3), 0);
    await afterReboot(rig);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.otaStateName, 'valid');
    assert.equal(s.releaseFloor, 3);
    assert.equal(rig.device.flash.nvs.releaseFloor, 3);
  });
});

describe('sim-device v2.1: signed images and Status format 2', () => {
  it('signedImagesRequired: caps bit 5; an image without a Secure Boot V2 signature block is refused at END (VALIDATION_FAILED)', async () => {
    const rig = makeRig({ signedImagesRequired: true });
    const c = new Central(rig).connect();
    assert.equal(((await c.challenge()).caps ?? 0) & CapBit.SIGNED, CapBit.SIGNED);
    const end = await c.update(rawTransfer(newImage()), 0);
    assert.equal(end.err, ErrorCode.VALIDATION_FAILED);
    assert.equal((await c.readStatus()).lastResult, ErrorCode.VALIDATION_FAILED);
    const signed = signV2(newImage('1.2.0'));
    assert.equal((await c.update(rawTransfer(signed), 0)).err, 0, 'with a signature block');
    const plain = makeRig();
    assert.equal(((await new Central(plain).connect().challenge()).caps ?? 0) & CapBit.SIGNED, 0);
  });

  it('Status format 2: 252 bytes with update_partition_size, release_floor, device_id (the BLE address) and release_key_ids', async () => {
    const rig = makeRig({ releaseKeys: [releaseKey.publicPoint, otherKey.publicPoint], releaseFloor: 9, otaPartitionSize: 0x180000, address: 'C4:5B:BE:01:02:03' });
    const c = new Central(rig).connect();
    const raw = await rig.device.onRead('5c4e00016a8b4f0e9a3d32b1e07a0001', '5c4e00046a8b4f0e9a3d32b1e07a0001', 0);
    assert.equal(raw.length, 252);
    assert.equal(raw[0], 2);
    assert.ok(raw.subarray(247).equals(Buffer.alloc(5)), 'reserved bytes zero');
    const s = await c.readStatus();
    assert.equal(s.updatePartitionSize, 0x180000);
    assert.equal(s.releaseFloor, 9);
    assert.equal(s.deviceId, 'c4:5b:be:01:02:03');
    assert.equal(s.releaseKeyIds, 0b11);
  });

  it('Status notifications carry the first min(MTU-3, 252) bytes', async () => {
    for (const [mtu, bytes] of [[247, 244], [517, 252], [255, 252]] as const) {
      const rig = makeRig({ maxMtu: 517 });
      const c = new Central(rig, 0, mtu).connect();
      const t = rawTransfer(newImage());
      assert.equal((await c.begin(t)).err, 0);
      const status = rig.host.sent.filter((n) => n.characteristic === '5c4e00046a8b4f0e9a3d32b1e07a0001');
      assert.ok(status.length > 0);
      for (const n of status) assert.equal(n.data.length, bytes, `MTU ${mtu}`);
    }
  });
});
