import { strict as assert } from 'assert';
import * as fs from 'fs';
import { deflateSync } from 'zlib';
import { buildAppImage } from '../../lib/image/builder';
import { decodeAdvertisement } from '../../lib/protocol/advertisement';
import { Caps, ErrorCode, Op, OtaStateCode } from '../../lib/protocol/constants';
import { AttError } from '../../lib/sim/types';
import { Central, Rig, Transfer, vectorPath, afterReboot, bootSettled, deflateTransfer, makeRig, rawTransfer, sha256, until } from './harness';

const OTA = '5c4e00016a8b4f0e9a3d32b1e07a0001';
const CONTROL = '5c4e00026a8b4f0e9a3d32b1e07a0001';
const image = (version = '1.1.0', size = 96 * 1024, secureVersion = 0, chip: 'esp32c3' | 'esp32' = 'esp32c3') =>
  buildAppImage({ chip, version, size, secureVersion });

/** The target slot was never programmed: nothing erased or written, old image intact. */
function assertSlotUntouched(rig: Rig): void {
  assert.equal(rig.device.flash.imageBytes(1).length, 0);
  assert.ok(rig.device.flash.slots[1].isErased(0, 65536));
  assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.UNDEFINED);
}

async function sendExpectingAbort(c: Central, rig: Rig, t: Transfer): Promise<number> {
  const begin = await c.begin(t);
  assert.equal(begin.err, 0);
  const done = c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window }).then(
    () => -1,
    (e: Error) => Number(/SESSION_ABORTED (\d+)/.exec(e.message)?.[1] ?? -2),
  );
  return done;
}

describe('sim-device v2: image checks before flash', () => {
  it('IMAGE_TOO_LARGE at BEGIN, before any erase', async () => {
    const rig = makeRig({ otaPartitionSize: 0x40000 });
    const c = new Central(rig).connect();
    const r = await c.begin(rawTransfer(image('1.1.0', 0x40000 + 4096)));
    assert.equal(r.err, ErrorCode.IMAGE_TOO_LARGE);
    assert.equal(r.chunkSize, undefined); // error responses carry only op and err
    assertSlotUntouched(rig);
    assert.equal((await c.readStatus()).sessionStateName, 'idle');
  });

  it('WRONG_CHIP (esp32 image on an esp32c3) before the first flash write', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = rawTransfer(fs.readFileSync(vectorPath('esp32-hello_world.bin')));
    assert.equal(await sendExpectingAbort(c, rig, t), ErrorCode.WRONG_CHIP);
    assertSlotUntouched(rig);
    const s = await c.readStatus();
    assert.equal(s.sessionStateName, 'idle');
    assert.equal(s.lastResultName, 'WRONG_CHIP');
  });

  it('NOT_APP_IMAGE for random data and for a bootloader, before the first flash write', async () => {
    for (const bytes of [Buffer.alloc(5000, 0x5a), fs.readFileSync(vectorPath('bad-esp32c3-bootloader.bin'))]) {
      const rig = makeRig();
      const c = new Central(rig).connect();
      assert.equal(await sendExpectingAbort(c, rig, rawTransfer(bytes)), ErrorCode.NOT_APP_IMAGE);
      assertSlotUntouched(rig);
    }
  });

  it('DOWNGRADE for a lower secure_version unless allowDowngrade', async () => {
    const low = image('0.9.0', 64 * 1024, 1);
    const rig = makeRig({ secureVersion: 2 });
    const c = new Central(rig).connect();
    assert.equal(await sendExpectingAbort(c, rig, rawTransfer(low)), ErrorCode.DOWNGRADE);
    assertSlotUntouched(rig);

    const allowed = makeRig({ secureVersion: 2, allowDowngrade: true });
    const c2 = new Central(allowed).connect();
    assert.equal(((await c2.challenge()).caps ?? 0) & Caps.ANTI_DOWNGRADE, 0);
    assert.equal((await c2.update(rawTransfer(low))).err, 0);
  });
});

