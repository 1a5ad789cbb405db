/** Every vector of docs/protocol-vectors.json: decode(hex) == fields and encode(fields) == hex. */
import { strict as assert } from 'assert';
import {
  Command,
  ControlNotification,
  decodeCommand,
  decodeDataChunk,
  decodeNotification,
  encodeCommand,
  encodeDataChunk,
  encodeNotification,
} from '../../lib/protocol/codec';
import { StatusFields, decodeStatus, encodeStatus } from '../../lib/protocol/status';
import { decodeAdvertisement, encodeAdvertisement, versionBytes } from '../../lib/protocol/advertisement';
import { beginTag, commandTag } from '../../lib/protocol/auth';
import { ADV_MARKER_V2, ESPRESSIF_COMPANY_ID, MAX_NOTIFICATION_AT_MIN_MTU, Op, TaggedOp } from '../../lib/protocol/constants';
import { Vector, camelToSnake, fieldsToMessage, loadVectors, messageToFields } from './vectors';

const file = loadVectors();
const fleetKey = Buffer.from(file.fleetKey, 'hex');

const STATUS_KEYS: Array<keyof StatusFields> = [
  'format', 'protoVersion', 'caps', 'otaState', 'confirmPolicy', 'sessionState', 'resetReason', 'bootCount',
  'chipId', 'secureVersion', 'sessionOffset', 'runningPartition', 'appVersion', 'projectName', 'idfVersion',
  'runningSha256', 'lastResult', 'lastFlags', 'lastSha256', 'lastMessage',
];

function versionFromNote(note: string): string {
  const m = /Version string: (".*")\.$/.exec(note);
  assert.ok(m, `note names the version string: ${note}`);
  return JSON.parse(m[1]) as string;
}

interface Codec {
  decode(buf: Buffer): Record<string, unknown>;
  encode(v: Vector): Buffer;
}

const codecs: Record<Vector['kind'], Codec> = {
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
    decode: (buf) => {
      const s = decodeStatus(buf);
      return Object.fromEntries(STATUS_KEYS.map((k) => [camelToSnake(k), s[k]]));
    },
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
  it('has every kind of §11 and a 32-byte fleet key', () => {
    assert.equal(file.version, 1);
    assert.equal(fleetKey.length, 32);
    const kinds = new Set(file.vectors.map((v) => v.kind));
    assert.deepEqual([...kinds].sort(), ['advertisement', 'command', 'data', 'notification', 'response', 'status']);
  });

  for (const v of file.vectors) {
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
