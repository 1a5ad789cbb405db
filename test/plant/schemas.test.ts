import { strict as assert } from 'assert';
import { OtaError } from '../../lib/errors';
import type { CampaignSpec, CampaignState } from '../../lib/plant/messages';
import {
  PLANT_MESSAGE_KINDS,
  PLANT_PAYLOAD_LIMIT,
  PLANT_SCHEMAS,
  PLANT_STATE_PAYLOAD_LIMIT,
  encodePlantMessage,
  errorForWire,
  parsePlantMessage,
  type MessageOf,
  type PlantMessageKind,
} from '../../lib/plant/schemas';

const SHA = 'ab'.repeat(32);

const spec: CampaignSpec = {
  id: 'line-3.rollout',
  name: 'Line 3 to 1.4.0',
  image: { sha256: SHA, file: 'app-1.4.0.bin' },
  target: { namePrefix: 'PUMP-', chip: 'esp32c3', versionOlderThan: '1.4.0' },
  waves: [{ count: 1 }, { percent: 25, maxFailurePercent: 10 }, { percent: 100, maxFailures: 3 }],
  deviceTimeoutMs: 300000,
  maxConcurrent: 20,
  encoding: 'auto',
  confirm: true,
  maxAttempts: 3,
  maxReassignments: 2,
};

const image = { sha256: SHA, size: 912384, version: '1.4.0', chip: 'esp32c3', project: 'pump' };

const state: CampaignState = {
  v: 1,
  id: 'line-3.rollout',
  name: 'Line 3 to 1.4.0',
  coordinator: 'coord-1',
  createdAt: 1764630000000,
  updatedAt: 1764630005000,
  state: 'running',
  reason: null,
  spec,
  image,
  currentWave: 0,
  waves: [{ size: 1, state: 'running', failed: 0, succeeded: 0 }],
  devices: [
    {
      address: 'aa:bb:cc:dd:ee:01',
      name: 'PUMP-01',
      wave: 0,
      state: 'in-progress',
      gateway: 'gw-a',
      taskId: 't-1',
      assignments: [{ gateway: 'gw-a', taskId: 't-1', at: 1764630001000, ended: null }],
      before: { version: '1.3.0', sha256: null },
      after: null,
      progress: 42.5,
      error: null,
      startedAt: 1764630001000,
      endedAt: null,
    },
  ],
};

export const PLANT_SAMPLES: { [K in PlantMessageKind]: MessageOf<K> } = {
  presence: { v: 1, gateway: 'gw-a', state: 'online', at: 1764630000000, slots: { total: 3, free: 2 }, adapter: { label: 'hci0', simulated: false }, software: '0.1.0' },
  sightings: {
    v: 1,
    gateway: 'gw-a',
    at: 1764630000000,
    devices: [{ address: 'aa:bb:cc:dd:ee:01', name: 'PUMP-01', rssi: -61, version: '1.3.0', hashPrefix: '0123abcd', protocol: 'v2', otaState: 'valid', sessionActive: false, lastSeen: 1764629999000 }],
  },
  task: {
    v: 1,
    type: 'install',
    taskId: 't-1',
    campaign: 'line-3.rollout',
    device: { address: 'aa:bb:cc:dd:ee:01', name: 'PUMP-01' },
    image: { ...image, manifest: 'AAECAw==' },
    timeoutMs: 300000,
    options: { encoding: 'auto', confirm: true, maxAttempts: 3 },
  },
  execution: {
    v: 1,
    campaign: 'line-3.rollout',
    taskId: 't-1',
    gateway: 'gw-a',
    device: { address: 'aa:bb:cc:dd:ee:01', name: 'PUMP-01' },
    state: 'succeeded',
    at: 1764630100000,
    before: { version: '1.3.0', sha256: null },
    after: { version: '1.4.0', sha256: SHA },
    installed: true,
    seconds: 41.2,
    bytesOnAir: 512000,
    encoding: 'deflate',
  },
  imageRequest: { v: 1, gateway: 'gw-a', sha256: SHA },
  claim: { v: 1, campaign: 'line-3.rollout', address: 'aa:bb:cc:dd:ee:01', at: 1764630000000 },
  control: { v: 1, action: 'pause', reason: 'shift change' },
  campaignState: state,
  campaignProgress: {
    v: 1,
    campaign: 'line-3.rollout',
    state: 'running',
    at: 1764630005000,
    wave: 0,
    counts: { pending: 30, assigned: 1, 'in-progress': 1, succeeded: 0, skipped: 2, failed: 0, 'rolled-back': 0, cancelled: 0 },
    total: 34,
    devicesPerMinute: 0,
    etaMs: null,
  },
  campaignSpec: spec,
};

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x)) as T;
}

