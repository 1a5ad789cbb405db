/** Every vector of docs/protocol-vectors.json: decode(hex) == fields and encode(fields) == hex. */
import { strict as assert } from 'assert';
import { createECDH, createPublicKey, createHash, verify as verifySignature } from 'crypto';
import { inflateSync } from 'zlib';
import {
  Command,
  ControlNotification,
  decodeCommand,
  decodeDataChunk,
  decodeNotification,
  encodeCommand,
  encodeDataChunk,
  encodeNotification,
  encodeStagingChunk,
} from '../../lib/protocol/codec';
import { StatusFields, decodeStatus, encodeStatus } from '../../lib/protocol/status';
import { applyPatchReference, PatchError } from './patch-reference';
import { decodeAdvertisement, encodeAdvertisement, versionBytes } from '../../lib/protocol/advertisement';
import { beginTag, commandTag } from '../../lib/protocol/auth';
import { deriveDeviceKey } from '../../lib/security/keys';
import { ADV_MARKER_V2, ESPRESSIF_COMPANY_ID, ErrorCode, MAX_NOTIFICATION_AT_MIN_MTU, Op, STAGING_OFFSET_FLAG, TaggedOp, decodeCaps } from '../../lib/protocol/constants';
import type { OtaError } from '../../lib/errors';
import { Vector, camelToSnake, fieldsToMessage, loadVectors, messageToFields } from './vectors';

const file = loadVectors();
const fleetKey = Buffer.from(file.fleetKey, 'hex');

const STATUS_KEYS: Array<keyof StatusFields> = [
  'format', 'protoVersion', 'caps', 'otaState', 'confirmPolicy', 'sessionState', 'resetReason', 'bootCount',
  'chipId', 'secureVersion', 'sessionOffset', 'runningPartition', 'appVersion', 'projectName', 'idfVersion',
  'runningSha256', 'lastResult', 'lastFlags', 'lastSha256', 'lastMessage',
];
/** Format 2 only; device_id is 12 hex digits in the vectors and "aa:bb:.." in StatusFields. */
const STATUS_KEYS_2: Array<keyof StatusFields> = ['updatePartitionSize', 'releaseFloor', 'deviceId', 'releaseKeyIds'];

function statusToFields(s: StatusFields): Record<string, unknown> {
  const out: Record<string, unknown> = Object.fromEntries(STATUS_KEYS.map((k) => [camelToSnake(k), s[k]]));
  for (const k of STATUS_KEYS_2) {
    if (s[k] !== undefined) out[camelToSnake(k)] = k === 'deviceId' ? (s.deviceId as string).replace(/:/g, '') : s[k];
  }
  return out;
}

/** The release public key (65-byte SEC1 point) as a Node key object. */
function releasePublicKey() {
  const point = Buffer.from(file.releasePublicKey, 'hex');
  const b64url = (b: Buffer) => b.toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33)) }, format: 'jwk' });
}

/** Manifest fields read at the offsets of PROTOCOL.md §12 (independently of the generator's decoder). */
function manifestOffsets(raw: Buffer) {
  const n = raw.readUInt16LE(86);
  return { n, length: raw.readUInt16LE(6), imageSize: raw.readUInt32LE(40), release: raw.readUInt32LE(76), signed: raw.subarray(0, 160 + 6 * n), signature: raw.subarray(160 + 6 * n) };
}

function versionFromNote(note: string): string {
  const m = /Version string: (".*")\.$/.exec(note);
  assert.ok(m, `note names the version string: ${note}`);
  return JSON.parse(m[1]) as string;
}

interface Codec {
  decode(buf: Buffer): Record<string, unknown>;
  encode(v: Vector): Buffer;
}