describe('sim-device v2: END checks', () => {
  it('HASH_MISMATCH: error, boot partition unchanged', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const img = image();
    const r = await c.update(rawTransfer(img, sha256(Buffer.from('something else'))));
    assert.equal(r.err, ErrorCode.HASH_MISMATCH);
    assert.equal(rig.device.flash.otadata.bootSlot(), 0);
    const s = await c.readStatus();
    assert.equal(s.lastResultName, 'HASH_MISMATCH');
    assert.equal(s.sessionStateName, 'idle');
    await c.tagged(Op.REBOOT);
    await afterReboot(rig);
    assert.equal((await new Central(rig).connect().readStatus()).runningPartition, 'ota_0');
  });

  it('VALIDATION_FAILED when esp_ota_end rejects the image (bad checksum), boot unchanged', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const img = Buffer.from(image());
    img[20000] ^= 0xff; // inside a segment: checksum and appended SHA-256 no longer match
    const r = await c.update(rawTransfer(img));
    assert.equal(r.err, ErrorCode.VALIDATION_FAILED);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.UNDEFINED);
    assert.equal((await c.readStatus()).lastResultName, 'VALIDATION_FAILED');
  });

  it('DECODE_FAILED for a corrupt deflate stream and for one decoding past image_size', async () => {
    const img = image();
    const corrupt = deflateTransfer(img);
    corrupt.payload = Buffer.from(corrupt.payload);
    for (let i = 2000; i < 2100; i++) corrupt.payload[i] ^= 0x55;
    const rig = makeRig();
    assert.equal(await sendExpectingAbort(new Central(rig).connect(), rig, corrupt), ErrorCode.DECODE_FAILED);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.UNDEFINED);

    const rig2 = makeRig();
    const c2 = new Central(rig2).connect();
    const t = deflateTransfer(img);
    const begin = await c2.begin(t, { imageSize: img.length - 1000 });
    assert.equal(begin.err, 0);
    await assert.rejects(c2.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window }), /SESSION_ABORTED 18/);
  });

  it('SIZE_MISMATCH when the stream decodes to fewer bytes than image_size', async () => {
    const img = image();
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = deflateTransfer(img);
    const begin = await c.begin(t, { imageSize: img.length + 4096 });
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window });
    assert.equal((await c.end()).err, ErrorCode.SIZE_MISMATCH);
  });

  it('END before every byte arrived is INVALID_STATE; END without a session is NO_SESSION', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.end()).err, ErrorCode.NO_SESSION);
    const t = rawTransfer(image());
    const begin = await c.begin(t);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 20000 });
    assert.equal((await c.end()).err, ErrorCode.INVALID_STATE);
  });
});

