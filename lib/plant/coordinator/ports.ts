/**
 * What the coordinator needs from the rest of the plant library, as small interfaces: a codec for the
 * messages it reads and writes (the schema-checked one of lib/plant/schemas.ts in the product), and the
 * server that answers gateways' image requests (lib/plant/image-transfer.ts ImageServer).
 */
import { OtaError } from '../../errors';
import type { PlantBus } from '../bus';
import type {
  CampaignControl,
  CampaignProgress,
  CampaignState,
  DeviceClaim,
  ExecutionStatus,
  GatewayPresence,
  GatewaySightings,
  TaskMessage,
} from '../messages';
import type { PlantTopics } from '../topics';

/** The messages the coordinator decodes or encodes, by kind (names as in schemas.ts). */
export interface CoordinatorMessages {
  presence: GatewayPresence;
  sightings: GatewaySightings;
  task: TaskMessage;
  execution: ExecutionStatus;
  claim: DeviceClaim;
  control: CampaignControl;
  campaignState: CampaignState;
  campaignProgress: CampaignProgress;
}
export type CoordinatorMessageKind = keyof CoordinatorMessages;

export interface PlantCodec {
  /** Throws OtaError PAYLOAD_INVALID / PAYLOAD_TOO_LARGE naming what is wrong. */
  decode<K extends CoordinatorMessageKind>(kind: K, payload: Buffer): CoordinatorMessages[K];
  encode<K extends CoordinatorMessageKind>(kind: K, message: CoordinatorMessages[K]): Buffer;
}

export interface ImageServing {
  start(): Promise<void>;
  stop(): void;
}

/** Builds the image server: answers ImageRequests with chunks to the requesting gateway's topic only. */
export type ImageServerFactory = (
  bus: PlantBus,
  topics: PlantTopics,
  lookup: (sha256: string) => Promise<Buffer | null>,
  log: (level: 'info' | 'warn' | 'error', text: string) => void,
) => ImageServing;

const MAX_MESSAGE_BYTES = 256 * 1024;
const MAX_STATE_BYTES = 4 * 1024 * 1024;

/** Fields each kind must have (type of the value), checked before the coordinator reads them. */
const REQUIRED: Record<CoordinatorMessageKind, Record<string, 'string' | 'number' | 'object' | 'array' | 'boolean'>> = {
  presence: { gateway: 'string', state: 'string', at: 'number', slots: 'object' },
  sightings: { gateway: 'string', at: 'number', devices: 'array' },
  task: { type: 'string', taskId: 'string', campaign: 'string' },
  execution: { campaign: 'string', taskId: 'string', gateway: 'string', device: 'object', state: 'string', at: 'number' },
  claim: { campaign: 'string', address: 'string', at: 'number' },
  control: { action: 'string' },
  campaignState: { id: 'string', coordinator: 'string', state: 'string', spec: 'object', image: 'object', waves: 'array', devices: 'array' },
  campaignProgress: { campaign: 'string', state: 'string', counts: 'object' },
};

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value;
}

/**
 * A JSON codec with the checks the coordinator relies on (JSON object, `v: 1`, size limits, the fields it
 * reads and their types). The product passes the full JSON-schema codec of schemas.ts instead.
 */
export const basicPlantCodec: PlantCodec = {
  decode<K extends CoordinatorMessageKind>(kind: K, payload: Buffer): CoordinatorMessages[K] {
    const limit = kind === 'campaignState' ? MAX_STATE_BYTES : MAX_MESSAGE_BYTES;
    if (payload.length > limit) throw new OtaError('PAYLOAD_TOO_LARGE', `a ${kind} message of ${payload.length} bytes is over the ${limit}-byte limit`);
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new OtaError('PAYLOAD_INVALID', `a ${kind} message is not JSON`);
    }
    if (typeOf(value) !== 'object') throw new OtaError('PAYLOAD_INVALID', `a ${kind} message must be a JSON object, got ${typeOf(value)}`);
    const record = value as Record<string, unknown>;
    if (record.v !== 1) throw new OtaError('PAYLOAD_INVALID', `a ${kind} message must have v 1, got ${JSON.stringify(record.v)}`);
    for (const [field, type] of Object.entries(REQUIRED[kind])) {
      if (typeOf(record[field]) !== type) throw new OtaError('PAYLOAD_INVALID', `a ${kind} message's field "${field}" must be a ${type}, got ${typeOf(record[field])}`);
    }
    return value as CoordinatorMessages[K];
  },
  encode<K extends CoordinatorMessageKind>(_kind: K, message: CoordinatorMessages[K]): Buffer {
    return Buffer.from(JSON.stringify(message));
  },
};