type CodecKind = Exclude<Vector['kind'], 'manifest' | 'device_key' | 'patch'>;
const codecs: Record<CodecKind, Codec> = {
  command: {
    decode: (buf) => messageToFields(decodeCommand(buf)),
    encode: (v) => encodeCommand(fieldsToMessage(v.fields) as unknown as Command),
  },
  response: {
    decode: (buf) => messageToFields(decodeNotification(buf)),
    encode: (v) => encodeNotification(fieldsToMessage(v.fields) as unknown as ControlNotification),
  },
  notification: {
    decode: (buf) => messageToFields(decodeNotification(buf)),
    encode: (v) => encodeNotification(fieldsToMessage(v.fields) as unknown as ControlNotification),
  },
  data: {
    decode: (buf) => messageToFields(decodeDataChunk(buf)),
    encode: (v) => encodeDataChunk(fieldsToMessage(v.fields) as unknown as { offset: number; payload: Buffer }),
  },
  status: {
    decode: (buf) => statusToFields(decodeStatus(buf)),
    encode: (v) => encodeStatus(fieldsToMessage(v.fields, false) as unknown as StatusFields),
  },
  advertisement: {
    decode: (buf) => {
      const a = decodeAdvertisement(buf);
      const [major, minor, patch] = a.version === null ? [0xff, 0xff, 0xff] : a.version.split('.').map(Number);
      return {
        company_id: buf.readUInt16LE(0),
        marker: buf[2],
        ota_state: a.otaStateCode,
        rolled_back: a.rolledBack,
        diagnostics_failed: a.diagnosticsFailed,
        session_active: a.sessionActive,
        host_policy: a.hostPolicy,
        fleet_key_required: a.authRequired,
        sha_prefix: a.shaPrefix,
        version_major: major,
        version_minor: minor,
        version_patch: patch,
      };
    },
    encode: (v) => {
      const f = v.fields;
      assert.equal(f.company_id, ESPRESSIF_COMPANY_ID);
      assert.equal(f.marker, ADV_MARKER_V2);
      return encodeAdvertisement({
        otaState: f.ota_state as number,
        rolledBack: f.rolled_back as boolean,
        diagnosticsFailed: f.diagnostics_failed as boolean,
        sessionActive: f.session_active as boolean,
        hostPolicy: f.host_policy as boolean,
        authRequired: f.fleet_key_required as boolean,
        shaPrefix: f.sha_prefix as string,
        version: versionFromNote(v.note),
      });
    },
  },
};

