/** Revision 2.1 of the codec: BEGIN with base_sha256 and manifest, PROVISION, Status format 2, caps names, codes 33..39. */
import { strict as assert } from 'assert';
import { createHmac, randomBytes } from 'crypto';
import { deflateSync, inflateSync } from 'zlib';
import { decodeCommand, decodeNotification, encodeCommand, encodeNotification, malformedCommandResponse, BeginCommand } from '../../lib/protocol/codec';
import { decodeStatus, encodeStatus, parseDeviceId, StatusFields } from '../../lib/protocol/status';
import { beginTag } from '../../lib/protocol/auth';
import { deriveDeviceKey } from '../../lib/security/keys';
import { prepareDeltaPayload } from '../../lib/protocol/payload';
import { Caps, ErrorCode, MAX_CONTROL_VALUE, Op, STATUS_SIZE, decodeCaps, deviceErrorCode, errorName, errorSentence } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';

function throwsCode(fn: () => unknown, code: string, message?: RegExp): OtaError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OtaError, String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** A manifest-shaped buffer: only its length field matters to the codec (the device checks the rest). */
function manifestOf(devices: number): Buffer {
  const m = randomBytes(224 + 6 * devices);
  m.write('BOM1', 0, 'ascii');
  m.writeUInt16LE(m.length, 6);
  return m;
}

const base: BeginCommand = {
  op: Op.BEGIN,
  imageSize: 300000,
  transferSize: 4000,
  encoding: 2,
  flags: 0,
  chunkSize: 240,
  sha256: randomBytes(32),
  baseSha256: randomBytes(32),
  tag: randomBytes(16),
};

const statusV2: StatusFields = {
  format: 2, protoVersion: 2, caps: 0x7ff, otaState: 2, confirmPolicy: 1, sessionState: 0, resetReason: 1,
  bootCount: 1, chipId: 9, secureVersion: 3, sessionOffset: 0, runningPartition: 'ota_0', appVersion: '3.0.0',
  projectName: 'demo', idfVersion: 'v5.3.2', runningSha256: '11'.repeat(32), lastResult: 0, lastFlags: 0x3e,
  lastSha256: '22'.repeat(32), lastMessage: '', updatePartitionSize: 0x1f0000, releaseFloor: 0xfffffffe,
  deviceId: 'a4:cf:12:00:fe:01', releaseKeyIds: 0b1010,
};

describe('protocol codec, revision 2.1: BEGIN', () => {
  it('is 93 bytes with base_sha256 at 45..76 and the tag at 77..92', () => {
    const buf = encodeCommand(base);
    assert.equal(buf.length, 93);
    assert.ok(buf.subarray(45, 77).equals(base.baseSha256 as Buffer));
    assert.ok(buf.subarray(77, 93).equals(base.tag));
    assert.deepEqual(decodeCommand(buf), base);
  });

  it('writes a zero base_sha256 when none is given and decodes it as 32 zero bytes', () => {
    const { baseSha256: _omit, ...raw } = { ...base, encoding: 0 };
    const decoded = decodeCommand(encodeCommand(raw)) as BeginCommand;
    assert.ok(decoded.baseSha256?.equals(Buffer.alloc(32)));
    assert.equal(decoded.manifest, undefined);
  });

  it('appends the manifest when flags bit1 is set: 93 + its length, round trip', () => {
    for (const devices of [0, 1, 32]) {
      const manifest = manifestOf(devices);
      const cmd = { ...base, flags: 3, manifest };
      const buf = encodeCommand(cmd);
      assert.equal(buf.length, 93 + 224 + 6 * devices);
      assert.ok(buf.length <= MAX_CONTROL_VALUE);
      assert.deepEqual(decodeCommand(buf), cmd);
    }
  });

  it('refuses to encode a manifest that disagrees with flags bit1 or with its own length field', () => {
    throwsCode(() => encodeCommand({ ...base, flags: 2 }), 'BAD_PARAMETER', /bit1.*no manifest/);
    throwsCode(() => encodeCommand({ ...base, manifest: manifestOf(0) }), 'BAD_PARAMETER', /bit1.*clear/);
    const wrong = manifestOf(1);
    wrong.writeUInt16LE(224, 6);
    throwsCode(() => encodeCommand({ ...base, flags: 2, manifest: wrong }), 'BAD_PARAMETER', /230 bytes but its length field says 224/);
    throwsCode(() => encodeCommand({ ...base, flags: 2, manifest: Buffer.alloc(5) }), 'BAD_PARAMETER', /8-byte head/);
    throwsCode(() => encodeCommand({ ...base, flags: 2, manifest: manifestOf(33) }), 'BAD_PARAMETER', /at most 512/);
  });

  it('decodes a BEGIN of the wrong length as BAD_LENGTH, with bit1 by the manifest length field', () => {
    const plain = encodeCommand(base);
    const withManifest = encodeCommand({ ...base, flags: 2, manifest: manifestOf(2) });
    const badLengths = [
      plain.subarray(0, 61), // the 2.0 length
      Buffer.concat([plain, Buffer.from([0])]),
      withManifest.subarray(0, withManifest.length - 1),
      Buffer.concat([withManifest, Buffer.from([0])]),
      withManifest.subarray(0, 100), // bit1 and less than 93 + 8
    ];
    for (const buf of badLengths) {
      const e = throwsCode(() => decodeCommand(buf), 'PROTOCOL_MALFORMED');
      assert.equal(e.details?.err, ErrorCode.BAD_LENGTH, `${buf.length} bytes`);
      assert.equal(malformedCommandResponse(buf)?.toString('hex'), '8205');
    }
    throwsCode(() => decodeCommand(Buffer.concat([withManifest, Buffer.from([0])])), 'PROTOCOL_MALFORMED', /93 \+ the manifest's length field 236 = 329 bytes/);
    assert.equal(malformedCommandResponse(withManifest), null);
  });

  it('tags bytes 1..76: base_sha256 is covered, the tag and the manifest are not', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(16);
    const buf = encodeCommand(base);
    const expected = createHmac('sha256', key).update('BLEOTA2-BEGIN').update(nonce).update(buf.subarray(1, 77)).digest().subarray(0, 16);
    assert.ok(beginTag(key, nonce, buf).equals(expected));
    assert.ok(beginTag(key, nonce, encodeCommand({ ...base, flags: 2, manifest: manifestOf(0) })).equals(beginTag(key, nonce, encodeCommand({ ...base, flags: 2, manifest: manifestOf(3) }))));
    assert.ok(!beginTag(key, nonce, encodeCommand({ ...base, baseSha256: randomBytes(32) })).equals(expected));
  });
});

