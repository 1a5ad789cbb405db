/**
 * Conformance: every docs/PROTOCOL.md sequence, and the device-side vectors, against each device
 * implementation — the TypeScript model (lib/sim/device) and the C firmware twin (lib/sim/twin-device)
 * — through the simulated fleet (virtual radio + real noble + lib/protocol's clients).
 * A missing twin binary FAILS the twin half (issue 3 is not resolved without it).
 */
import { strict as assert } from 'assert';
import { createHash, createPrivateKey, randomBytes } from 'crypto';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { deflateSync } from 'zlib';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { appHash, buildAppImage, fileSha256 } from '../../lib/image';
import { CHIP_IDS } from '../../lib/image/chips';
import { seedFromText } from '../../lib/image/prng';
import { baseImageBytes, encodePatch, ImageStore, type PatchRecord } from '../../lib/delta';
import { flashDevice, verifyDevice } from '../../lib/ota';
import { deriveDeviceKey, generateReleaseKeyPair, manifestForImage, signManifest, type Manifest, type ManifestOptions } from '../../lib/security';
import { OtaError } from '../../lib/errors';
import { decodeNotification, encodeCommand, encodeStagingChunk } from '../../lib/protocol/codec';
import { CONTROL_CHAR_UUID, Caps, DATA_CHAR_UUID, ErrorCode, LAST_RESULT_NONE, OTA_SERVICE_UUID, Op, STAGING_OFFSET_FLAG, STATUS_CHAR_UUID } from '../../lib/protocol/constants';
import { decodeAdvertisement } from '../../lib/protocol/advertisement';
import { detectProtocol } from '../../lib/protocol/detect';
import { LegacyClient } from '../../lib/protocol/legacy-client';
import { prepareDeltaPayload, prepareTransferPayload } from '../../lib/protocol/payload';
import { V2Client } from '../../lib/protocol/v2-client';
import { readFlash } from '../../lib/sim/campaign/flash-view';
import { SimDevice } from '../../lib/sim/device';
import type { ChipName } from '../../lib/sim/types';
import { sleep } from '../../lib/clock';
import { loadVectors } from '../protocol/vectors';
import { ConformanceEnv, Implementation, twinAvailable, twinTargetExists } from './env';

const IMPLEMENTATIONS: Implementation[] = ['model', 'twin'];
const IMAGE_SIZE = 96 * 1024;
const vectors = loadVectors();
const vectorHex = (name: string): string => {
  const v = vectors.vectors.find((x) => x.name === name);
  assert.ok(v, `vector ${name}`);
  return v.hex;
};