describe('sim-device v2: disconnect, resume, power loss', () => {
  it('keeps the session after a disconnect and resumes from the acknowledged offset', async () => {
    const rig = makeRig();
    const img = image('1.2.0', 150 * 1024);
    const t = deflateTransfer(img);
    const c = new Central(rig).connect();
    const begin = await c.begin(t);
    const acked = await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 30000 });
    c.disconnect();
    const c2 = new Central(rig, 0).connect();
    let s = await c2.readStatus();
    assert.equal(s.sessionStateName, 'suspended');
    assert.ok(decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer).sessionActive);
    const again = await c2.begin(t);
    assert.equal(again.err, 0);
    assert.ok(again.resumeOffset >= acked && again.resumeOffset > 0, `resume at ${again.resumeOffset}, acked ${acked}`);
    await c2.send(t.payload, { chunkSize: again.chunkSize, window: again.window, from: again.resumeOffset });
    assert.equal((await c2.end()).err, 0);
    await afterReboot(rig);
    s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '1.2.0');
    assert.ok(rig.device.flash.imageBytes(1).equals(img));
  });

  it('a BEGIN without the resume flag (or another digest) starts over at 0', async () => {
    const rig = makeRig();
    const t = rawTransfer(image());
    const c = new Central(rig).connect();
    const begin = await c.begin(t);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 20000 });
    c.disconnect();
    const c2 = new Central(rig).connect();
    assert.equal((await c2.begin(t, { flags: 0 })).resumeOffset, 0);
  });

  it('aborts a kept session after the resume timeout (SESSION_TIMEOUT) and starts fresh afterwards', async () => {
    const rig = makeRig({ resumeTimeoutMs: 5000 });
    const t = rawTransfer(image());
    const c = new Central(rig).connect();
    const begin = await c.begin(t);
    await c.send(t.payload, { chunkSize: begin.chunkSize, window: begin.window, stopAt: 20000 });
    c.disconnect();
    const lostAt = rig.clock.now();
    await until(rig.clock, () => rig.clock.now() - lostAt > 4900, 6000);
    const c2 = new Central(rig, 1).connect();
    assert.equal((await c2.readStatus()).sessionStateName, 'suspended');
    await until(rig.clock, () => rig.clock.now() - lostAt > 5100, 6000);
    const s = await c2.readStatus();
    assert.equal(s.sessionStateName, 'idle');
    assert.equal(s.lastResultName, 'SESSION_TIMEOUT');
    assert.equal((await c2.begin(t)).resumeOffset, 0);
  });

  const powerLossPoints: Array<[string, (rig: Rig, c: Central, t: Transfer) => Promise<void>]> = [
    ['right after BEGIN', async () => undefined],
    [
      'during the first block erase',
      async (rig, c, t) => {
        const b = await c.begin(t);
        c.data(0, t.payload.subarray(0, 240));
        c.data(240, t.payload.subarray(240, 480));
        assert.equal(b.err, 0);
      },
    ],
    [
      'mid-transfer',
      async (rig, c, t) => {
        const b = await c.begin(t);
        await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window, stopAt: 50000 });
      },
    ],
    [
      'after the last byte, before END',
      async (rig, c, t) => {
        const b = await c.begin(t);
        await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window });
      },
    ],
  ];
  for (const [when, act] of powerLossPoints) {
    it(`power loss ${when}: the previous image boots, the session is gone`, async () => {
      const rig = makeRig();
      const t = rawTransfer(image('1.1.0', 120 * 1024));
      const c = new Central(rig).connect();
      const before = await c.readStatus();
      if (when === 'right after BEGIN') await c.begin(t);
      else await act(rig, c, t);
      rig.device.powerLoss(1000);
      assert.equal(rig.device.advertisement(), null);
      assert.ok(rig.host.drops.some((d) => d.reason === 'power loss'));
      await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
      const c2 = new Central(rig).connect();
      const s = await c2.readStatus();
      assert.equal(s.runningPartition, 'ota_0');
      assert.equal(s.runningSha256, before.runningSha256);
      assert.equal(s.resetReason, 1);
      assert.equal(s.sessionStateName, 'idle');
      assert.equal(s.lastResultName, 'INTERNAL');
      assert.equal(s.lastMessage, 'interrupted by a reboot');
      assert.equal((await c2.begin(t)).resumeOffset, 0);
    });
  }

  it('power loss between the END response and the restart: the new image boots (boot partition was set)', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image('1.3.0')))).err, 0);
    rig.device.powerLoss(100);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    await bootSettled(rig);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '1.3.0');
    assert.equal(s.otaStateName, 'valid');
  });

  it('power loss while a host-policy image waits for CONFIRM rolls back to the previous image', async () => {
    const rig = makeRig({ confirmPolicy: 'host' });
    const c = new Central(rig).connect();
    assert.equal((await c.update(rawTransfer(image('1.3.0')))).err, 0);
    await afterReboot(rig);
    assert.equal((await new Central(rig).connect().readStatus()).otaStateName, 'pending-verify');
    rig.device.powerLoss(500);
    await until(rig.clock, () => rig.device.machine.state === 'running', 5000);
    const s = await new Central(rig).connect().readStatus();
    assert.equal(s.appVersion, '1.0.0');
    assert.ok(s.last.rolledBack);
  });
});

