/** Codec, Status, advertisement, auth and payload: round trips and malformed input. */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { inflateSync } from 'zlib';
import {
  controlWriteAttError,
  decodeCommand,
  decodeDataChunk,
  decodeNotification,
  encodeCommand,
  encodeNotification,
  malformedCommandResponse,
} from '../../lib/protocol/codec';
import { decodeStatus, encodeStatus, StatusFields } from '../../lib/protocol/status';
import { decodeAdvertisement, encodeAdvertisement, tryDecodeAdvertisement, versionBytes } from '../../lib/protocol/advertisement';
import { beginTag, commandTag, parseFleetKey } from '../../lib/protocol/auth';
import { prepareTransferPayload } from '../../lib/protocol/payload';
import { Caps, ErrorCode, MAX_NOTIFICATION_AT_MIN_MTU, Op, deviceErrorCode, errorName, errorSentence, ERROR_SENTENCES, ErrorName } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';

function throwsCode(fn: () => unknown, code: string): OtaError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OtaError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

const begin = {
  op: Op.BEGIN,
  imageSize: 123456,
  transferSize: 65432,
  encoding: 1,
  flags: 1,
  chunkSize: 240,
  sha256: randomBytes(32),
  baseSha256: Buffer.alloc(32),
  tag: randomBytes(16),
} as const;

const status: StatusFields = {
  format: 1, protoVersion: 2, caps: 0x3f, otaState: 1, confirmPolicy: 1, sessionState: 2, resetReason: 4,
  bootCount: 65535, chipId: 18, secureVersion: 0xffffffff, sessionOffset: 4096, runningPartition: 'ota_1',
  appVersion: 'ünïcode-1.0', projectName: 'p'.repeat(32), idfVersion: 'v5.4', runningSha256: 'ab'.repeat(32),
  lastResult: ErrorCode.HASH_MISMATCH, lastFlags: 0x1f, lastSha256: 'cd'.repeat(32), lastMessage: 'hash mismatch',
};