describe('protocol codec, revision 2.1: PROVISION', () => {
  it('is op 0x08 with a 32-byte key (33 bytes) and a 2-byte response', () => {
    const key = randomBytes(32);
    const buf = encodeCommand({ op: Op.PROVISION, key });
    assert.equal(buf.length, 33);
    assert.equal(buf[0], 0x08);
    assert.deepEqual(decodeCommand(buf), { op: Op.PROVISION, key });
    assert.deepEqual(decodeNotification(Buffer.from('8800', 'hex')), { op: 0x88, err: 0 });
    assert.deepEqual(decodeNotification(Buffer.from('8801', 'hex')), { op: 0x88, err: ErrorCode.INVALID_STATE });
    assert.equal(encodeNotification({ op: 0x88, err: 0 }).toString('hex'), '8800');
  });

  it('refuses a wrong key length: encoder BAD_PARAMETER, decoder BAD_LENGTH', () => {
    throwsCode(() => encodeCommand({ op: Op.PROVISION, key: randomBytes(31) }), 'BAD_PARAMETER');
    const short = Buffer.concat([Buffer.from([Op.PROVISION]), randomBytes(16)]);
    assert.equal(throwsCode(() => decodeCommand(short), 'PROTOCOL_MALFORMED').details?.err, ErrorCode.BAD_LENGTH);
    assert.equal(malformedCommandResponse(short)?.toString('hex'), '8805');
  });
});

describe('protocol Status, format 2 and format 1', () => {
  it('round-trips format 2 (252 bytes) with every new field', () => {
    const buf = encodeStatus(statusV2);
    assert.equal(buf.length, STATUS_SIZE);
    assert.equal(buf.length, 252);
    assert.equal(buf.subarray(240, 246).toString('hex'), 'a4cf1200fe01', 'device_id in the order written');
    assert.ok(buf.subarray(247).equals(Buffer.alloc(5)), 'reserved bytes zero');
    const s = decodeStatus(buf);
    for (const k of Object.keys(statusV2) as Array<keyof StatusFields>) assert.deepEqual(s[k], statusV2[k], k);
    assert.deepEqual(s.releaseKeys, [1, 3]);
  });

  it('decodes format 1 (232 bytes) with the format-2 fields undefined', () => {
    const buf = encodeStatus({ ...statusV2, format: 1 });
    assert.equal(buf.length, 232);
    const s = decodeStatus(buf);
    assert.equal(s.format, 1);
    assert.equal(s.appVersion, '3.0.0');
    for (const k of ['updatePartitionSize', 'releaseFloor', 'deviceId', 'releaseKeyIds', 'releaseKeys'] as const) assert.equal(s[k], undefined, k);
  });

  it('rejects a size that does not fit the format, and unknown formats', () => {
    const v2 = encodeStatus(statusV2);
    throwsCode(() => decodeStatus(v2.subarray(0, 232)), 'PROTOCOL_MALFORMED', /232 bytes instead of 252 for format 2/);
    const v1as2 = Buffer.from(encodeStatus({ ...statusV2, format: 1 }));
    v1as2[0] = 2;
    throwsCode(() => decodeStatus(v1as2), 'PROTOCOL_MALFORMED');
    const v3 = Buffer.from(v2);
    v3[0] = 3;
    throwsCode(() => decodeStatus(v3), 'PROTOCOL_MALFORMED', /format 3/);
    throwsCode(() => decodeStatus(Buffer.alloc(0)), 'PROTOCOL_MALFORMED');
    throwsCode(() => encodeStatus({ ...statusV2, format: 3 }), 'BAD_PARAMETER');
  });

  it('writes 0 for missing format-2 fields and refuses malformed ones', () => {
    const { updatePartitionSize: _a, releaseFloor: _b, deviceId: _c, releaseKeyIds: _d, ...old } = statusV2;
    const s = decodeStatus(encodeStatus(old));
    assert.deepEqual([s.updatePartitionSize, s.releaseFloor, s.deviceId, s.releaseKeyIds], [0, 0, '00:00:00:00:00:00', 0]);
    throwsCode(() => encodeStatus({ ...statusV2, deviceId: 'a4:cf:12' }), 'BAD_PARAMETER');
    throwsCode(() => encodeStatus({ ...statusV2, releaseKeyIds: 256 }), 'BAD_PARAMETER');
    throwsCode(() => encodeStatus({ ...statusV2, updatePartitionSize: -1 }), 'BAD_PARAMETER');
    assert.equal(parseDeviceId('A4CF1200FE01').toString('hex'), 'a4cf1200fe01');
    assert.equal(parseDeviceId('a4-cf-12-00-fe-01').toString('hex'), 'a4cf1200fe01');
  });
});

