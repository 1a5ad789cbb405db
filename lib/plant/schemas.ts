/**
 * JSON Schemas (draft 2020-12) of every plant message (messages.ts) and the one gate every received or
 * sent message goes through: parsePlantMessage / encodePlantMessage. Strict on purpose: unknown fields,
 * a wrong `v`, oversized strings or lists are refused with a sentence naming the message kind, the JSON path
 * and what is wrong, so that a gateway or coordinator that publishes garbage cannot crash the others.
 * docs/FLEET.md shows these schemas verbatim (test/docs/fleet-doc.test.ts keeps them equal).
 */
import Ajv2020 from 'ajv/dist/2020';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { OtaError } from '../errors';
import type {
  CampaignControl,
  CampaignProgress,
  CampaignSpec,
  CampaignState,
  DeviceClaim,
  ExecutionStatus,
  GatewayPresence,
  GatewaySightings,
  ImageRequest,
  TaskMessage,
} from './messages';

export type PlantMessageKind = 'presence' | 'sightings' | 'task' | 'execution' | 'imageRequest' | 'claim' | 'control' | 'campaignState' | 'campaignProgress' | 'campaignSpec';

export interface PlantMessageMap {
  presence: GatewayPresence;
  sightings: GatewaySightings;
  task: TaskMessage;
  execution: ExecutionStatus;
  imageRequest: ImageRequest;
  claim: DeviceClaim;
  control: CampaignControl;
  campaignState: CampaignState;
  campaignProgress: CampaignProgress;
  campaignSpec: CampaignSpec;
}

export type MessageOf<K extends PlantMessageKind> = PlantMessageMap[K];

export const PLANT_MESSAGE_KINDS: readonly PlantMessageKind[] = ['presence', 'sightings', 'task', 'execution', 'imageRequest', 'claim', 'control', 'campaignState', 'campaignProgress', 'campaignSpec'];

/** Any JSON payload: 256 KiB. */
export const PLANT_PAYLOAD_LIMIT = 256 * 1024;
/** A campaign's whole record (and the spec it embeds, which may carry the image in base64): 4 MiB. */
export const PLANT_STATE_PAYLOAD_LIMIT = 4 * 1024 * 1024;

export function payloadLimitOf(kind: PlantMessageKind): number {
  return kind === 'campaignState' || kind === 'campaignSpec' ? PLANT_STATE_PAYLOAD_LIMIT : PLANT_PAYLOAD_LIMIT;
}

/** Error messages on the wire are cut to this many characters (errorForWire). */
export const PLANT_MESSAGE_CHARS = 512;
/** Names (devices, campaigns, adapters): 64 characters. */
export const PLANT_NAME_CHARS = 64;
export const PLANT_MAX_SIGHTINGS = 1000;
/** Devices in one campaign. */
export const PLANT_MAX_CAMPAIGN_DEVICES = 10000;
/** Largest image the plant moves: a 16 MiB flash holds no larger app. */
export const PLANT_MAX_IMAGE_BYTES = 16 * 1024 * 1024;

// ---- building blocks (each schema is self-contained, so docs/FLEET.md shows it whole) -------------------

/** A JSON Schema as a plain object. */
export type JsonSchema = Record<string, unknown>;