describe('protocol codec', () => {
  it('round-trips every command', () => {
    for (const cmd of [{ op: Op.CHALLENGE }, begin, { op: Op.END, flags: 1 }, { op: Op.ABORT, tag: randomBytes(16) }, { op: Op.REBOOT, tag: randomBytes(16) }] as const) {
      assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
    }
    assert.equal(encodeCommand(begin).length, 93);
  });

  it('rejects commands of the wrong length with BAD_LENGTH and unknown opcodes with UNKNOWN_OPCODE', () => {
    const long = Buffer.concat([encodeCommand(begin), Buffer.from([0])]);
    assert.equal(throwsCode(() => decodeCommand(long), 'PROTOCOL_MALFORMED').details?.err, ErrorCode.BAD_LENGTH);
    assert.equal(throwsCode(() => decodeCommand(Buffer.from([Op.END])), 'PROTOCOL_MALFORMED').details?.err, ErrorCode.BAD_LENGTH);
    assert.equal(throwsCode(() => decodeCommand(Buffer.from([0x42, 1])), 'PROTOCOL_MALFORMED').details?.err, ErrorCode.UNKNOWN_OPCODE);
    assert.equal(malformedCommandResponse(Buffer.from([Op.CONFIRM, 1, 2]))?.toString('hex'), '8505');
    assert.equal(malformedCommandResponse(Buffer.from([0x42]))?.toString('hex'), 'ff0642');
    assert.equal(malformedCommandResponse(Buffer.from([Op.CHALLENGE])), null);
    assert.equal(controlWriteAttError(Buffer.alloc(0)), 0x0d);
    assert.equal(controlWriteAttError(Buffer.alloc(513)), 0x0d);
    assert.equal(controlWriteAttError(Buffer.alloc(512)), null);
  });

  it('refuses to encode out-of-range fields', () => {
    throwsCode(() => encodeCommand({ ...begin, chunkSize: 70000 }), 'BAD_PARAMETER');
    throwsCode(() => encodeCommand({ ...begin, sha256: Buffer.alloc(31) }), 'BAD_PARAMETER');
    throwsCode(() => encodeNotification({ op: Op.DATA_ACK, nextOffset: -1 }), 'BAD_PARAMETER');
    throwsCode(() => encodeNotification({ op: 0x10, err: 0 }), 'BAD_PARAMETER');
  });

  it('round-trips notifications and keeps error responses at 2 bytes', () => {
    const msgs = [
      { op: 0x81, err: 0, nonce: randomBytes(16), caps: 7 },
      { op: 0x82, err: 0, chunkSize: 508, window: 16384, ackInterval: 4096, resumeOffset: 99 },
      { op: 0x83, err: 0, imageSize: 5 },
      { op: 0x86, err: 0 },
      { op: 0x82, err: ErrorCode.BUSY },
      { op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: 0xfffffff0 },
      { op: Op.SESSION_ABORTED, err: ErrorCode.FLASH_ERROR },
      { op: 0xff, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: 0x33 },
    ];
    for (const m of msgs) assert.deepEqual(decodeNotification(encodeNotification(m as never)), m);
    assert.equal(encodeNotification({ op: 0x82, err: ErrorCode.BUSY }).length, 2);
  });

  it('keeps every Control notification within 20 bytes (ATT MTU 23), CHALLENGE included', () => {
    const largest = [
      { op: 0x81, err: 0, nonce: randomBytes(16), caps: 0xffff },
      { op: 0x82, err: 0, chunkSize: 0xffff, window: 0xffffffff, ackInterval: 0xffffffff, resumeOffset: 0xffffffff },
      { op: 0x83, err: 0, imageSize: 0xffffffff },
      { op: 0x87, err: 0 },
      { op: Op.DATA_ACK, nextOffset: 0xffffffff },
      { op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: 0xffffffff },
      { op: Op.SESSION_ABORTED, err: ErrorCode.FLASH_ERROR },
      { op: 0xff, err: ErrorCode.UNKNOWN_OPCODE, unknownOp: 0x33 },
    ];
    for (const m of largest) assert.ok(encodeNotification(m as never).length <= MAX_NOTIFICATION_AT_MIN_MTU, JSON.stringify(m));
    assert.equal(encodeNotification(largest[0] as never).length, 20);
    // The pre-fix 21-byte CHALLENGE response (with proto_version) is no longer the format.
    throwsCode(() => decodeNotification(Buffer.concat([encodeNotification(largest[0] as never), Buffer.from([2])])), 'PROTOCOL_MALFORMED');
  });

  it('rejects malformed notifications with PROTOCOL_MALFORMED', () => {
    for (const hex of ['', '8200', '820200', '81000102', 'a000', 'a10e000000', 'a2', 'ff0542', 'ff06', '9000', '0200']) {
      throwsCode(() => decodeNotification(Buffer.from(hex, 'hex')), 'PROTOCOL_MALFORMED');
    }
  });

  it('decodes data chunks and reports an empty write as EMPTY_WRITE', () => {
    assert.deepEqual(decodeDataChunk(Buffer.from('0010000001', 'hex')), { offset: 4096, payload: Buffer.from([1]) });
    assert.equal(throwsCode(() => decodeDataChunk(Buffer.from('00100000', 'hex')), 'PROTOCOL_MALFORMED').details?.err, ErrorCode.EMPTY_WRITE);
  });
});

describe('protocol Status', () => {
  it('round-trips every field, including full-width strings and UTF-8', () => {
    const decoded = decodeStatus(encodeStatus(status));
    for (const k of Object.keys(status) as Array<keyof StatusFields>) assert.deepEqual(decoded[k], status[k], k);
    assert.equal(decoded.chip, 'esp32p4');
    assert.equal(decoded.otaStateName, 'pending-verify');
    assert.equal(decoded.sessionStateName, 'suspended');
    assert.equal(decoded.lastResultName, 'HASH_MISMATCH');
    assert.deepEqual(decoded.last, { rolledBack: true, diagnosticsRan: true, diagnosticsPassed: true, confirmed: true, recordValid: true });
    assert.equal(decoded.capabilities.signedImages, true);
  });

  it('rejects wrong size, format and undefined enum values', () => {
    const good = encodeStatus(status);
    throwsCode(() => decodeStatus(good.subarray(0, 231)), 'PROTOCOL_MALFORMED');
    for (const [offset, value] of [[0, 2], [4, 6], [5, 2], [6, 4]]) {
      const bad = Buffer.from(good);
      bad[offset] = value;
      throwsCode(() => decodeStatus(bad), 'PROTOCOL_MALFORMED');
    }
    throwsCode(() => encodeStatus({ ...status, appVersion: 'x'.repeat(33) }), 'BAD_PARAMETER');
  });
});