/** The OtaError a parse throws (fails the test when it does not throw). */
function refusal(kind: PlantMessageKind, payload: Buffer | string | object): OtaError {
  try {
    parsePlantMessage(kind, payload);
  } catch (err) {
    assert.ok(err instanceof OtaError, String(err));
    return err;
  }
  assert.fail(`${kind}: accepted ${JSON.stringify(payload).slice(0, 200)}`);
}

describe('plant message schemas', () => {
  it('has a JSON Schema 2020-12 for every kind, strict about unknown fields', () => {
    assert.deepEqual(Object.keys(PLANT_SCHEMAS).sort(), [...PLANT_MESSAGE_KINDS].sort());
    for (const kind of PLANT_MESSAGE_KINDS) {
      const s = PLANT_SCHEMAS[kind] as Record<string, unknown>;
      assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema', kind);
      if (kind !== 'task') assert.equal(s.additionalProperties, false, kind);
    }
  });

  describe('accepts a valid sample of each kind', () => {
    for (const kind of PLANT_MESSAGE_KINDS) {
      it(kind, () => {
        const sample = PLANT_SAMPLES[kind];
        const bytes = encodePlantMessage(kind, sample);
        assert.deepEqual(parsePlantMessage(kind, bytes), sample);
        assert.deepEqual(parsePlantMessage(kind, bytes.toString('utf8')), sample);
        assert.deepEqual(parsePlantMessage(kind, sample), sample);
      });
    }
    it('a cancel task', () => {
      const cancel = { v: 1, type: 'cancel', taskId: 't-1', campaign: 'c1', reason: 'timeout at the coordinator' };
      assert.deepEqual(parsePlantMessage('task', cancel), cancel);
    });
    it('an object with undefined optional fields (they vanish as in JSON)', () => {
      const control = { v: 1, action: 'resume', reason: undefined };
      assert.deepEqual(parsePlantMessage('control', control), { v: 1, action: 'resume' });
    });
  });

  describe('refuses', () => {
    it('an oversized payload with PAYLOAD_TOO_LARGE before parsing it', () => {
      const big = Buffer.alloc(PLANT_PAYLOAD_LIMIT + 1, 0x20);
      const err = refusal('presence', big);
      assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
      assert.match(err.message, /presence message is 262145 bytes, more than the 262144/);
    });

    it('a campaign state up to 4 MiB, not above', () => {
      const big = clone(state);
      big.reason = null;
      big.devices = Array.from({ length: 5000 }, (_, i) => ({ ...state.devices[0], address: `aa:bb:cc:dd:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }));
      const bytes = encodePlantMessage('campaignState', big);
      assert.ok(bytes.length > PLANT_PAYLOAD_LIMIT && bytes.length < PLANT_STATE_PAYLOAD_LIMIT, `${bytes.length} bytes`);
      assert.equal(refusal('campaignState', Buffer.alloc(PLANT_STATE_PAYLOAD_LIMIT + 1, 0x20)).code, 'PAYLOAD_TOO_LARGE');
      assert.equal(refusal('execution', bytes).code, 'PAYLOAD_TOO_LARGE');
    });

    it('bad JSON, naming the kind', () => {
      const err = refusal('execution', Buffer.from('{"v":1,'));
      assert.equal(err.code, 'PAYLOAD_INVALID');
      assert.match(err.message, /^execution message: \$ is not JSON/);
      assert.equal(refusal('claim', '').code, 'PAYLOAD_INVALID');
      assert.match(refusal('claim', '[1,2]').message, /claim message: \$ must be object/);
      assert.match(refusal('claim', 'null').message, /claim message: \$ must be object/);
    });

    it('another message version, naming v first', () => {
      for (const kind of PLANT_MESSAGE_KINDS.filter((k) => k !== 'campaignSpec')) {
        const err = refusal(kind, { v: 2 });
        assert.equal(err.code, 'PAYLOAD_INVALID');
        assert.equal(err.message, `${kind} message: $.v must be 1 (plant message version 1), got 2`);
      }
      assert.match(refusal('presence', { ...PLANT_SAMPLES.presence, v: undefined }).message, /\$\.v must be 1 .*got nothing/);
    });

    it('an extra property, at any depth', () => {
      assert.equal(refusal('presence', { ...PLANT_SAMPLES.presence, extra: 1 }).message, 'presence message: $ has an unknown field "extra"');
      const deep = clone(PLANT_SAMPLES.sightings) as unknown as { devices: Array<Record<string, unknown>> };
      deep.devices[0].secret = 'x';
      assert.equal(refusal('sightings', deep).message, 'sightings message: $.devices[0] has an unknown field "secret"');
      assert.equal(refusal('campaignSpec', { ...spec, waves: [{ count: 1, canary: true }] }).message, 'campaignSpec message: $.waves[0] has an unknown field "canary"');
    });

    it('a bad SHA-256, address or id, naming the path', () => {
      assert.match(refusal('imageRequest', { ...PLANT_SAMPLES.imageRequest, sha256: 'AB'.repeat(32) }).message, /^imageRequest message: \$\.sha256 must match/);
      assert.match(refusal('imageRequest', { ...PLANT_SAMPLES.imageRequest, sha256: 'ab'.repeat(31) }).message, /\$\.sha256 must match/);
      assert.match(refusal('claim', { ...PLANT_SAMPLES.claim, address: 'AA:BB:CC:DD:EE:01' }).message, /^claim message: \$\.address must match/);
      assert.match(refusal('claim', { ...PLANT_SAMPLES.claim, campaign: 'a/b' }).message, /\$\.campaign must match/);
      assert.match(refusal('presence', { ...PLANT_SAMPLES.presence, gateway: 'gw+' }).message, /\$\.gateway must match/);
      assert.match(refusal('presence', { ...PLANT_SAMPLES.presence, gateway: 'g'.repeat(65) }).message, /\$\.gateway must match/);
      const task = clone(PLANT_SAMPLES.task) as unknown as { image: { sha256: string } };
      task.image.sha256 = 'zz';
      assert.match(refusal('task', task).message, /^task message: \$\.image\.sha256 must match/);
    });

    it('too many sightings, too long names and messages', () => {
      const many = clone(PLANT_SAMPLES.sightings);
      many.devices = Array.from({ length: 1001 }, () => many.devices[0]);
      assert.equal(refusal('sightings', many).message, 'sightings message: $.devices must NOT have more than 1000 items');
      many.devices = many.devices.slice(0, 1000);
      assert.equal(parsePlantMessage('sightings', many).devices.length, 1000);
      const longName = clone(PLANT_SAMPLES.sightings);
      longName.devices[0].name = 'n'.repeat(65);
      assert.equal(refusal('sightings', longName).message, 'sightings message: $.devices[0].name must NOT have more than 64 characters');
      const longError = { ...PLANT_SAMPLES.execution, state: 'failed', error: { code: 'X', message: 'm'.repeat(513) } };
      assert.match(refusal('execution', longError).message, /\$\.error\.message must NOT have more than 512 characters/);
    });

    it('wrong types and values outside the enums', () => {
      assert.match(refusal('presence', { ...PLANT_SAMPLES.presence, state: 'sleeping' }).message, /\$\.state must be one of "online", "offline"/);
      assert.match(refusal('presence', { ...PLANT_SAMPLES.presence, slots: { total: '3', free: 2 } }).message, /\$\.slots\.total must be integer/);
      assert.match(refusal('control', { v: 1 }).message, /control message: \$ lacks the field "action"/);
    });

    it('a task of an unknown type, or a task mixing both types', () => {
      assert.match(refusal('task', { v: 1, type: 'reboot' }).message, /task message: \$\.type must be one of "install", "cancel"/);
      assert.match(refusal('task', { v: 1, taskId: 't' }).message, /task message: \$ lacks the field "type"/);
      assert.match(refusal('task', { ...PLANT_SAMPLES.task, type: 'cancel' }).message, /task message: \$ (has an unknown field|lacks the field)/);
    });

    it('invalid campaign specs', () => {
      const cases: Array<[unknown, RegExp]> = [
        [{ ...spec, waves: [] }, /\$\.waves must NOT have fewer than 1 items/],
        [{ ...spec, waves: [{ count: 1, percent: 10 }] }, /\$\.waves\[0\] has both "count" and "percent"/],
        [{ ...spec, waves: [{ count: 1 }, { maxFailures: 1 }] }, /\$\.waves\[1\] needs exactly one of "count" or "percent"/],
        [{ ...spec, waves: [{ percent: 0 }] }, /\$\.waves\[0\]\.percent must be > 0/],
        [{ ...spec, waves: [{ percent: 101 }] }, /\$\.waves\[0\]\.percent must be <= 100/],
        [{ ...spec, image: { sha256: SHA } }, /\$\.image needs exactly one of "file" or "base64"/],
        [{ ...spec, image: { sha256: SHA, file: 'a.bin', base64: 'AAAA' } }, /\$\.image has both "file" and "base64"/],
        [{ ...spec, image: { sha256: SHA, base64: 'not base64!' } }, /\$\.image\.base64 must match/],
        [{ ...spec, id: 'has space' }, /\$\.id must match/],
        [{ ...spec, maxConcurrent: 0 }, /\$\.maxConcurrent must be >= 1/],
        [{ ...spec, target: undefined }, /\$ lacks the field "target"/],
      ];
      for (const [bad, pattern] of cases) {
        const err = refusal('campaignSpec', bad as object);
        assert.equal(err.code, 'PAYLOAD_INVALID');
        assert.match(err.message, pattern);
        assert.match(err.message, /^campaignSpec message: /);
      }
      const badState = clone(state);
      badState.spec.waves = [{ count: 1, percent: 1 }];
      assert.match(refusal('campaignState', badState).message, /^campaignState message: \$\.spec\.waves\[0\] has both/);
    });
  });

  it('encodePlantMessage refuses what it could not parse back', () => {
    assert.throws(() => encodePlantMessage('control', { v: 1, action: 'stop' } as unknown as MessageOf<'control'>), (e: OtaError) => e.code === 'PAYLOAD_INVALID' && /\$\.action must be one of/.test(e.message));
  });

  it('errorForWire keeps the code and cuts the message to 512 characters', () => {
    const wire = errorForWire(new OtaError('DEVICE_NOT_FOUND', 'x'.repeat(600)));
    assert.equal(wire.code, 'DEVICE_NOT_FOUND');
    assert.equal(wire.message.length, 512);
    assert.deepEqual(errorForWire(new Error('boom')), { code: 'INTERNAL', message: 'boom' });
    const status = { ...PLANT_SAMPLES.execution, state: 'failed', error: wire };
    assert.equal(parsePlantMessage('execution', status).error?.code, 'DEVICE_NOT_FOUND');
  });
});