const v1 = (): JsonSchema => ({ const: 1 });
const topicId = (): JsonSchema => ({ type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' });
const sha256 = (): JsonSchema => ({ type: 'string', pattern: '^[0-9a-f]{64}$' });
const address = (): JsonSchema => ({ type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' });
const text = (maxLength: number): JsonSchema => ({ type: 'string', maxLength });
const name = (): JsonSchema => text(PLANT_NAME_CHARS);
const nullableText = (maxLength: number): JsonSchema => ({ type: ['string', 'null'], maxLength });
const time = (): JsonSchema => ({ type: 'number', minimum: 0 });
const nullableTime = (): JsonSchema => ({ type: ['number', 'null'], minimum: 0 });
const count = (maximum = 4294967295): JsonSchema => ({ type: 'integer', minimum: 0, maximum });
const base64 = (maxLength: number): JsonSchema => ({ type: 'string', maxLength, pattern: '^[A-Za-z0-9+/]*={0,2}$' });
const encoding = (): JsonSchema => ({ enum: ['auto', 'raw', 'deflate', 'delta'] });
const errorCode = (): JsonSchema => ({ type: 'string', pattern: '^[A-Za-z0-9_.]{1,64}$' });

function object(properties: Record<string, JsonSchema>, required: string[] = Object.keys(properties)): JsonSchema {
  return { type: 'object', properties, required, additionalProperties: false };
}

const deviceRef = (): JsonSchema => object({ address: address(), name: name() });
const versionAndSha = (): JsonSchema => object({ version: nullableText(64), sha256: { type: ['string', 'null'], pattern: '^[0-9a-f]{64}$' } });
const nullableVersionAndSha = (): JsonSchema => ({ ...versionAndSha(), type: ['object', 'null'] });
const errorInfo = (): JsonSchema => object({ code: errorCode(), message: text(PLANT_MESSAGE_CHARS) });

const imageRef = (): JsonSchema =>
  object(
    {
      sha256: sha256(),
      size: { type: 'integer', minimum: 1, maximum: PLANT_MAX_IMAGE_BYTES },
      manifest: base64(16384),
      version: text(64),
      chip: text(32),
      project: text(64),
    },
    ['sha256', 'size', 'version', 'chip'],
  );

const campaignSpec = (): JsonSchema =>
  object(
    {
      id: topicId(),
      name: name(),
      image: object(
        {
          sha256: sha256(),
          file: { type: 'string', minLength: 1, maxLength: 255 },
          base64: base64(Math.ceil((PLANT_MAX_IMAGE_BYTES * 4) / 3) + 4),
          manifest: base64(16384),
        },
        ['sha256'],
      ),
      target: object(
        {
          namePrefix: name(),
          nameRegex: text(256),
          chip: text(32),
          versionOlderThan: text(64),
          devices: { type: 'array', maxItems: PLANT_MAX_SIGHTINGS, items: { type: 'string', minLength: 1, maxLength: PLANT_NAME_CHARS } },
        },
        [],
      ),
      waves: {
        type: 'array',
        minItems: 1,
        maxItems: 100,
        items: object(
          {
            count: { type: 'integer', minimum: 1, maximum: PLANT_MAX_CAMPAIGN_DEVICES },
            percent: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
            maxFailures: count(PLANT_MAX_CAMPAIGN_DEVICES),
            maxFailurePercent: { type: 'number', minimum: 0, maximum: 100 },
          },
          [],
        ),
      },
      deviceTimeoutMs: { type: 'integer', minimum: 1000, maximum: 86400000 },
      maxConcurrent: { type: 'integer', minimum: 1, maximum: PLANT_MAX_CAMPAIGN_DEVICES },
      encoding: encoding(),
      confirm: { type: 'boolean' },
      maxAttempts: { type: 'integer', minimum: 1, maximum: 100 },
      maxReassignments: { type: 'integer', minimum: 0, maximum: 100 },
    },
    ['image', 'target', 'waves'],
  );

const deviceStates = ['pending', 'assigned', 'in-progress', 'succeeded', 'skipped', 'failed', 'rolled-back', 'cancelled'];
const runStates = ['running', 'paused', 'completed', 'aborted', 'cancelled'];

const SCHEMA_ID_BASE = 'urn:esp32-ble-ota:plant:v1:';

function schema(kind: PlantMessageKind, title: string, body: JsonSchema): JsonSchema {
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: `${SCHEMA_ID_BASE}${kind}`, title, ...body };
}

export const PLANT_SCHEMAS: Record<PlantMessageKind, JsonSchema> = {
  presence: schema(
    'presence',
    'GatewayPresence',
    object({
      v: v1(),
      gateway: topicId(),
      state: { enum: ['online', 'offline'] },
      at: time(),
      slots: object({ total: count(1000), free: count(1000) }),
      adapter: object({ label: name(), simulated: { type: 'boolean' } }),
      software: text(64),
    }),
  ),
  sightings: schema(
    'sightings',
    'GatewaySightings',
    object({
      v: v1(),
      gateway: topicId(),
      at: time(),
      devices: {
        type: 'array',
        maxItems: PLANT_MAX_SIGHTINGS,
        items: object({
          address: address(),
          name: name(),
          // An HCI LE Advertising Report's RSSI is an int8 (127: not available), as noble passes it on.
          rssi: { type: 'integer', minimum: -128, maximum: 127 },
          version: nullableText(64),
          hashPrefix: { type: ['string', 'null'], pattern: '^[0-9a-f]{2,64}$' },
          protocol: { enum: ['v2', 'legacy', 'unknown'] },
          otaState: nullableText(32),
          sessionActive: { type: 'boolean' },
          lastSeen: time(),
        }),
      },
    }),
  ),
  task: schema('task', 'TaskMessage', {
    type: 'object',
    properties: { type: { enum: ['install', 'cancel'] } },
    required: ['type'],
    discriminator: { propertyName: 'type' },
    oneOf: [
      object({
        v: v1(),
        type: { const: 'install' },
        taskId: topicId(),
        campaign: topicId(),
        device: deviceRef(),
        image: imageRef(),
        timeoutMs: { type: 'integer', minimum: 1000, maximum: 86400000 },
        options: object({ encoding: encoding(), confirm: { type: 'boolean' }, maxAttempts: { type: 'integer', minimum: 1, maximum: 100 } }),
      }),
      object({ v: v1(), type: { const: 'cancel' }, taskId: topicId(), campaign: topicId(), reason: text(PLANT_MESSAGE_CHARS) }),
    ],
  }),
  execution: schema(
    'execution',
    'ExecutionStatus',
    object(
      {
        v: v1(),
        campaign: topicId(),
        taskId: topicId(),
        gateway: topicId(),
        device: deviceRef(),
        state: { enum: ['queued', 'in-progress', 'succeeded', 'failed', 'rolled-back', 'cancelled'] },
        at: time(),
        progress: object({ phase: text(32), percent: { type: 'number', minimum: 0, maximum: 100 }, bytesSent: count(), bytesTotal: count() }),
        error: errorInfo(),
        before: versionAndSha(),
        after: versionAndSha(),
        installed: { type: 'boolean' },
        seconds: { type: 'number', minimum: 0 },
        bytesOnAir: count(),
        encoding: text(16),
      },
      ['v', 'campaign', 'taskId', 'gateway', 'device', 'state', 'at'],
    ),
  ),
  imageRequest: schema('imageRequest', 'ImageRequest', object({ v: v1(), gateway: topicId(), sha256: sha256() })),
  claim: schema('claim', 'DeviceClaim', object({ v: v1(), campaign: topicId(), address: address(), at: time() })),
  control: schema('control', 'CampaignControl', object({ v: v1(), action: { enum: ['pause', 'resume', 'cancel'] }, reason: text(PLANT_MESSAGE_CHARS) }, ['v', 'action'])),
  campaignState: schema(
    'campaignState',
    'CampaignState',
    object({
      v: v1(),
      id: topicId(),
      name: name(),
      coordinator: topicId(),
      createdAt: time(),
      updatedAt: time(),
      state: { enum: runStates },
      reason: nullableText(PLANT_MESSAGE_CHARS),
      spec: campaignSpec(),
      image: imageRef(),
      currentWave: count(100),
      waves: {
        type: 'array',
        maxItems: 100,
        items: object({ size: count(PLANT_MAX_CAMPAIGN_DEVICES), state: { enum: ['waiting', 'running', 'done', 'aborted'] }, failed: count(PLANT_MAX_CAMPAIGN_DEVICES), succeeded: count(PLANT_MAX_CAMPAIGN_DEVICES) }),
      },
      devices: {
        type: 'array',
        maxItems: PLANT_MAX_CAMPAIGN_DEVICES,
        items: object({
          address: address(),
          name: name(),
          wave: count(100),
          state: { enum: deviceStates },
          gateway: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._:-]{1,64}$' },
          taskId: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._:-]{1,64}$' },
          assignments: {
            type: 'array',
            maxItems: 100,
            items: object({ gateway: topicId(), taskId: topicId(), at: time(), ended: nullableText(64) }),
          },
          before: nullableVersionAndSha(),
          after: nullableVersionAndSha(),
          progress: { type: ['number', 'null'], minimum: 0, maximum: 100 },
          error: { ...errorInfo(), type: ['object', 'null'] },
          startedAt: nullableTime(),
          endedAt: nullableTime(),
        }),
      },
    }),
  ),
  campaignProgress: schema(
    'campaignProgress',
    'CampaignProgress',
    object({
      v: v1(),
      campaign: topicId(),
      state: { enum: runStates },
      at: time(),
      wave: count(100),
      counts: object(Object.fromEntries(deviceStates.map((s) => [s, count(PLANT_MAX_CAMPAIGN_DEVICES)]))),
      total: count(PLANT_MAX_CAMPAIGN_DEVICES),
      devicesPerMinute: { type: 'number', minimum: 0 },
      etaMs: nullableTime(),
    }),
  ),
  campaignSpec: schema('campaignSpec', 'CampaignSpec', campaignSpec()),
};

// ---- validation --------------------------------------------------------------------------------------

let validators: Map<PlantMessageKind, ValidateFunction> | undefined;

function validatorOf(kind: PlantMessageKind): ValidateFunction {
  if (!validators) {
    const ajv = new Ajv2020({ allErrors: false, discriminator: true, allowUnionTypes: true, strict: true });
    validators = new Map(PLANT_MESSAGE_KINDS.map((k) => [k, ajv.compile(PLANT_SCHEMAS[k])]));
  }
  const validate = validators.get(kind);
  if (!validate) throw new OtaError('PAYLOAD_INVALID', `unknown plant message kind ${JSON.stringify(kind)}`);
  return validate;
}

/** "/devices/3/address" -> "$.devices[3].address". */
function jsonPath(pointer: string): string {
  if (!pointer) return '$';
  return (
    '$' +
    pointer
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((p) => (/^\d+$/.test(p) ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`))
      .join('')
  );
}

function describe(error: ErrorObject): string {
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperty':
    case 'additionalProperties':
      return `has an unknown field ${JSON.stringify(p.additionalProperty)}`;
    case 'required':
      return `lacks the field ${JSON.stringify(p.missingProperty)}`;
    case 'const':
      return `must be ${JSON.stringify(p.allowedValue)}`;
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
    case 'pattern':
      return `must match ${String(p.pattern)}`;
    case 'discriminator':
      return p.error === 'mapping' ? `has an unknown ${JSON.stringify(p.tag)} value` : `lacks the field ${JSON.stringify(p.tag)}`;
    default:
      return error.message ?? `fails ${error.keyword}`;
  }
}

function invalid(kind: PlantMessageKind, path: string, what: string): OtaError {
  return new OtaError('PAYLOAD_INVALID', `${kind} message: ${path} ${what}`, { kind, path });
}

/** Rules JSON JsonSchema cannot say readably: exactly one of two fields. */
function checkSpecRules(kind: PlantMessageKind, spec: CampaignSpec, at: string): void {
  const hasFile = spec.image.file !== undefined;
  const hasBase64 = spec.image.base64 !== undefined;
  if (hasFile === hasBase64) throw invalid(kind, `${at}.image`, hasFile ? 'has both "file" and "base64" (give exactly one)' : 'needs exactly one of "file" or "base64"');
  spec.waves.forEach((wave, i) => {
    const hasCount = wave.count !== undefined;
    const hasPercent = wave.percent !== undefined;
    if (hasCount === hasPercent) throw invalid(kind, `${at}.waves[${i}]`, hasCount ? 'has both "count" and "percent" (give exactly one)' : 'needs exactly one of "count" or "percent"');
  });
}

function sizeOf(payload: Buffer | string): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;
}

/**
 * Parses and validates one message. payload: the bytes received, a JSON string, or an object (it is copied
 * through JSON, so undefined fields vanish and nothing but JSON survives). Throws OtaError PAYLOAD_TOO_LARGE
 * (payloadLimitOf(kind)) or PAYLOAD_INVALID naming the kind, the JSON path and what is wrong.
 */
export function parsePlantMessage<K extends PlantMessageKind>(kind: K, payload: Buffer | string | object): MessageOf<K> {
  const validate = validatorOf(kind);
  let raw: Buffer | string;
  if (Buffer.isBuffer(payload) || typeof payload === 'string') raw = payload;
  else if (payload instanceof Uint8Array) raw = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  else {
    try {
      raw = JSON.stringify(payload) ?? '';
    } catch (err) {
      throw invalid(kind, '$', `cannot be serialised as JSON (${(err as Error).message})`);
    }
  }
  const limit = payloadLimitOf(kind);
  const size = sizeOf(raw);
  if (size > limit) throw new OtaError('PAYLOAD_TOO_LARGE', `${kind} message is ${size} bytes, more than the ${limit} bytes allowed`, { kind, size, limit });
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw invalid(kind, '$', `is not JSON (${(err as Error).message})`);
  }
  // A message of another version is named as such, not by the first field it lacks.
  if (kind !== 'campaignSpec' && typeof value === 'object' && value !== null && !Array.isArray(value) && (value as { v?: unknown }).v !== 1) {
    throw invalid(kind, '$.v', `must be 1 (plant message version 1), got ${JSON.stringify((value as { v?: unknown }).v) ?? 'nothing'}`);
  }
  if (!validate(value)) {
    const first = validate.errors?.[0];
    if (!first) throw invalid(kind, '$', 'does not match its schema');
    throw invalid(kind, jsonPath(first.instancePath), describe(first));
  }
  if (kind === 'campaignSpec') checkSpecRules(kind, value as CampaignSpec, '$');
  if (kind === 'campaignState') checkSpecRules(kind, (value as CampaignState).spec, '$.spec');
  return value as MessageOf<K>;
}

/** Validates (as parsePlantMessage does) and serialises one message. */
export function encodePlantMessage<K extends PlantMessageKind>(kind: K, message: MessageOf<K>): Buffer {
  const bytes = Buffer.from(JSON.stringify(message) ?? '', 'utf8');
  parsePlantMessage(kind, bytes);
  return bytes;
}

/** An error as ExecutionStatus / CampaignDevice carry it: code and message, the message cut to 512 characters. */
export function errorForWire(err: unknown): { code: string; message: string } {
  const code = err instanceof OtaError && /^[A-Za-z0-9_.]{1,64}$/.test(err.code) ? err.code : 'INTERNAL';
  const message = err instanceof Error ? err.message : String(err);
  return { code, message: message.length > PLANT_MESSAGE_CHARS ? `${message.slice(0, PLANT_MESSAGE_CHARS - 1)}…` : message };
}
