/** Wave sizes and abort thresholds. */
import type { CampaignDevice, WaveSpec } from '../messages';

/**
 * Sizes of the waves over `total` devices: a count, or a percentage of the total rounded up (at least 1);
 * never more than what is left; the last wave takes the rest.
 */
export function waveSizes(waves: WaveSpec[], total: number): number[] {
  let left = total;
  return waves.map((wave, index) => {
    if (index === waves.length - 1) {
      const rest = left;
      left = 0;
      return rest;
    }
    const wanted = wave.count ?? Math.max(1, Math.ceil(((wave.percent ?? 100) * total) / 100));
    const size = Math.min(left, wanted);
    left -= size;
    return size;
  });
}

/** A device that failed for the wave's thresholds (rolled back counts as failed). */
export function countsAsFailure(device: CampaignDevice): boolean {
  return device.state === 'failed' || device.state === 'rolled-back';
}

/** Why the wave's failures abort the campaign, or null. */
export function abortReason(wave: WaveSpec, index: number, size: number, failed: number): string | null {
  if (wave.maxFailures !== undefined && failed >= wave.maxFailures) {
    return `wave ${index + 1}: ${failed} of ${size} devices failed, the limit is ${wave.maxFailures}`;
  }
  const percent = wave.maxFailurePercent ?? 100;
  if (size > 0 && failed * 100 > percent * size) {
    return `wave ${index + 1}: ${failed} of ${size} devices failed (${((failed * 100) / size).toFixed(1)} %), more than the ${percent} % limit`;
  }
  return null;
}
