// STUB: replaced at merge
/** Placeholder with the contract's signatures so the nodes compile before the plant schemas exist. */
import type { CampaignControl, CampaignProgress, CampaignSpec, CampaignState, DeviceClaim, ExecutionStatus, GatewayPresence, GatewaySightings, ImageRequest, TaskMessage } from './messages';

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

export function parsePlantMessage<K extends PlantMessageKind>(kind: K, payload: Buffer | string | object): MessageOf<K> {
  const value: unknown = Buffer.isBuffer(payload) || typeof payload === 'string' ? JSON.parse(payload.toString()) : payload;
  void kind;
  return value as MessageOf<K>;
}

export function encodePlantMessage<K extends PlantMessageKind>(kind: K, message: MessageOf<K>): Buffer {
  void kind;
  return Buffer.from(JSON.stringify(message));
}
