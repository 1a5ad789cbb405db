/**
 * Conformance: every docs/PROTOCOL.md sequence, and the device-side vectors, against each device
 * implementation — the TypeScript model (lib/sim/device) and the C firmware twin (lib/sim/twin-device)
 * — through the simulated fleet (virtual radio + real noble + lib/protocol's clients).
 * A missing twin binary FAILS the twin half (issue 3 is not resolved without it).
 */
import { strict as assert } from 'assert';
import { createHash, randomBytes } from 'crypto';
import { appHash, buildAppImage } from '../../lib/image';
import { OtaError } from '../../lib/errors';
import { decodeNotification, encodeCommand } from '../../lib/protocol/codec';
import { Caps, ErrorCode, LAST_RESULT_NONE, OTA_SERVICE_UUID, Op, STATUS_CHAR_UUID } from '../../lib/protocol/constants';
import { decodeAdvertisement } from '../../lib/protocol/advertisement';
import { detectProtocol } from '../../lib/protocol/detect';
import { LegacyClient } from '../../lib/protocol/legacy-client';
import { prepareTransferPayload } from '../../lib/protocol/payload';
import { V2Client } from '../../lib/protocol/v2-client';
import { SimDevice } from '../../lib/sim/device';
import type { ChipName } from '../../lib/sim/types';
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
      assert.equal(s.format, 1);
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
      assert.equal(await hex(Buffer.from([0x09])), vectorHex('unknown-opcode'));
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