function image(version = '2.0.0', chip: ChipName = 'esp32c3', secureVersion = 0, size = IMAGE_SIZE): Buffer {
  return buildAppImage({ chip, version, secureVersion, size, projectName: 'conformance' });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function rejectsWith(p: Promise<unknown>, code: string): Promise<OtaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OtaError, `expected OtaError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}


/** One release key pair for the suite (key_id 0): devices hold the public point, manifests are signed with the private key. */
const RELEASE = generateReleaseKeyPair();
const RELEASE_PRIVATE = createPrivateKey(RELEASE.privateKeyPem);
const signFor = (img: Buffer, options: ManifestOptions = {}): Manifest => manifestForImage(img, { release: 10, ...options }, RELEASE_PRIVATE);
/** A command response or SESSION_ABORTED notification carries its error code in byte 1 (PROTOCOL.md §6). */
const errOf = (notification: Buffer): number => notification[1];

/** A raw BEGIN for `img` (encoding raw, chunk 200) with an optional manifest and a given tag (default zero). */
function rawBegin(img: Buffer, manifest?: Buffer, tag: Buffer = Buffer.alloc(16)): Buffer {
  return encodeCommand({
    op: Op.BEGIN,
    imageSize: img.length,
    transferSize: img.length,
    encoding: 0,
    flags: manifest ? 0x02 : 0,
    chunkSize: 200,
    sha256: fileSha256(img),
    tag,
    ...(manifest ? { manifest } : {}),
  });
}

/**
 * Delta (§13): both implementations start from the same synthetic running image (chip, version 1.0.0,
 * project ble_ota_app, 128 KiB, lib/sim); the new image is the same app (same content seed) at 1.1.0.
 */
const DELTA_BASE = buildAppImage({ chip: 'esp32c3', version: '1.0.0', secureVersion: 0, projectName: 'ble_ota_app', size: 128 * 1024 });
const DELTA_NEW = buildAppImage({ chip: 'esp32c3', version: '1.1.0', secureVersion: 0, projectName: 'ble_ota_app', size: 128 * 1024, seed: seedFromText('esp32c3/1.0.0/ble_ota_app/0') });
const DELTA_BASE_LEN = baseImageBytes(DELTA_BASE).length;

/** diff[i] = new[at + i] - base[at + i] (mod 256). */
const diffAgainstBase = (at: number, len: number): Uint8Array => Uint8Array.from(DELTA_NEW.subarray(at, at + len), (b, i) => (b - DELTA_BASE[at + i]) & 0xff);

/**
 * A patch of 2 KiB steps, half diff against the base and half extra bytes, so its stream is long (extra
 * bytes compress like the image) and base reads run on both sides of a resume.
 */
const RESUME_PATCH = (() => {
  const records: PatchRecord[] = [];
  for (let at = 0; at < DELTA_NEW.length; at += 2048) {
    const diffLen = Math.max(0, Math.min(1024, DELTA_BASE_LEN - at, DELTA_NEW.length - at));
    const extraEnd = Math.min(at + 2048, DELTA_NEW.length);
    records.push({ diff: diffAgainstBase(at, diffLen), extra: DELTA_NEW.subarray(at + diffLen, extraEnd), seek: extraEnd - at - diffLen });
  }
  return encodePatch(records);
})();

/** The first 40 KiB of the new image as extra bytes: the header passes and flash is written before the bad part. */
const HEAD = 40 * 1024;
const head = (seek = 0): PatchRecord => ({ diff: new Uint8Array(0), extra: DELTA_NEW.subarray(0, HEAD), seek });
const BAD_PATCHES: { what: string; patch: Buffer; sizeMismatch?: boolean }[] = [
  { what: 'a diff read past the end of the base', patch: encodePatch([head(DELTA_BASE_LEN - 8), { diff: new Uint8Array(16), extra: new Uint8Array(0), seek: 0 }]) },
  { what: 'a diff read below the base', patch: encodePatch([head(-1), { diff: new Uint8Array(16), extra: new Uint8Array(0), seek: 0 }]) },
  { what: 'output past image_size', patch: encodePatch([head(), { diff: new Uint8Array(0), extra: Buffer.alloc(DELTA_NEW.length - HEAD + 1), seek: 0 }]) },
  { what: 'bytes after the record that completes image_size', patch: Buffer.concat([RESUME_PATCH, Buffer.from([0])]) },
  { what: 'a uvarint of 6 bytes', patch: Buffer.concat([encodePatch([head()]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x00])]) },
  { what: 'a patch that ends before image_size', patch: encodePatch([head()]), sizeMismatch: true },
];

for (const impl of IMPLEMENTATIONS) {
  describe(`conformance: ${impl}`, function () {
    this.timeout(60000);
    let env: ConformanceEnv | null = null;
    const open = async (config = {}, link?: string) => (env = await ConformanceEnv.create(impl, config, link));

    before(function () {
      if (impl !== 'twin' || twinAvailable()) return;
      if (!twinTargetExists()) this.skip();
      throw new Error('The firmware twin is not built: run `make -C firmware/test twin` (firmware/build/ble_ota_twin is missing); the twin half of the conformance suite cannot pass without it.');
    });

    afterEach(async () => {
      await env?.close();
      env = null;
    });

    it('status read on a factory device (§4.5, §5) and its advertisement (§8)', async () => {
      const e = await open();
      const s = await e.client().readStatus();
      // Status format 2 (PROTOCOL.md §5): the update partition, no release floor yet, the device id = its address, no release keys.
      assert.equal(s.format, 2);
      assert.equal(s.updatePartitionSize, 0x1e0000);
      assert.equal(s.releaseFloor, 0);
      assert.equal(s.deviceId, e.address.toLowerCase());
      assert.equal(s.releaseKeyIds, 0);
      // A development build (no keys, unauthenticated updates allowed): not "not provisioned".
      assert.ok(s.capabilities.unauthenticatedAllowed && !s.capabilities.notProvisioned && !s.capabilities.manifestRequired);
      assert.equal(s.protoVersion, 2);
      assert.equal(s.chip, 'esp32c3');
      assert.equal(s.appVersion, '1.0.0');
      assert.equal(s.otaStateName, 'valid');
      assert.equal(s.sessionStateName, 'idle');
      assert.equal(s.lastResult, LAST_RESULT_NONE);
      assert.ok(s.capabilities.resume && s.capabilities.deflate);
      assert.equal(s.capabilities.fleetKeyRequired, false);
      const adv = decodeAdvertisement(e.lastSeen?.advertisement.manufacturerData as Buffer);
      assert.equal(adv.version, '1.0.0');
      assert.equal(adv.otaState, 'valid');
      assert.equal(adv.shaPrefix, s.runningSha256.slice(0, 8));
      assert.ok(e.lastSeen?.advertisement.serviceUuids.includes('5c4e00016a8b4f0e9a3d32b1e07a0001'));
    });

    for (const encoding of ['raw', 'deflate'] as const) {
      it(`fresh update, ${encoding} (§4.1): new image runs, Status and record match`, async () => {
        const e = await open();
        const img = image();
        const client = e.client();
        const info = await client.update({ image: img, encoding });
        assert.equal(info.encoding, encoding);
        assert.equal(info.resumeOffset, 0);
        if (encoding === 'deflate') assert.ok(client.bytesOnAir < img.length * 0.8, `deflate sent ${client.bytesOnAir} bytes for ${img.length}`);
        else assert.ok(client.bytesOnAir > img.length);
        await e.reconnectAfterReboot();
        const s = await e.client().readStatus();
        assert.equal(s.appVersion, '2.0.0');
        assert.equal(s.otaStateName, 'valid', 'auto policy with passing diagnostics marks the image valid');
        assert.equal(s.runningSha256, appHash(img).toString('hex'));
        assert.equal(s.lastSha256, sha256(img));
        assert.equal(s.lastResultName, 'OK');
        assert.equal(s.last.rolledBack, false);
        assert.equal(s.last.diagnosticsRan && s.last.diagnosticsPassed, true);
        assert.equal(decodeAdvertisement(e.lastSeen?.advertisement.manufacturerData as Buffer).version, '2.0.0');
      });
    }

    it('resume after a disconnect (§4.2): continues from the kept offset', async () => {
      const e = await open();
      const img = image();
      const first = e.client();
      await first.open();
      await first.begin({ image: img, encoding: 'raw', resume: true });
      e.fleet.radio.injectFault(e.address, { kind: 'disconnectAfterBytes', bytes: 40000 });
      await rejectsWith(first.transfer(), 'DISCONNECTED');
      await e.connect();
      const kept = await e.client().readStatus();
      assert.equal(kept.sessionStateName, 'suspended');
      assert.ok(kept.sessionOffset > 0 && kept.sessionOffset <= 40000, `kept ${kept.sessionOffset}`);
      const second = e.client();
      await second.open();
      const info = await second.begin({ image: img, payload: first.transferPayload ?? undefined, resume: true });
      assert.equal(info.resumeOffset, kept.sessionOffset);
      await second.transfer();
      await second.end();
      assert.ok(second.bytesOnAir < img.length, 'the second connection did not resend everything');
      await e.reconnectAfterReboot();
      assert.equal((await e.client().readStatus()).runningSha256, appHash(img).toString('hex'));
    });

    it('abort (§4.3): cancelling sends ABORT, the device returns to IDLE and keeps its image', async () => {
      const e = await open();
      const controller = new AbortController();
      const client = e.client({
        signal: controller.signal,
        onProgress: (p) => {
          if (p.bytesDone > 30000) controller.abort();
        },
      });
      await rejectsWith(client.update({ image: image(), encoding: 'raw' }), 'CANCELLED');
      assert.ok(e.controlHex().includes(vectorHex('abort-ok')), 'the device answered ABORT with 84 00');
      const s = await e.client().readStatus();
      assert.equal(s.sessionStateName, 'idle');
      assert.equal(s.appVersion, '1.0.0');
      assert.equal(await e.client().abort().then(() => 'ok'), 'ok', 'ABORT without a session is OK too');
    });

    it('confirm with host policy (§4.4): pending-verify until CONFIRM, then valid; again → NOT_PENDING', async () => {
      const e = await open({ confirmPolicy: 'host' });
      const img = image();
      await e.client().update({ image: img, encoding: 'auto' });
      await e.reconnectAfterReboot();
      const client = e.client();
      const pending = await client.readStatus();
      assert.equal(pending.otaStateName, 'pending-verify');
      assert.equal(pending.confirmPolicyName, 'host');
      assert.ok(decodeAdvertisement(e.lastSeen?.advertisement.manufacturerData as Buffer).hostPolicy);
      await client.confirm();
      const confirmed = await client.readStatus();
      assert.equal(confirmed.otaStateName, 'valid');
      assert.ok(confirmed.last.confirmed);
      await rejectsWith(client.confirm(), 'DEVICE_NOT_PENDING');
    });

    it('BEGIN while pending verify (§4.4): INVALID_STATE, nothing changes; after CONFIRM the update works', async () => {
      const e = await open({ confirmPolicy: 'host' });
      await e.client().update({ image: image(), encoding: 'raw' });
      await e.reconnectAfterReboot();
      const before = await e.client().readStatus();
      assert.equal(before.otaStateName, 'pending-verify');
      const next = image('3.0.0');
      await rejectsWith(e.client().update({ image: next, encoding: 'raw' }), 'DEVICE_INVALID_STATE');
      assert.ok(e.controlHex().includes(vectorHex('begin-err-invalid-state')));
      const refused = await e.client().readStatus();
      assert.equal(refused.otaStateName, 'pending-verify');
      assert.equal(refused.sessionStateName, 'idle');
      assert.equal(refused.appVersion, '2.0.0');
      assert.equal(refused.lastSha256, before.lastSha256, 'the update record was not touched');
      assert.equal(refused.lastFlags, before.lastFlags);
      await e.client().confirm();
      await e.client().update({ image: next, encoding: 'raw' });
      await e.reconnectAfterReboot();
      const s = await e.client().readStatus();
      assert.equal(s.appVersion, '3.0.0');
      assert.equal(s.otaStateName, 'pending-verify');
      assert.equal(s.lastSha256, sha256(next));
    });

    it('ATT MTU 23 (§1, link mtu-23): every Control notification fits 20 bytes, Status is read, the update works', async () => {
      // noble always asks 256 (gatt.js _desired_mtu): MTU 23 is a device that offers no more.
      const e = await open({ maxMtu: 23 }, 'mtu-23');
      assert.equal(e.conn.mtu, 23);
      const statusNotifications: Buffer[] = [];
      await e.conn.subscribe(OTA_SERVICE_UUID, STATUS_CHAR_UUID, (d) => statusNotifications.push(Buffer.from(d)));
      const img = image('2.0.0', 'esp32c3', 0, 48 * 1024);
      const client = e.client();
      const info = await client.update({ image: img, encoding: 'deflate' });
      assert.equal(info.chunkSize, 23 - 3 - 4);
      assert.ok(e.recorder.control.length > 0);
      // The stack cuts a notification to MTU-3 bytes: each Control notification must still decode exactly (§2).
      for (const n of e.recorder.control) decodeNotification(n);
      assert.ok(statusNotifications.length > 0, 'the device notified Status changes');
      for (const n of statusNotifications) assert.equal(n.length, 20, 'a Status notification carries the first MTU-3 bytes');
      await e.reconnectAfterReboot();
      assert.equal(e.conn.mtu, 23);
      const s = await e.client().readStatus(); // long read of all 232 bytes
      assert.equal(s.appVersion, '2.0.0');
      assert.equal(s.runningSha256, appHash(img).toString('hex'));
      assert.equal(s.lastResultName, 'OK');
    });

    it('rollback with host policy (§4.4): the previous image boots and reports rolled back', async () => {
      const e = await open({ confirmPolicy: 'host' });
      await e.client().update({ image: image(), encoding: 'raw' });
      await e.reconnectAfterReboot();
      await e.client().rollback();
      await e.reconnectAfterReboot();
      const s = await e.client().readStatus();
      assert.equal(s.appVersion, '1.0.0');
      assert.ok(s.last.rolledBack);
      assert.ok(decodeAdvertisement(e.lastSeen?.advertisement.manufacturerData as Buffer).rolledBack);
      await rejectsWith(e.client().rollback(), 'DEVICE_NOT_PENDING');
    });

    it('authentication (§7): no key refused locally, wrong key AUTH_FAILED, the right key updates', async () => {
      const key = randomBytes(32);
      const e = await open({ fleetKey: key });
      const img = image();
      const none = e.client();
      await rejectsWith(none.update({ image: img, encoding: 'raw' }), 'FLEET_KEY_REQUIRED');
      await rejectsWith(e.client({ fleetKey: randomBytes(32) }).update({ image: img, encoding: 'raw' }), 'DEVICE_AUTH_FAILED');
      const s = await e.client().readStatus();
      assert.ok(s.capabilities.fleetKeyRequired);
      await e.client({ fleetKey: key }).update({ image: img, encoding: 'raw' });
      await e.reconnectAfterReboot();
      assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
    });

    it('authentication (§7): a tagged command without CHALLENGE gets AUTH_REQUIRED, a spent nonce too', async () => {
      const e = await open({ fleetKey: Buffer.from(vectors.fleetKey, 'hex') });
      const begin = Buffer.from(vectorHex('begin-deflate-resume-tagged'), 'hex');
      assert.equal((await e.rawControl(begin)).toString('hex'), vectorHex('begin-err-auth-required'));
      assert.equal((await e.rawControl(Buffer.from([Op.CHALLENGE]))).length, 20);
      // The vector's tag was made for another nonce: wrong tag, and the nonce is spent.
      assert.equal((await e.rawControl(begin)).toString('hex'), vectorHex('begin-err-auth-failed'));
      assert.equal((await e.rawControl(Buffer.from(vectorHex('confirm-tagged'), 'hex'))).toString('hex'), vectorHex('confirm-err-auth-required'));
    });

    it('wrong chip (§4.1): SESSION_ABORTED WRONG_CHIP before the first flash write', async () => {
      const e = await open();
      await rejectsWith(e.client().update({ image: image('2.0.0', 'esp32s3'), encoding: 'raw' }), 'DEVICE_WRONG_CHIP');
      assert.ok(e.controlHex().includes(vectorHex('session-aborted-wrong-chip')));
      const s = await e.client().readStatus();
      assert.equal(s.sessionStateName, 'idle');
      assert.equal(s.appVersion, '1.0.0');
    });

    it('too large (§4.1): IMAGE_TOO_LARGE at BEGIN', async () => {
      const e = await open({ otaPartitionSize: 256 * 1024 });
      await rejectsWith(e.client().update({ image: image('2.0.0', 'esp32c3', 0, 256 * 1024 + 4096), encoding: 'raw' }), 'DEVICE_IMAGE_TOO_LARGE');
      assert.ok(e.controlHex().includes(vectorHex('begin-err-image-too-large')));
    });

    it('downgrade (§4.1): a lower secure_version gets SESSION_ABORTED DOWNGRADE', async () => {
      const e = await open({ secureVersion: 3 });
      await rejectsWith(e.client().update({ image: image('2.0.0', 'esp32c3', 1), encoding: 'raw' }), 'DEVICE_DOWNGRADE');
      assert.ok(e.controlHex().includes(vectorHex('session-aborted-downgrade')));
    });

    it('hash mismatch (§4.1 step 5): END refuses, the boot partition stays', async () => {
      const e = await open();
      const img = image();
      const client = e.client();
      await client.open();
      const payload = { ...prepareTransferPayload(img, 'raw', Caps.DEFLATE), sha256: randomBytes(32) };
      await client.begin({ image: img, payload });
      await client.transfer();
      await rejectsWith(client.end(), 'DEVICE_HASH_MISMATCH');
      assert.ok(e.controlHex().includes(vectorHex('end-err-hash-mismatch')));
      const s = await e.client().readStatus();
      assert.equal(s.appVersion, '1.0.0');
      assert.equal(s.lastResultName, 'HASH_MISMATCH');
    });

    it('a lost packet (§3): GAP NAK, go-back, image intact', async () => {
      const e = await open();
      const img = image();
      const client = e.client();
      await client.open();
      await client.begin({ image: img, encoding: 'raw' });
      e.fleet.radio.injectFault(e.address, { kind: 'dropWrite', nth: 20 });
      await client.transfer();
      await client.end();
      const naks = e.recorder.control.map((b) => decodeNotification(b)).filter((n) => n.op === Op.DATA_NAK);
      assert.ok(naks.some((n) => (n as { err: number }).err === ErrorCode.GAP), 'the device sent a GAP NAK');
      assert.ok(client.retransmittedChunks > 0);
      await e.reconnectAfterReboot();
      assert.equal((await e.client().readStatus()).runningSha256, appHash(img).toString('hex'));
    });

    it('a lost last packet (§3): no NAK follows; the probe gets DUPLICATE and the transfer completes', async () => {
      const e = await open();
      const img = image();
      const client = e.client();
      await client.open();
      const info = await client.begin({ image: img, encoding: 'raw' });
      e.fleet.radio.injectFault(e.address, { kind: 'dropWrite', nth: Math.ceil(info.transferSize / info.chunkSize) });
      await client.transfer();
      await client.end();
      const naks = e.recorder.control.map((b) => decodeNotification(b)).filter((n) => n.op === Op.DATA_NAK);
      assert.ok(naks.some((n) => (n as { err: number }).err === ErrorCode.DUPLICATE), 'the device sent a DUPLICATE NAK');
    });

    it('device-side vectors: malformed commands, END and data without a session, CONFIRM when not pending', async () => {
      const e = await open();
      const hex = async (v: Buffer) => (await e.rawControl(v)).toString('hex');
      assert.equal(await hex(Buffer.from([0x0a])), vectorHex('unknown-opcode'));
      assert.equal(await hex(Buffer.from(vectorHex('begin-raw-no-key'), 'hex').subarray(0, 60)), vectorHex('begin-err-bad-length'));
      assert.equal(await hex(Buffer.from([Op.CHALLENGE, 0])), vectorHex('challenge-err-bad-length'));
      assert.equal(await hex(Buffer.from(vectorHex('end-reboot'), 'hex')), vectorHex('end-err-no-session'));
      assert.equal(await hex(Buffer.from(vectorHex('confirm-tagged'), 'hex')), vectorHex('confirm-err-not-pending'));
      assert.equal(await hex(Buffer.from(vectorHex('abort-no-key'), 'hex')), vectorHex('abort-ok'));
      const challengeBytes = await e.rawControl(encodeCommand({ op: Op.CHALLENGE }));
      assert.equal(challengeBytes.length, 20, 'CHALLENGE response: op, err, nonce[16], u16 caps (fits MTU 23)');
      const challenge = decodeNotification(challengeBytes) as { caps: number };
      assert.equal(challenge.caps, (await e.client().readStatus()).caps);
      const before = e.recorder.control.length;
      await e.conn.write('5c4e00016a8b4f0e9a3d32b1e07a0001', '5c4e00036a8b4f0e9a3d32b1e07a0001', Buffer.from(vectorHex('data-chunk'), 'hex'), true);
      const deadline = e.clock.now() + 2000;
      while (e.recorder.control.length === before && e.clock.now() < deadline) await new Promise((r) => e.clock.setTimer(() => r(undefined), 5));
      assert.equal(e.recorder.control[before]?.toString('hex'), vectorHex('data-nak-no-session'));
    });

    it('BUSY (§4.1): a second central cannot begin while the first is mid-transfer; the first update completes', async () => {
      const e = await open();
      // Central B: a second adapter on the same air, connected before A begins (the device keeps advertising).
      const other = await e.connectSecondCentral();
      const img = image();
      let bytesDone = 0;
      let doneAtBusy = -1;
      let probe: Promise<void> | null = null;
      const busyProbe = async () => {
        const clientB = new V2Client(other.conn, { clock: e.clock });
        const seen = await clientB.readStatus();
        assert.equal(seen.sessionStateName, 'receiving', 'B sees the session A holds');
        await rejectsWith(clientB.update({ image: image('3.0.0'), encoding: 'raw' }), 'DEVICE_BUSY');
        doneAtBusy = bytesDone;
        clientB.close();
      };
      const first = e.client({
        onProgress: (p) => {
          bytesDone = p.bytesDone;
          if (!probe && p.bytesDone > 16 * 1024) probe = busyProbe();
        },
      });
      await first.open();
      const info = await first.begin({ image: img, encoding: 'raw' });
      await first.transfer();
      assert.ok(probe, 'the probe ran during the transfer');
      await probe;
      assert.ok(doneAtBusy > 0 && doneAtBusy < info.transferSize, `B got BUSY mid-transfer (A at ${doneAtBusy} of ${info.transferSize})`);
      // B's own link got the CHALLENGE answer and the BUSY bytes; A's link saw neither.
      const hexB = other.recorder.control.map((b) => b.toString('hex'));
      assert.equal(hexB.length, 2, `B got ${hexB.join(' ')}`);
      assert.equal(other.recorder.control[0].length, 20);
      assert.equal(other.recorder.control[0][0], Op.CHALLENGE | 0x80);
      assert.equal(hexB[1], vectorHex('begin-err-busy'));
      assert.ok(!e.controlHex().includes(vectorHex('begin-err-busy')), 'A did not receive B\'s BUSY');
      assert.equal(e.controlHex().filter((h) => h.startsWith('8100')).length, 1, 'A got its own CHALLENGE answer only');
      await first.end();
      await e.reconnectAfterReboot();
      assert.ok(!other.conn.connected, 'the reboot dropped B too');
      const s = await e.client().readStatus();
      assert.equal(s.appVersion, '2.0.0');
      assert.equal(s.runningSha256, appHash(img).toString('hex'));
      assert.equal(s.lastSha256, sha256(img));
      assert.equal(s.lastResultName, 'OK');
    });


    describe('security (PROTOCOL.md §7, §12; issue 10)', () => {
      const releaseKeys = [RELEASE.publicKeySec1];

      /**
       * The device must refuse: through a client (closed afterwards) the error is `code`, whether at BEGIN or
       * as SESSION_ABORTED; no flash erase/program, the old image runs.
       */
      async function refusedBeforeFlash(e: ConformanceEnv, run: (client: V2Client) => Promise<unknown>, code: string, fleetKey?: Buffer): Promise<void> {
        const ops = e.flashOps();
        const client = e.client(fleetKey ? { fleetKey } : {});
        try {
          await rejectsWith(run(client), code);
        } finally {
          client.close();
        }
        assert.equal(e.flashOps(), ops, 'no flash erase/program for a refused update');
        const status = e.client();
        assert.equal((await status.readStatus()).appVersion, '1.0.0');
        status.close();
      }

      it('unsigned, forged and mismatched manifests are refused before any flash write', async () => {
        const e = await open({ releaseKeys });
        const img = image();
        assert.ok((await e.client().readStatus()).capabilities.manifestRequired);
        // No manifest: the client sends none (it leaves the judgement to lib/ota), the device refuses at BEGIN.
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw' }), 'DEVICE_MANIFEST_REQUIRED');
        assert.equal(errOf(await e.rawControl(rawBegin(img))), ErrorCode.MANIFEST_REQUIRED);
        // Forged: one bit of the signature changed. Refused at BEGIN, or by the writer before its first flash write
        // (SESSION_ABORTED MANIFEST_INVALID): either way nothing is erased or written.
        const forged = Buffer.from(signFor(img).bytes);
        forged[forged.length - 1] ^= 1;
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw', manifest: forged }), 'DEVICE_MANIFEST_INVALID');
        // A validly signed manifest of another image (digest and size differ).
        const other = image('2.0.1');
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw', manifest: signFor(other).bytes }), 'DEVICE_MANIFEST_MISMATCH');
        // Signed by a key the device does not hold (key_id 1 is not provisioned).
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw', manifest: signFor(img, { keyId: 1 }).bytes }), 'DEVICE_MANIFEST_INVALID');
        assert.equal((await e.client().readStatus()).sessionStateName, 'idle');
      });

      it('a manifest for another chip and a release below the floor are refused before any flash write', async () => {
        const e = await open({ releaseKeys, releaseFloor: 20 });
        const img = image();
        const good = signFor(img, { release: 30 });
        const otherChip = signManifest({ ...good, chipId: CHIP_IDS.esp32s3 }, RELEASE_PRIVATE);
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw', manifest: otherChip.bytes }), 'DEVICE_MANIFEST_MISMATCH');
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw', manifest: signFor(img, { release: 19 }).bytes }), 'DEVICE_RELEASE_TOO_OLD');
        const s = await e.client().readStatus();
        assert.equal(s.releaseFloor, 20);
        // The right manifest, at or above the floor, is taken — carried by BEGIN (flags bit1, the revision-2.1 path).
        await e.client().update({ image: img, encoding: 'raw', manifest: good.bytes });
        assert.ok(e.recorder.controlWrites.some((w) => w[0] === Op.BEGIN && w.length === 93 + good.bytes.length && (w[10] & 0x02) !== 0), 'BEGIN carried the manifest');
        await e.reconnectAfterReboot();
        assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
      });

      const manifestCommand = (manifest: Buffer): Buffer => encodeCommand({ op: Op.MANIFEST, manifest });

      it('MANIFEST then a plain 93-byte BEGIN installs; the BEGIN takes the stored manifest over (§2.4)', async () => {
        const e = await open({ releaseKeys });
        const img = image();
        const good = signFor(img);
        const client = e.client();
        assert.ok((await client.readStatus()).capabilities.manifestCommand, 'caps bit11');
        assert.equal(await client.sendManifest(good.bytes), true);
        await client.update({ image: img, encoding: 'raw', manifest: good.bytes });
        const writes = e.recorder.controlWrites;
        assert.deepEqual(writes.find((w) => w[0] === Op.MANIFEST), manifestCommand(good.bytes));
        const begin = writes.find((w) => w[0] === Op.BEGIN);
        assert.ok(begin && begin.length === 93 && (begin[10] & 0x02) === 0, `BEGIN of ${begin?.length} bytes`);
        assert.ok(e.controlHex().includes(vectorHex('manifest-ok')));
        await e.reconnectAfterReboot();
        assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
      });

      it('MANIFEST with a bad signature is answered OK; after BEGIN the writer ends the session with MANIFEST_INVALID before any flash write', async () => {
        const e = await open({ releaseKeys });
        const img = image();
        const forged = Buffer.from(signFor(img).bytes);
        forged[forged.length - 1] ^= 1;
        assert.equal((await e.rawControl(manifestCommand(forged))).toString('hex'), vectorHex('manifest-ok'));
        // a plain BEGIN on the same link uses it: accepted, then SESSION_ABORTED MANIFEST_INVALID
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw' }), 'DEVICE_MANIFEST_INVALID');
        assert.ok(e.controlHex().includes(vectorHex('session-aborted-manifest-invalid')));
        const s = await e.client().readStatus();
        assert.equal(s.lastResultName, 'MANIFEST_INVALID');
        assert.equal(s.sessionStateName, 'idle');
      });

      it("MANIFEST's own checks answer with BEGIN's codes; a BEGIN that differs from the stored manifest gets MANIFEST_MISMATCH; a link drop clears it", async () => {
        const e = await open({ releaseKeys, releaseFloor: 5 });
        const img = image();
        const good = signFor(img);
        const answer = async (manifest: Buffer) => (await e.rawControl(manifestCommand(manifest))).toString('hex');
        assert.equal(await answer(signManifest({ ...good, chipId: CHIP_IDS.esp32s3 }, RELEASE_PRIVATE).bytes), vectorHex('manifest-err-manifest-mismatch'));
        assert.equal(await answer(signFor(img, { keyId: 1 }).bytes), vectorHex('manifest-err-manifest-invalid'));
        assert.equal(await answer(signFor(img, { release: 4 }).bytes), vectorHex('manifest-err-release-too-old'));
        assert.equal((await e.rawControl(manifestCommand(good.bytes).subarray(0, 100))).toString('hex'), vectorHex('manifest-err-bad-length'));
        // stored for another image: BEGIN's digest and size differ
        assert.equal(await answer(signFor(image('2.0.1')).bytes), vectorHex('manifest-ok'));
        assert.equal((await e.rawControl(rawBegin(img))).toString('hex'), vectorHex('begin-err-manifest-mismatch'));
        // the right one, then the link drops: the next link's plain BEGIN has no manifest
        assert.equal(await answer(good.bytes), vectorHex('manifest-ok'));
        const ops = e.flashOps();
        await e.conn.disconnect();
        await sleep(e.clock, 200);
        await e.connect();
        const client = e.client();
        await rejectsWith(client.update({ image: img, encoding: 'raw' }), 'DEVICE_MANIFEST_REQUIRED');
        client.close();
        assert.equal(e.flashOps(), ops);
      });

      it('ATT MTU 23 (revision 2.3): the manifest goes in 16-byte staging writes, an empty MANIFEST commits it, BEGIN is the plain 93 bytes; installs', async () => {
        const e = await open({ releaseKeys, maxMtu: 23 }, 'mtu-23');
        assert.equal(e.conn.mtu, 23);
        const img = image();
        const good = signFor(img);
        const client = e.client();
        const caps = (await client.readStatus()).capabilities;
        assert.ok(caps.manifestStaging && caps.manifestCommand, 'caps bit12 and bit11');
        assert.equal(await client.sendManifest(good.bytes), true);
        const staging = e.recorder.stagingWrites;
        assert.equal(staging.length, Math.ceil(good.bytes.length / 16));
        staging.forEach((w, i) => assert.equal(w.readUInt32LE(0), STAGING_OFFSET_FLAG + 16 * i, `write ${i}: in order`));
        assert.ok(staging.every((w) => w.length <= 20), 'each staging write fits one Write Command at MTU 23');
        assert.ok(Buffer.concat(staging.map((w) => w.subarray(4))).equals(good.bytes));
        assert.equal(staging[0].toString('hex').slice(0, 8), vectorHex('data-manifest-staging-first').slice(0, 8));
        assert.ok(!e.controlHex().some((h) => h.startsWith('a0') || h.startsWith('a1')), 'no DATA_ACK or DATA_NAK for staging writes');
        assert.ok(e.controlHex().includes(vectorHex('manifest-ok')));
        await client.update({ image: img, encoding: 'deflate', manifest: good.bytes });
        const writes = e.recorder.controlWrites;
        assert.deepEqual(writes.filter((w) => w[0] === Op.MANIFEST).map((w) => w.toString('hex')), [vectorHex('manifest-commit-staged')]);
        const begin = writes.find((w) => w[0] === Op.BEGIN);
        assert.ok(begin && begin.length === 93 && (begin[10] & 0x02) === 0, `BEGIN of ${begin?.length} bytes`);
        await e.reconnectAfterReboot();
        assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
      });

      it('ATT MTU 23 (revision 2.3): another link takes the staging buffer midway, the commit is refused, and the manifest goes with BEGIN (flags bit1); installs', async () => {
        const e = await open({ releaseKeys, maxMtu: 23 }, 'mtu-23');
        const other = await e.connectSecondCentral();
        const img = image();
        const good = signFor(img);
        let taken = false;
        e.recorder.beforeWrite = async (characteristic, data) => {
          if (taken || characteristic !== DATA_CHAR_UUID || data.readUInt32LE(0) !== STAGING_OFFSET_FLAG + 64) return;
          taken = true;
          // A's first fragments reach the device at A's next connection events; then B starts its own staging
          // (manifest offset 0): A's bytes are dropped and A's next fragments ignored.
          await sleep(e.clock, 100);
          await other.conn.write(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeStagingChunk(0, good.bytes.subarray(0, 16)), true);
          await sleep(e.clock, 100);
        };
        const client = e.client();
        await client.readStatus();
        assert.equal(await client.sendManifest(good.bytes), false, 'a refused commit is not an error');
        assert.ok(taken);
        e.recorder.beforeWrite = null;
        assert.equal(e.recorder.stagingWrites.length, Math.ceil(good.bytes.length / 16), 'A staged the whole manifest');
        const hex = e.controlHex();
        assert.ok(hex.includes(vectorHex('manifest-err-bad-length')), `commit answered ${hex.join(' ')}`);
        assert.ok(!hex.some((h) => h.startsWith('a1')), 'fragments of a link that no longer owns the buffer are dropped silently');
        assert.equal(other.recorder.control.length, 0, 'B got no answer to its staging write');
        await client.update({ image: img, encoding: 'deflate', manifest: good.bytes });
        const begin = e.recorder.controlWrites.find((w) => w[0] === Op.BEGIN);
        assert.ok(begin && begin.length === 93 + good.bytes.length && (begin[10] & 0x02) !== 0, 'BEGIN carried the manifest');
        await e.reconnectAfterReboot();
        assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
      });

      it('staging writes at the byte level (revision 2.3): one NAK per break, nothing committed after a break, an empty MANIFEST with nothing staged, a link drop clears it', async () => {
        const e = await open({ releaseKeys });
        const img = image();
        const good = signFor(img).bytes;
        const stage = async (from: number, to: number) => {
          for (let at = from; at < to; at += 16) await e.conn.write(OTA_SERVICE_UUID, DATA_CHAR_UUID, encodeStagingChunk(at, good.subarray(at, Math.min(to, at + 16))), true);
        };
        const commit = async () => (await e.rawControl(encodeCommand({ op: Op.MANIFEST }))).toString('hex');
        assert.equal(await commit(), vectorHex('manifest-err-bad-length'), 'nothing staged');
        const before = e.recorder.control.length;
        await stage(0, 16);
        await stage(32, 64); // skips manifest bytes 16..31
        await sleep(e.clock, 100);
        assert.deepEqual(e.controlHex().slice(before), [vectorHex('data-nak-staging-bad-length')], 'one NAK for the break, none for what follows');
        await stage(16, good.length); // not a restart: dropped
        assert.equal(await commit(), vectorHex('manifest-err-bad-length'), 'staging broken');
        await stage(0, good.length);
        assert.equal(await commit(), vectorHex('manifest-ok'));
        assert.equal(await commit(), vectorHex('manifest-err-bad-length'), 'the commit consumed the staged bytes');
        await stage(0, good.length);
        await e.conn.disconnect();
        await sleep(e.clock, 200);
        await e.connect();
        assert.equal(await commit(), vectorHex('manifest-err-bad-length'), 'the link drop took the staged bytes');
      });

      it("a key derived for device A is refused by device B; B's own key works", async () => {
        const master = randomBytes(32);
        const idB = 'a4:cf:12:00:00:0b';
        const e = await open({ address: idB, deviceKey: deriveDeviceKey(master, idB) });
        const s = await e.client().readStatus();
        assert.equal(s.deviceId, idB);
        assert.ok(s.capabilities.sessionKeyRequired);
        const keyA = deriveDeviceKey(master, 'a4:cf:12:00:00:0a');
        const img = image();
        await refusedBeforeFlash(e, (c) => c.update({ image: img, encoding: 'raw' }), 'DEVICE_AUTH_FAILED', keyA);
        await rejectsWith(e.client({ fleetKey: keyA }).reboot(), 'DEVICE_AUTH_FAILED');
        assert.ok(e.conn.connected, 'the refused REBOOT did not restart the device');
        await e.client({ fleetKey: deriveDeviceKey(master, idB) }).update({ image: img, encoding: 'raw' });
        await e.reconnectAfterReboot();
        assert.equal((await e.client().readStatus()).appVersion, '2.0.0');
      });

      it('an unprovisioned default device refuses a stranger: BEGIN, REBOOT and ABORT with zero tags', async () => {
        const e = await open({ allowUnauthenticated: false });
        const s = await e.client().readStatus();
        assert.ok(s.capabilities.notProvisioned, `caps 0x${s.caps.toString(16)}`);
        const ops = e.flashOps();
        await e.rawControl(Buffer.from([Op.CHALLENGE]));
        const zero = Buffer.alloc(16);
        for (const [what, value] of [
          ['BEGIN', rawBegin(image())],
          ['REBOOT', encodeCommand({ op: Op.REBOOT, tag: zero })],
          ['ABORT', encodeCommand({ op: Op.ABORT, tag: zero })],
          ['CONFIRM', encodeCommand({ op: Op.CONFIRM, tag: zero })],
        ] as const) {
          const answer = await e.rawControl(value);
          assert.equal(answer[0], value[0] | 0x80, `${what} answered by its own response`);
          assert.equal(errOf(answer), ErrorCode.NOT_PROVISIONED, `${what}: ${answer.toString('hex')}`);
        }
        assert.ok(e.conn.connected, 'REBOOT was refused: the device did not restart');
        assert.equal(e.flashOps(), ops);
        // Through the client: the host refuses before BEGIN from the Status caps is lib/ota's job; lib/protocol reports the device's answer.
        await rejectsWith(e.client().update({ image: image(), encoding: 'raw' }), 'DEVICE_NOT_PROVISIONED');
      });

      it('REBOOT and ABORT without a valid tag are refused when a key is required', async () => {
        const key = randomBytes(32);
        const e = await open({ deviceKey: key });
        const zero = Buffer.alloc(16);
        for (const op of [Op.REBOOT, Op.ABORT] as const) {
          // No CHALLENGE: AUTH_REQUIRED; after a CHALLENGE a zero (or any wrong) tag: AUTH_FAILED.
          assert.equal(errOf(await e.rawControl(encodeCommand({ op, tag: zero }))), ErrorCode.AUTH_REQUIRED, `op ${op} without challenge`);
          await e.rawControl(Buffer.from([Op.CHALLENGE]));
          assert.equal(errOf(await e.rawControl(encodeCommand({ op, tag: zero }))), ErrorCode.AUTH_FAILED, `op ${op} with a zero tag`);
        }
        assert.ok(e.conn.connected, 'the device did not restart');
        await rejectsWith(e.client().reboot(), 'FLEET_KEY_REQUIRED');
        await rejectsWith(e.client({ fleetKey: randomBytes(32) }).abort(), 'DEVICE_AUTH_FAILED');
        await e.client({ fleetKey: key }).abort();
      });

      it("a stranger's replay of a captured BEGIN is refused (the nonce was spent), nothing written", async () => {
        const key = randomBytes(32);
        const e = await open({ deviceKey: key });
        const img = image();
        const owner = e.client({ fleetKey: key });
        await owner.begin({ image: img, encoding: 'raw' });
        await owner.abort();
        const captured = e.recorder.controlWrites.find((w) => w[0] === Op.BEGIN);
        assert.ok(captured, 'the real session wrote a BEGIN');
        const ops = e.flashOps();
        // Another central, as a stranger in radio range: replay as captured, then after its own CHALLENGE.
        const stranger = await e.connectSecondCentral();
        await stranger.conn.subscribe(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, () => undefined);
        const exchange = async (value: Buffer) => {
          const before = stranger.recorder.control.length;
          await stranger.conn.write(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, value, false);
          const deadline = e.clock.now() + 3000;
          while (stranger.recorder.control.length === before && e.clock.now() < deadline) await sleep(e.clock, 5);
          assert.ok(stranger.recorder.control.length > before, `no answer to ${value.toString('hex').slice(0, 16)}…`);
          return stranger.recorder.control[before];
        };
        assert.equal(errOf(await exchange(captured)), ErrorCode.AUTH_REQUIRED);
        await exchange(Buffer.from([Op.CHALLENGE]));
        assert.equal(errOf(await exchange(captured)), ErrorCode.AUTH_FAILED);
        assert.equal(e.flashOps(), ops, 'the replays wrote nothing');
        await stranger.conn.disconnect();
        const s = await e.client().readStatus();
        assert.equal(s.sessionStateName, 'idle');
        assert.equal(s.appVersion, '1.0.0');
      });

      it('per-device keys happy path (fleet master key + release keys) through flashDevice and verifyDevice; the release floor rises on confirm', async () => {
        const master = randomBytes(32);
        const e = await ConformanceEnv.create(impl, { confirmPolicy: 'host' }, 'reference', { masterKey: master, releaseKeys });
        env = e;
        const before = await e.client().readStatus();
        assert.ok(before.capabilities.sessionKeyRequired && before.capabilities.manifestRequired);
        assert.equal(before.releaseFloor, 0);
        await e.conn.disconnect();
        const scheduler = new AdapterScheduler(e.fleet.central, { readyTimeoutMs: 2000 });
        try {
          const img = image();
          const manifest = signFor(img, { release: 42 }).bytes;
          const opsBefore = e.flashOps();
          const result = await flashDevice(scheduler, { device: 'dut', image: img, masterKey: master, manifest, encoding: 'raw' });
          assert.equal(result.success, true);
          assert.ok(e.flashOps() > opsBefore, 'the flash counter sees the accepted update');
          const verified = await verifyDevice(scheduler, { device: 'dut', expect: { version: '2.0.0' }, onPass: 'confirm', masterKey: master });
          assert.equal(verified.action, 'confirmed');
          assert.equal(verified.status.releaseFloor, 42);
          assert.equal(verified.status.otaStateName, 'valid');
          // An older release (its own, correctly signed manifest) is now refused by the host, before BEGIN...
          const older = image('2.0.1');
          const olderManifest = signFor(older, { release: 41 }).bytes;
          await rejectsWith(flashDevice(scheduler, { device: 'dut', image: older, masterKey: master, manifest: olderManifest }), 'RELEASE_TOO_OLD');
          // ...and by the device when a client sends it anyway.
          await e.connect();
          const s = await e.client().readStatus();
          const key = deriveDeviceKey(master, s.deviceId as string);
          const ops = e.flashOps();
          await rejectsWith(e.client({ fleetKey: key }).update({ image: older, encoding: 'raw', manifest: olderManifest }), 'DEVICE_RELEASE_TOO_OLD');
          assert.equal(e.flashOps(), ops);
        } finally {
          await scheduler.close();
        }
      });
    });

    describe('delta (PROTOCOL.md §13; issue 13)', () => {
      /** The device's running image, and a patch source against it (asserted against Status in each case). */
      const base = DELTA_BASE;
      const baseSha = appHash(base);

      /** The device runs DELTA_BASE (both implementations build it the same way): else the case cannot mean anything. */
      async function assertRunsBase(e: ConformanceEnv, what: string): Promise<void> {
        const s = await e.client().readStatus();
        assert.equal(s.runningSha256, baseSha.toString('hex'), `${what}: the device runs the base image`);
        assert.equal(s.appVersion, '1.0.0', what);
      }

      /** A delta payload for the client around a hand-made patch stream (the client sends it as it is). */
      const deltaPayload = (img: Buffer, transfer: Buffer, baseSha256: Buffer = baseSha) => prepareDeltaPayload(img, transfer, baseSha256, Caps.DELTA);

      it('end to end through flashDevice with base images: encoding delta, few bytes on air, the new image boots byte for byte', async () => {
        const e = await open();
        await assertRunsBase(e, 'before');
        const status = await e.client().readStatus();
        assert.ok(status.caps & Caps.DELTA, 'caps bit7');
        await e.conn.disconnect();
        const dir = mkdtempSync(join(tmpdir(), 'conformance-delta-'));
        const scheduler = new AdapterScheduler(e.fleet.central, { readyTimeoutMs: 2000 });
        try {
          const store = new ImageStore(dir);
          store.add(base);
          const result = await flashDevice(scheduler, { device: 'dut', image: DELTA_NEW, encoding: 'delta', baseImages: store });
          assert.equal(result.encoding, 'delta');
          assert.equal(result.base, baseSha.toString('hex'));
          assert.equal(result.deltaFallback, null);
          assert.ok(result.bytesOnAir * 10 < DELTA_NEW.length, `${result.bytesOnAir} bytes on air for a ${DELTA_NEW.length}-byte image`);
        } finally {
          await scheduler.close();
          rmSync(dir, { recursive: true, force: true });
        }
        await e.reconnectAfterReboot();
        const s = await e.client().readStatus();
        assert.equal(s.appVersion, '1.1.0');
        assert.equal(s.runningSha256, appHash(DELTA_NEW).toString('hex'));
        // END's SHA-256 covers all image_size bytes of the slot: the same bytes a full update leaves.
        assert.equal(s.lastSha256, sha256(DELTA_NEW));
        assert.equal(s.lastResultName, 'OK');
        const device = e.device;
        assert.ok(device, 'the device');
        const slot = readFlash(device, s.updatePartitionSize ?? 0x1e0000).slots[1];
        assert.ok(slot.subarray(0, DELTA_NEW.length).equals(DELTA_NEW), 'ota_1 holds the new image byte for byte');
      });

      it('resume mid-patch (§4.2, §13.3): the continuation from resume_offset rebuilds the new image', async () => {
        const e = await open();
        await assertRunsBase(e, 'before');
        const transfer = deflateSync(RESUME_PATCH);
        assert.ok(transfer.length > 20000, `the patch stream is long enough to cut (${transfer.length} bytes)`);
        const payload = deltaPayload(DELTA_NEW, transfer);
        const first = e.client();
        await first.open();
        await first.begin({ image: DELTA_NEW, payload, resume: true });
        const cut = Math.floor(transfer.length / 2);
        e.fleet.radio.injectFault(e.address, { kind: 'disconnectAfterBytes', bytes: cut });
        await rejectsWith(first.transfer(), 'DISCONNECTED');
        await e.connect();
        const kept = await e.client().readStatus();
        assert.equal(kept.sessionStateName, 'suspended');
        assert.ok(kept.sessionOffset > 0 && kept.sessionOffset <= cut, `kept ${kept.sessionOffset} of ${transfer.length}`);
        const second = e.client();
        await second.open();
        const info = await second.begin({ image: DELTA_NEW, payload, resume: true });
        assert.equal(info.resumeOffset, kept.sessionOffset);
        await second.transfer();
        await second.end();
        assert.ok(second.bytesOnAir < transfer.length, 'the second connection did not resend everything');
        await e.reconnectAfterReboot();
        const s = await e.client().readStatus();
        assert.equal(s.runningSha256, appHash(DELTA_NEW).toString('hex'));
        assert.equal(s.lastSha256, sha256(DELTA_NEW));
      });

      it('BASE_MISMATCH (38) at BEGIN: nothing erased or written, the old image still boots', async () => {
        const e = await open();
        await assertRunsBase(e, 'before');
        const ops = e.flashOps();
        const wrongBase = appHash(DELTA_NEW);
        const client = e.client();
        await rejectsWith(client.update({ image: DELTA_NEW, payload: deltaPayload(DELTA_NEW, deflateSync(RESUME_PATCH), wrongBase) }), 'DEVICE_BASE_MISMATCH');
        assert.ok(e.controlHex().includes(`82${ErrorCode.BASE_MISMATCH.toString(16)}`), `BEGIN answered 82 26: ${e.controlHex().join(' ')}`);
        assert.equal(e.flashOps(), ops, 'nothing erased or written');
        const s = await e.client().readStatus();
        assert.equal(s.sessionStateName, 'idle');
        await e.client().reboot();
        await e.reconnectAfterReboot();
        await assertRunsBase(e, 'after the reboot');
      });

      it('every malformed patch ends the session with PATCH_INVALID (39), a short one gets SIZE_MISMATCH (19) at END; the old image keeps booting', async () => {
        const e = await open();
        await assertRunsBase(e, 'before');
        for (const bad of BAD_PATCHES) {
          const ops = e.flashOps();
          const client = e.client();
          const session = client.update({ image: DELTA_NEW, payload: deltaPayload(DELTA_NEW, deflateSync(bad.patch)) });
          await rejectsWith(session, bad.sizeMismatch ? 'DEVICE_SIZE_MISMATCH' : 'DEVICE_PATCH_INVALID');
          const hex = e.controlHex();
          if (bad.sizeMismatch) assert.ok(hex.includes(`83${ErrorCode.SIZE_MISMATCH.toString(16)}`), `${bad.what}: END answered 83 13: ${hex.slice(-3).join(' ')}`);
          else assert.ok(hex.includes(`a2${ErrorCode.PATCH_INVALID.toString(16)}`), `${bad.what}: SESSION_ABORTED 27 expected; got ${hex.slice(-3).join(' ')}`);
          assert.ok(e.flashOps() > ops, `${bad.what}: the good head was written to flash before the refusal`);
          const s = await e.client().readStatus();
          assert.equal(s.sessionStateName, 'idle', bad.what);
          assert.equal(s.lastResultName, bad.sizeMismatch ? 'SIZE_MISMATCH' : 'PATCH_INVALID', `${bad.what}: the update record`);
          await e.client().reboot();
          await e.reconnectAfterReboot();
          await assertRunsBase(e, `after ${bad.what} and a reboot`);
        }
      });
    });

    if (impl === 'model') {
      it('legacy seed flow (§4.6): detected from the GATT table, updated with the seed protocol', async () => {
        const e = await open({ protocol: 'legacy', chip: 'esp32', version: '0.1.0', name: 'esp32' });
        const detected = detectProtocol(e.table);
        assert.equal(detected.protocol, 'legacy');
        const img = image('0.2.0', 'esp32');
        const client = new LegacyClient(e.conn, { clock: e.clock, serviceUuid: detected.serviceUuid });
        await client.update(img);
        assert.ok(client.bytesOnAir >= img.length);
        await e.reconnectAfterReboot();
        const device = e.device as SimDevice;
        assert.ok(device.flash.imageBytes(1).subarray(0, img.length).equals(img), 'ota_1 holds the image');
      });
    }
  });
}
