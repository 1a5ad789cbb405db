/**
 * A campaign's progress from its state, for the answers the node gives to start / control / status requests:
 * the coordinator's own computation (counts, rate, ETA).
 */
import { computeProgress, type CampaignProgress, type CampaignState } from '../shared/plant-library';

export function progressOf(state: CampaignState, at: number = Date.now()): CampaignProgress {
  return computeProgress(state, at);
}

/** Devices still to finish: pending, assigned, in progress. */
export function openCount(progress: CampaignProgress): number {
  return progress.counts.pending + progress.counts.assigned + progress.counts['in-progress'];
}

export function finished(state: CampaignProgress['state']): boolean {
  return state === 'completed' || state === 'aborted' || state === 'cancelled';
}