describe('protocol caps and error codes, revision 2.1', () => {
  it('names each caps bit 0..12 and keeps the earlier name of bit1', () => {
    const names = ['deflate', 'sessionKeyRequired', 'resume', 'hostConfirm', 'antiDowngrade', 'signedImages', 'manifestRequired', 'delta', 'provisioningWindow', 'unauthenticatedAllowed', 'notProvisioned', 'manifestCommand', 'manifestStaging'] as const;
    names.forEach((name, bit) => {
      const caps = decodeCaps(1 << bit);
      const set = Object.entries(caps).filter(([, v]) => v).map(([k]) => k);
      assert.deepEqual(set.sort(), (bit === 1 ? ['fleetKeyRequired', 'sessionKeyRequired'] : [name]).sort(), `bit ${bit}`);
    });
    assert.equal(Caps.FLEET_KEY_REQUIRED, Caps.SESSION_KEY_REQUIRED);
    assert.deepEqual(decodeStatus(encodeStatus(statusV2)).capabilities, decodeCaps(0x7ff));
    assert.ok(Object.values(decodeCaps(0x1fff)).every(Boolean));
  });

  it('has codes 33..39 with names, sentences and DEVICE_ codes', () => {
    const expected = ['NOT_PROVISIONED', 'MANIFEST_REQUIRED', 'MANIFEST_INVALID', 'MANIFEST_MISMATCH', 'RELEASE_TOO_OLD', 'BASE_MISMATCH', 'PATCH_INVALID'];
    expected.forEach((name, i) => {
      assert.equal(errorName(33 + i), name);
      assert.equal(deviceErrorCode(33 + i), `DEVICE_${name}`);
      assert.doesNotMatch(errorSentence(33 + i), /does not know/);
    });
  });
});

describe('per-device keys and delta payloads', () => {
  it('derives a different 32-byte key per device id and refuses wrong lengths', () => {
    const master = randomBytes(32);
    const a = deriveDeviceKey(master, Buffer.from('a4cf1200fe01', 'hex'));
    const b = deriveDeviceKey(master, Buffer.from('a4cf1200fe02', 'hex'));
    assert.equal(a.length, 32);
    assert.ok(!a.equals(b));
    assert.ok(a.equals(deriveDeviceKey(master, Buffer.from('a4cf1200fe01', 'hex'))));
    throwsCode(() => deriveDeviceKey(randomBytes(16), Buffer.alloc(6)), 'BAD_KEY');
    throwsCode(() => deriveDeviceKey(master, Buffer.alloc(8)), 'BAD_DEVICE_ID');
  });

  it('frames the patch zlib stream (made by lib/delta), only to devices with caps bit7 and with a real base', () => {
    const image = randomBytes(1000);
    const patch = randomBytes(300);
    const baseSha = randomBytes(32);
    const p = prepareDeltaPayload(image, deflateSync(patch), baseSha, Caps.DELTA);
    assert.equal(p.encoding, 'delta');
    assert.ok(inflateSync(p.transfer).equals(patch));
    throwsCode(() => prepareDeltaPayload(image, Buffer.alloc(0), baseSha, Caps.DELTA), 'BAD_PARAMETER');
    assert.ok(p.baseSha256?.equals(baseSha));
    throwsCode(() => prepareDeltaPayload(image, patch, baseSha, Caps.DEFLATE), 'DELTA_UNSUPPORTED');
    throwsCode(() => prepareDeltaPayload(image, patch, Buffer.alloc(32), Caps.DELTA), 'BAD_PARAMETER');
  });
});