describe('protocol advertisement', () => {
  it('parses versions per §8', () => {
    assert.deepEqual(versionBytes('v1.2.3'), [1, 2, 3]);
    assert.deepEqual(versionBytes('V10.20.254+build'), [10, 20, 254]);
    for (const v of ['1.2', '1.2.3.4', '1.2.255', 'custom', '', '1.2.3rc1', ' 1.2.3']) assert.deepEqual(versionBytes(v), [255, 255, 255], v);
  });

  it('round-trips and rejects other vendors and wrong lengths', () => {
    const fields = { otaState: 4, rolledBack: true, diagnosticsFailed: false, sessionActive: true, hostPolicy: false, authRequired: true, shaPrefix: '0a0b0c0d', version: '3.2.1' };
    const buf = encodeAdvertisement(fields);
    const decoded = decodeAdvertisement(buf);
    assert.equal(decoded.otaState, 'aborted');
    assert.equal(decoded.version, '3.2.1');
    assert.equal(decoded.shaPrefix, '0a0b0c0d');
    assert.equal(tryDecodeAdvertisement(Buffer.from('4c000215', 'hex')), null);
    throwsCode(() => decodeAdvertisement(Buffer.concat([buf, Buffer.from([0])])), 'PROTOCOL_MALFORMED');
    const badState = Buffer.from(buf);
    badState[3] = (badState[3] & ~7) | 7;
    throwsCode(() => decodeAdvertisement(badState), 'PROTOCOL_MALFORMED');
  });
});

describe('protocol auth, errors and payload', () => {
  const key = randomBytes(32);
  it('binds tags to key, nonce, content and opcode', () => {
    const nonce = randomBytes(16);
    const req = encodeCommand(begin);
    const tag = beginTag(key, nonce, req);
    assert.equal(tag.length, 16);
    assert.deepEqual(beginTag(key, nonce, encodeCommand({ ...begin, tag: Buffer.alloc(16) })), tag, 'the tag field itself is not covered');
    assert.notDeepEqual(beginTag(key, randomBytes(16), req), tag);
    assert.notDeepEqual(beginTag(key, nonce, encodeCommand({ ...begin, imageSize: 1 })), tag);
    assert.notDeepEqual(commandTag(key, nonce, Op.CONFIRM), commandTag(key, nonce, Op.ROLLBACK));
    throwsCode(() => commandTag(Buffer.alloc(16), nonce, Op.ABORT), 'BAD_FLEET_KEY');
    assert.deepEqual(parseFleetKey(key.toString('hex')), key);
    throwsCode(() => parseFleetKey('abc'), 'BAD_FLEET_KEY');
  });

  it('names every error code with a sentence and DEVICE_ prefix', () => {
    for (const name of Object.keys(ERROR_SENTENCES) as ErrorName[]) {
      assert.equal(errorName(ErrorCode[name]), name);
      assert.ok(errorSentence(ErrorCode[name]).endsWith('.'));
    }
    assert.equal(deviceErrorCode(ErrorCode.WRONG_CHIP), 'DEVICE_WRONG_CHIP');
    assert.equal(errorName(0x99), 'UNKNOWN_0x99');
  });

  it('prepares raw and deflate payloads', () => {
    const text = Buffer.from('abc'.repeat(5000));
    const deflated = prepareTransferPayload(text, 'auto', Caps.DEFLATE);
    assert.equal(deflated.encoding, 'deflate');
    assert.deepEqual(inflateSync(deflated.transfer), text);
    assert.equal(prepareTransferPayload(randomBytes(5000), 'auto', Caps.DEFLATE).encoding, 'raw');
    assert.equal(prepareTransferPayload(text, 'auto', 0).encoding, 'raw');
    throwsCode(() => prepareTransferPayload(text, 'deflate', 0), 'DEFLATE_UNSUPPORTED');
    throwsCode(() => prepareTransferPayload(Buffer.alloc(0), 'raw', 0), 'EMPTY_IMAGE');
  });
});
