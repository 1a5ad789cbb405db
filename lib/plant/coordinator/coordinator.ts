// STUB: replaced at merge
/** Placeholder with the contract's signature so the nodes compile before the coordinator exists. */
import { EventEmitter } from 'events';
import type { Clock } from '../../clock';
import type { PlantBus } from '../bus';
import type { CampaignSpec, CampaignState } from '../messages';
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
}

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