describe('protocol vectors (docs/protocol-vectors.json)', () => {
  it('has every kind of §11, a 32-byte fleet key and master key, and a release key pair that belongs together', () => {
    assert.equal(file.version, 2);
    assert.equal(fleetKey.length, 32);
    assert.equal(Buffer.from(file.masterKey, 'hex').length, 32);
    const kinds = new Set(file.vectors.map((v) => v.kind));
    assert.deepEqual([...kinds].sort(), ['advertisement', 'command', 'data', 'device_key', 'manifest', 'notification', 'patch', 'response', 'status']);
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(file.releasePrivateKey, 'hex'));
    assert.equal(ecdh.getPublicKey('hex', 'uncompressed'), file.releasePublicKey);
  });

  it('has a BEGIN with base_sha256, a BEGIN with a manifest, PROVISION, every new error code and Status format 1 and 2', () => {
    const commands = file.vectors.filter((v) => v.kind === 'command');
    assert.ok(commands.some((v) => v.fields.encoding === 2 && !/^0+$/.test(v.fields.base_sha256 as string)));
    assert.ok(commands.some((v) => ((v.fields.flags as number) & 2) !== 0 && typeof v.fields.manifest === 'string'));
    assert.ok(commands.some((v) => v.fields.op === Op.PROVISION));
    const errs = new Set(file.vectors.map((v) => v.fields.err));
    for (let code = 33; code <= 39; code++) assert.ok(errs.has(code), `error ${code}`);
    const formats = new Set(file.vectors.filter((v) => v.kind === 'status').map((v) => v.fields.format));
    assert.deepEqual([...formats].sort(), [1, 2]);
  });

  it('has the MANIFEST command of revision 2.2: the manifest alone, its length rule, the plain BEGIN after it and caps bit11', () => {
    const byName = (name: string) => {
      const v = file.vectors.find((x) => x.name === name);
      assert.ok(v, name);
      return v;
    };
    const cmd = byName('manifest-command');
    const manifest = byName('manifest-any-device');
    assert.equal(cmd.hex, '09' + manifest.hex);
    assert.deepEqual(decodeCommand(Buffer.from(cmd.hex, 'hex')), { op: Op.MANIFEST, manifest: Buffer.from(manifest.hex, 'hex') });
    // one byte short of the manifest's length field: BAD_LENGTH, as BEGIN's manifest
    assert.throws(() => decodeCommand(Buffer.from(cmd.hex, 'hex').subarray(0, -1)), (e: OtaError) => e.details?.err === ErrorCode.BAD_LENGTH);
    const begin = byName('begin-raw-after-manifest');
    assert.equal(begin.fields.flags, 0);
    assert.equal(begin.hex.length / 2, 93);
    assert.equal(begin.fields.sha256, manifest.fields.image_sha256);
    assert.ok(decodeCaps(byName('challenge-ok-manifest-command').fields.caps as number).manifestCommand);
    assert.equal(byName('manifest-ok').hex, '8900');
  });

  it('has manifest staging of revision 2.3: Data writes at 0x80000000 | manifest offset, their NAK, the empty MANIFEST and caps bit12', () => {
    const byName = (name: string) => {
      const v = file.vectors.find((x) => x.name === name);
      assert.ok(v, name);
      return v;
    };
    const manifest = Buffer.from(byName('manifest-any-device').hex, 'hex');
    const first = byName('data-manifest-staging-first');
    const next = byName('data-manifest-staging');
    assert.ok(encodeStagingChunk(0, manifest.subarray(0, 16)).equals(Buffer.from(first.hex, 'hex')));
    assert.ok(encodeStagingChunk(16, manifest.subarray(16, 32)).equals(Buffer.from(next.hex, 'hex')));
    assert.equal(first.hex.length / 2, 20, 'one Write Command at ATT MTU 23');
    assert.equal(decodeDataChunk(Buffer.from(next.hex, 'hex')).offset, STAGING_OFFSET_FLAG + 16);
    assert.equal(byName('manifest-commit-staged').hex, '09');
    assert.deepEqual(decodeCommand(Buffer.from('09', 'hex')), { op: Op.MANIFEST });
    assert.ok(encodeCommand({ op: Op.MANIFEST }).equals(Buffer.from('09', 'hex')));
    const nak = decodeNotification(Buffer.from(byName('data-nak-staging-bad-length').hex, 'hex'));
    assert.deepEqual(nak, { op: Op.DATA_NAK, err: ErrorCode.BAD_LENGTH, expectedOffset: STAGING_OFFSET_FLAG + 16 });
    const caps = decodeCaps(byName('challenge-ok-manifest-staging').fields.caps as number);
    assert.ok(caps.manifestStaging && caps.manifestCommand, 'bit12 comes with bit11');
    assert.throws(() => encodeStagingChunk(400, Buffer.alloc(17)), (e: OtaError) => e.code === 'BAD_PARAMETER');
  });

  for (const v of file.vectors.filter((x) => x.kind === 'manifest')) {
    describe(`manifest ${v.name}`, () => {
      const raw = Buffer.from(v.hex, 'hex');
      const m = manifestOffsets(raw);
      it('has the layout of §12 (length = 224 + 6·n, fields at their offsets)', () => {
        assert.equal(raw.subarray(0, 4).toString('ascii'), 'BOM1');
        assert.equal(m.length, raw.length);
        assert.equal(m.length, 224 + 6 * m.n);
        assert.equal(m.n, v.fields.device_count);
        assert.equal(m.imageSize, v.fields.image_size);
        assert.equal(m.release, v.fields.release);
        assert.equal(raw.subarray(8, 40).toString('hex'), v.fields.image_sha256);
        assert.equal(raw.subarray(44, 76).toString('hex'), v.fields.base_sha256);
        assert.deepEqual(Array.from({ length: m.n }, (_x, i) => raw.subarray(160 + 6 * i, 166 + 6 * i).toString('hex')), v.fields.device_ids);
      });
      it(`has a signature that ${v.fields.signature_valid ? 'verifies' : 'does not verify'} under the release public key (Node's ECDSA)`, () => {
        const ok = verifySignature('sha256', m.signed, { key: releasePublicKey(), dsaEncoding: 'ieee-p1363' }, m.signature);
        assert.equal(ok, v.fields.signature_valid);
      });
    });
  }

  for (const v of file.vectors.filter((x) => x.kind === 'device_key')) {
    it(`device_key ${v.name}: deriveDeviceKey gives the HKDF output`, () => {
      const key = deriveDeviceKey(Buffer.from(v.fields.master_key as string, 'hex'), Buffer.from(v.fields.device_id as string, 'hex'));
      assert.equal(key.toString('hex'), v.fields.device_key);
      assert.equal(key.toString('hex'), v.hex);
    });
  }

  for (const v of file.vectors.filter((x) => x.kind === 'patch')) {
    it(`patch ${v.name}: the transfer inflates to the patch and a second reading of §13 agrees`, () => {
      const patch = Buffer.from(v.hex, 'hex');
      const f = v.fields;
      assert.ok(inflateSync(Buffer.from(f.transfer as string, 'hex')).equals(patch));
      const base = Buffer.from(f.base as string, 'hex');
      assert.equal(createHash('sha256').update(base).digest('hex'), f.base_sha256);
      if (f.image !== undefined) {
        const image = applyPatchReference(base, patch, f.image_size as number);
        assert.equal(image.toString('hex'), f.image);
        assert.equal(createHash('sha256').update(image).digest('hex'), f.image_sha256);
      } else {
        assert.throws(() => applyPatchReference(base, patch, f.image_size as number), (e: unknown) => e instanceof PatchError && e.err === f.error);
      }
    });
  }

  for (const v of file.vectors.filter((x): x is Vector & { kind: CodecKind } => !['manifest', 'device_key', 'patch'].includes(x.kind))) {
    describe(`${v.kind} ${v.name}`, () => {
      it('decodes to its fields', () => {
        assert.deepEqual(codecs[v.kind].decode(Buffer.from(v.hex, 'hex')), v.fields);
      });
      it('encodes from its fields', () => {
        assert.equal(codecs[v.kind].encode(v).toString('hex'), v.hex);
      });
      if (v.nonce) {
        it('carries the tag computed with the fleet key and its nonce', () => {
          const nonce = Buffer.from(v.nonce as string, 'hex');
          const raw = Buffer.from(v.hex, 'hex');
          const expected = raw[0] === Op.BEGIN ? beginTag(fleetKey, nonce, raw) : commandTag(fleetKey, nonce, raw[0] as TaggedOp);
          assert.equal(expected.toString('hex'), v.fields.tag);
        });
      }
      if (v.kind === 'response' || v.kind === 'notification') {
        it('fits one notification at ATT MTU 23 (20 bytes)', () => {
          assert.ok(v.hex.length / 2 <= MAX_NOTIFICATION_AT_MIN_MTU, `${v.hex.length / 2} bytes`);
        });
      }
      if (v.kind === 'advertisement') {
        it('parses the version string of its note to its version bytes', () => {
          assert.deepEqual(versionBytes(versionFromNote(v.note)), [v.fields.version_major, v.fields.version_minor, v.fields.version_patch]);
        });
      }
    });
  }
});
