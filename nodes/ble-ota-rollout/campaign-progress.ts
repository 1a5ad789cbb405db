/**
 * A campaign's counts from its state, for the answers the node gives to start / control / status requests
 * (the coordinator's own progress events carry its rate and ETA; these carry none).
 */
import type { CampaignProgress, CampaignState, DeviceCampaignState } from '../shared/plant-library';

const DEVICE_STATES: DeviceCampaignState[] = ['pending', 'assigned', 'in-progress', 'succeeded', 'skipped', 'failed', 'rolled-back', 'cancelled'];

export function progressOf(state: CampaignState, at: number = Date.now()): CampaignProgress {
  const counts = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<DeviceCampaignState, number>;
  for (const device of state.devices) counts[device.state] += 1;
  return { v: 1, campaign: state.id, state: state.state, at, wave: state.currentWave, counts, total: state.devices.length, devicesPerMinute: 0, etaMs: null };
}

/** Devices still to finish: pending, assigned, in progress. */
export function openCount(progress: CampaignProgress): number {
  return progress.counts.pending + progress.counts.assigned + progress.counts['in-progress'];
}

export function finished(state: CampaignProgress['state']): boolean {
  return state === 'completed' || state === 'aborted' || state === 'cancelled';
}