function sessionOffset(rig: Rig): number {
  return (rig.device.onRead(OTA, '5c4e00046a8b4f0e9a3d32b1e07a0001') as Buffer).readUInt32LE(16);
}

describe('sim-device v2: sessions, NAKs, authentication', () => {
  it('BUSY for a second connection while the first holds a session', async () => {
    const rig = makeRig();
    const t = rawTransfer(image());
    const a = new Central(rig, 1).connect();
    const b = new Central(rig, 2).connect();
    assert.equal((await a.begin(t)).err, 0);
    assert.equal((await b.begin(t)).err, ErrorCode.BUSY);
    assert.equal((await b.tagged(Op.ABORT)).err, ErrorCode.BUSY);
    b.data(0, t.payload.subarray(0, 100));
    assert.deepEqual(b.fresh(), [{ op: Op.DATA_NAK, err: ErrorCode.NO_SESSION, expectedOffset: 0 }]);
    // the holder is not disturbed
    a.data(0, t.payload.subarray(0, 100));
    assert.equal(a.fresh().filter((n) => n.op === Op.DATA_NAK).length, 0);
  });

  it('defined NAKs: no session, empty, oversized, duplicate once, gap once per gap, out of window', async () => {
    const rig = makeRig();
    const t = rawTransfer(image());
    const c = new Central(rig).connect();
    c.data(0, Buffer.alloc(10));
    assert.deepEqual(c.fresh(), [{ op: Op.DATA_NAK, err: ErrorCode.NO_SESSION, expectedOffset: 0 }]);
    const b = await c.begin(t);
    const naks = () => c.fresh().filter((n) => n.op === Op.DATA_NAK);
    c.rawData(Buffer.alloc(4));
    c.rawData(Buffer.alloc(0));
    assert.deepEqual(naks(), [
      { op: Op.DATA_NAK, err: ErrorCode.EMPTY_WRITE, expectedOffset: 0 },
      { op: Op.DATA_NAK, err: ErrorCode.EMPTY_WRITE, expectedOffset: 0 },
    ]);
    c.data(0, t.payload.subarray(0, b.chunkSize + 1));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.OVERSIZED, expectedOffset: 0 }]);
    c.data(0, t.payload.subarray(0, 200));
    c.data(0, t.payload.subarray(0, 200));
    c.data(100, t.payload.subarray(100, 200));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.DUPLICATE, expectedOffset: 200 }]);
    c.data(400, t.payload.subarray(400, 600));
    c.data(600, t.payload.subarray(600, 800));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: 200 }]);
    c.data(200, t.payload.subarray(200, 400));
    c.data(800, t.payload.subarray(800, 900));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: 400 }]);
    // Still the same gap: silence, whatever else is wrong with the chunk (past the window, past the end).
    c.data(400 + b.window, t.payload.subarray(0, 100));
    c.data(t.payload.length - 10, Buffer.alloc(20));
    c.rawData(Buffer.alloc(3));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.EMPTY_WRITE, expectedOffset: 400 }]);
    // A new gap that is also past the window: GAP comes first in the §3 order.
    c.data(400, t.payload.subarray(400, 600));
    c.data(600 + b.window, t.payload.subarray(0, 100));
    assert.deepEqual(naks(), [{ op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: 600 }]);
    // After all that the transfer still completes.
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window, from: 600 });
    assert.equal((await c.end()).err, 0);
  });

  it('OUT_OF_WINDOW, every time, for in-order data past transfer_size or past the writer buffer', async () => {
    const rig = makeRig({ flashSlowdown: 100 }); // the first block erase keeps the writer busy for 15 s
    const t = rawTransfer(image('1.1.0', 64 * 1024));
    const c = new Central(rig).connect();
    const b = await c.begin(t);
    const naks = () => c.fresh().filter((n) => n.op === Op.DATA_NAK);
    let next = 0;
    for (let i = 0; i < 2; i++, next += b.chunkSize) c.data(next, t.payload.subarray(next, next + b.chunkSize));
    const taken = (await c.readStatus()).sessionOffset;
    assert.equal(taken, 2 * b.chunkSize); // header checked, writer now erasing
    while (next + b.chunkSize <= taken + b.window) {
      c.data(next, t.payload.subarray(next, next + b.chunkSize));
      next += b.chunkSize;
    }
    assert.deepEqual(naks(), []);
    c.data(next, t.payload.subarray(next, next + b.chunkSize));
    c.data(next, t.payload.subarray(next, next + b.chunkSize));
    assert.deepEqual(naks(), [
      { op: Op.DATA_NAK, err: ErrorCode.OUT_OF_WINDOW, expectedOffset: next },
      { op: Op.DATA_NAK, err: ErrorCode.OUT_OF_WINDOW, expectedOffset: next },
    ]);
    // Once the erase is done the writer drains the ring and the same chunk is accepted.
    await until(rig.clock, () => c.fresh().some((n) => n.op === Op.DATA_ACK), 20000);
    c.data(next, t.payload.subarray(next, next + b.chunkSize));
    assert.deepEqual(naks(), []);
    next += b.chunkSize;
    await until(rig.clock, () => sessionOffset(rig) === next, 60000);
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window, from: next });
    c.data(t.payload.length, Buffer.alloc(10));
    c.data(t.payload.length, Buffer.alloc(10));
    assert.deepEqual(naks(), [
      { op: Op.DATA_NAK, err: ErrorCode.OUT_OF_WINDOW, expectedOffset: t.payload.length },
      { op: Op.DATA_NAK, err: ErrorCode.OUT_OF_WINDOW, expectedOffset: t.payload.length },
    ]);
  });

  it('malformed commands: BAD_LENGTH, UNKNOWN_OPCODE, BAD_PARAMETER, BAD_ENCODING, ATT 0x0d over 512 bytes', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t = rawTransfer(image());
    assert.deepEqual(await c.command(c.beginRequest(t).subarray(0, 92)), { op: 0x82, err: ErrorCode.BAD_LENGTH });
    assert.deepEqual(await c.command(c.beginRequest(t).subarray(0, 61)), { op: 0x82, err: ErrorCode.BAD_LENGTH }, 'the v2.0 61-byte BEGIN');
    assert.deepEqual(await c.command(Buffer.concat([c.beginRequest(t), Buffer.alloc(1)])), { op: 0x82, err: ErrorCode.BAD_LENGTH });
    // flags bit1 (manifest follows): at least 93 + 8 bytes, exactly 93 + the manifest's length field.
    const withBit1 = c.beginRequest(t);
    withBit1[10] |= 0x02;
    assert.deepEqual(await c.command(withBit1), { op: 0x82, err: ErrorCode.BAD_LENGTH });
    const shortManifest = Buffer.alloc(8);
    shortManifest.writeUInt16LE(9, 6);
    assert.deepEqual(await c.command(Buffer.concat([withBit1, shortManifest])), { op: 0x82, err: ErrorCode.BAD_LENGTH });
    assert.deepEqual(await c.command(Buffer.from([0x0a, 1, 2])), { op: 0xff, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: 0x0a });
    assert.equal((await c.command(c.beginRequest(t, { chunkSize: 0 }))).err, ErrorCode.BAD_PARAMETER);
    assert.equal((await c.command(c.beginRequest(t, { flags: 0x81 }))).err, ErrorCode.BAD_PARAMETER);
    assert.equal((await c.command(c.beginRequest(t, { baseSha256: Buffer.alloc(32, 1) }))).err, ErrorCode.BAD_PARAMETER, 'base_sha256 with encoding 0');
    assert.equal((await c.command(c.beginRequest(t, { transferSize: t.image.length - 1 }))).err, ErrorCode.BAD_ENCODING);
    const unknown = c.beginRequest(t);
    unknown[9] = 3;
    assert.equal((await c.command(unknown)).err, ErrorCode.BAD_ENCODING);
    const unknownWithBase = c.beginRequest(t, { baseSha256: Buffer.alloc(32, 1) });
    unknownWithBase[9] = 3;
    assert.equal((await c.command(unknownWithBase)).err, ErrorCode.BAD_PARAMETER, 'parameters before encoding (§4.1): base_sha256 with an encoding other than 2');
    for (const value of [Buffer.alloc(513, 1), Buffer.alloc(0)]) {
      await assert.rejects(
        Promise.resolve().then(() => rig.device.onWrite(OTA, CONTROL, value, false)),
        (e: unknown) => e instanceof AttError && e.attCode === 0x0d,
      );
    }
    await c.write(Buffer.concat([Buffer.from([0x02]), Buffer.alloc(511)])); // 512 bytes is accepted at ATT level
    assert.deepEqual(c.fresh(), [{ op: 0x82, err: ErrorCode.BAD_LENGTH }]);
    assert.equal(rig.device.flash.opCount, 0, 'nothing erased or written');
  });

  it('ABORT: OK without a session; aborts a session and records ABORTED', async () => {
    const rig = makeRig();
    const c = new Central(rig).connect();
    assert.equal((await c.tagged(Op.ABORT)).err, 0);
    const t = rawTransfer(image());
    const b = await c.begin(t);
    await c.send(t.payload, { chunkSize: b.chunkSize, window: b.window, stopAt: 10000 });
    assert.equal((await c.tagged(Op.ABORT)).err, 0);
    const s = await c.readStatus();
    assert.equal(s.sessionStateName, 'idle');
    assert.equal(s.lastResultName, 'ABORTED');
    c.data(b.resumeOffset, t.payload.subarray(0, 10));
    assert.equal((c.fresh()[0] as { err: number }).err, ErrorCode.NO_SESSION);
  });

  it('fleet key: AUTH_REQUIRED without CHALLENGE, AUTH_FAILED for a wrong tag, nonce spent after use', async () => {
    const key = Buffer.alloc(32, 7);
    const rig = makeRig({ fleetKey: key });
    const t = rawTransfer(image());
    const anonymous = new Central(rig, 1).connect();
    assert.equal((await anonymous.begin(t)).err, ErrorCode.AUTH_REQUIRED);
    const challenge = await anonymous.challenge();
    assert.ok((challenge.caps ?? 0) & Caps.FLEET_KEY_REQUIRED);
    assert.ok(decodeAdvertisement(rig.device.advertisement()?.manufacturerData as Buffer).authRequired);
    assert.equal((await anonymous.begin(t, { tag: Buffer.alloc(16, 1) })).err, ErrorCode.AUTH_FAILED);
    assert.equal((await anonymous.begin(t, { tag: Buffer.alloc(16, 1) })).err, ErrorCode.AUTH_REQUIRED); // nonce spent
    const wrongKey = new Central(rig, 2, 247, Buffer.alloc(32, 8)).connect();
    assert.equal((await wrongKey.begin(t)).err, ErrorCode.AUTH_FAILED);
    assert.equal((await wrongKey.tagged(Op.ABORT)).err, ErrorCode.AUTH_FAILED);

    const owner = new Central(rig, 3, 247, key).connect();
    await owner.challenge();
    const request = owner.beginRequest(t);
    assert.equal((await owner.command(request)).err, 0);
    assert.equal((await owner.command(request)).err, ErrorCode.AUTH_REQUIRED); // replay of the same tag
    const b = await owner.begin(t); // resumed BEGIN needs a fresh tag too
    assert.equal(b.err, 0);
    await owner.send(t.payload, { chunkSize: b.chunkSize, window: b.window, from: b.resumeOffset });
    assert.equal((await owner.end()).err, 0);
  });
});

describe('sim-device v2: deflate edge cases', () => {
  it('a highly compressible image (one chunk decodes to far more than the window) still installs', async () => {
    const img = Buffer.from(image('1.5.0', 256 * 1024));
    const rig = makeRig();
    const c = new Central(rig).connect();
    const t: Transfer = { image: img, payload: deflateSync(img, { level: 9 }), encoding: 1, sha256: sha256(img) };
    assert.equal((await c.update(t)).err, 0);
  });
});
