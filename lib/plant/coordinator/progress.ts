/** Campaign progress: counts by state, finishing rate over the last 10 minutes, and the ETA from it. */
import type { CampaignProgress, CampaignState, DeviceCampaignState } from '../messages';

export const RATE_WINDOW_MS = 10 * 60_000;

const STATES: DeviceCampaignState[] = ['pending', 'assigned', 'in-progress', 'succeeded', 'skipped', 'failed', 'rolled-back', 'cancelled'];
const UNFINISHED: ReadonlySet<DeviceCampaignState> = new Set(['pending', 'assigned', 'in-progress']);

export function isFinal(state: DeviceCampaignState): boolean {
  return !UNFINISHED.has(state);
}

export function computeProgress(campaign: CampaignState, now: number): CampaignProgress {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<DeviceCampaignState, number>;
  for (const d of campaign.devices) counts[d.state] = (counts[d.state] ?? 0) + 1;
  // Devices that ended by running (skipped ones never ran), within the window.
  const ends = campaign.devices.filter((d) => d.state !== 'skipped' && isFinal(d.state) && d.endedAt !== null).map((d) => d.endedAt as number);
  // An ended campaign keeps the rate it ran at: its window ends with its last device, not at the time of asking.
  const ended = ['completed', 'aborted', 'cancelled'].includes(campaign.state) && ends.length > 0;
  const rateAt = ended ? Math.max(...ends) : now;
  const windowStart = Math.max(rateAt - RATE_WINDOW_MS, campaign.createdAt);
  const inWindow = ends.filter((t) => t >= windowStart && t <= rateAt).length;
  const windowMs = rateAt - windowStart;
  const devicesPerMinute = windowMs > 0 ? (inWindow * 60_000) / windowMs : 0;
  const remaining = counts.pending + counts.assigned + counts['in-progress'];
  let etaMs: number | null = null;
  if (remaining === 0) etaMs = 0;
  else if (ends.length >= 2 && devicesPerMinute > 0) etaMs = Math.round((remaining / devicesPerMinute) * 60_000);
  return {
    v: 1,
    campaign: campaign.id,
    state: campaign.state,
    at: now,
    wave: campaign.currentWave,
    counts,
    total: campaign.devices.length,
    devicesPerMinute: Math.round(devicesPerMinute * 1000) / 1000,
    etaMs,
  };
}
