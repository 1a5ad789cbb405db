// STUB: replaced at merge
/** Placeholder with the contract's signature so the nodes compile before the coordinator exists. */
import { EventEmitter } from 'events';
import type { Clock } from '../../clock';
import type { PlantBus } from '../bus';
import type { CampaignControl, CampaignProgress, CampaignSpec, CampaignState, DeviceClaim, ExecutionStatus, GatewayPresence, GatewaySightings, TaskMessage } from '../messages';
import type { PlantTopics } from '../topics';

export interface CoordinatorOptions {
  bus: PlantBus;
  topics: PlantTopics;
  clock: Clock;
  coordinatorId: string;
  images: { firmwareDir?: string };
  progressEveryMs?: number;
  sightingFreshMs?: number;
  log?: (level: 'info' | 'warn' | 'error', text: string) => void;
  codec?: {
    decode<K extends CoordinatorMessageKind>(kind: K, payload: Buffer): CoordinatorMessages[K];
    encode<K extends CoordinatorMessageKind>(kind: K, message: CoordinatorMessages[K]): Buffer;
  };
  imageServer?: (bus: PlantBus, topics: PlantTopics, lookup: (sha256: string) => Promise<Buffer | null>, log: (level: 'info' | 'warn' | 'error', text: string) => void) => { start(): Promise<void>; stop(): void };
}

interface CoordinatorMessages {
  presence: GatewayPresence;
  sightings: GatewaySightings;
  task: TaskMessage;
  execution: ExecutionStatus;
  claim: DeviceClaim;
  control: CampaignControl;
  campaignState: CampaignState;
  campaignProgress: CampaignProgress;
}
type CoordinatorMessageKind = keyof CoordinatorMessages;

export class RolloutCoordinator extends EventEmitter {
  constructor(readonly options: CoordinatorOptions) {
    super();
  }
  start(): Promise<void> {
    return Promise.reject(new Error('the rollout coordinator is not available in this build'));
  }
  startCampaign(spec: CampaignSpec): Promise<CampaignState> {
    return Promise.reject(new Error(`the rollout coordinator is not available in this build (${spec.image.sha256})`));
  }
  control(campaignId: string, action: 'pause' | 'resume' | 'cancel', reason?: string): Promise<CampaignState> {
    return Promise.reject(new Error(`the rollout coordinator is not available in this build (${action} ${campaignId}${reason ? `: ${reason}` : ''})`));
  }
  campaign(_id: string): CampaignState | undefined {
    return undefined;
  }
  campaigns(): CampaignState[] {
    return [];
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}
