/**
 * What the coordinator needs from the rest of the plant library, as small interfaces with the product's
 * implementations as defaults: a codec for the messages it reads and writes (schemaPlantCodec, the
 * schemas of lib/plant/schemas.ts), and the server that answers gateways' image requests (plantImageServer,
 * lib/plant/image-transfer.ts ImageServer).
 */
import type { PlantBus } from '../bus';
import { ImageServer } from '../image-transfer';
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
import { encodePlantMessage, parsePlantMessage } from '../schemas';
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

/** The plant's schemas (lib/plant/schemas.ts, docs/FLEET.md): every message checked both ways. */
export const schemaPlantCodec: PlantCodec = {
  decode: (kind, payload) => parsePlantMessage(kind, payload),
  encode: (kind, message) => encodePlantMessage(kind, message as never),
};

/** The product's image server: lib/plant/image-transfer.ts. */
export const plantImageServer: ImageServerFactory = (bus, topics, lookup, log) => new ImageServer(bus, topics, lookup, log);
