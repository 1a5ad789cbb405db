/**
 * What a seed device can tell after a link was lost between DONE and its answer (docs/PROTOCOL.md
 * §4.6): the seed has no status, no version and no image hash, only the last Control value in RAM.
 * - Control still ACK/NAK of the last REQUEST: DONE never reached the device, it runs the old image
 *   and its boot partition is unchanged: sending the image again is safe.
 * - DONE_NAK: it rejected the image (no restart on failure).
 * - DONE_ACK: it took the image (it restarts 500 ms later).
 * - NOP (0x00): RAM was cleared, so the device restarted since. After DONE_ACK it does, but so it does
 *   after a power cut; the seed reports nothing that names the image it runs: unknown.
 * A device that now offers the v2 service ran a v2 image (e.g. the migration image): its Status names
 * the running image, which settles it.
 */
import type { BleConnection } from '../ble/central';
import { LEGACY_CONTROL_UUID, LegacyOp, OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../protocol/constants';
import { detectProtocol } from '../protocol/detect';
import { decodeStatus } from '../protocol/status';

export type LegacyOutcome = 'installed' | 'rejected' | 'not-installed' | 'unknown';

export interface LegacyOutcomeReport {
  outcome: LegacyOutcome;
  /** What was read, in words (for the error or the log). */
  evidence: string;
}

export async function checkLegacyOutcome(link: BleConnection, appSha256: string): Promise<LegacyOutcomeReport> {
  const detected = detectProtocol(await link.discover());
  if (detected.protocol === 'v2') {
    const status = decodeStatus(await link.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID));
    if (status.runningSha256 === appSha256) return { outcome: 'installed', evidence: 'the device restarted into v2 firmware whose running image is this image' };
    return { outcome: 'unknown', evidence: `the device now runs v2 firmware with another image (SHA-256 ${status.runningSha256.slice(0, 16)}…)` };
  }
  const value = await link.read(detected.serviceUuid, LEGACY_CONTROL_UUID);
  const control = value.length === 1 ? value[0] : -1;
  switch (control) {
    case LegacyOp.DONE_ACK:
      return { outcome: 'installed', evidence: 'Control reads DONE_ACK: the device took the image and is about to restart' };
    case LegacyOp.DONE_NAK:
      return { outcome: 'rejected', evidence: 'Control reads DONE_NAK: the device rejected the image' };
    case LegacyOp.NOP:
      return {
        outcome: 'unknown',
        evidence: 'Control reads NOP: the device restarted since DONE was sent (as it does after DONE_ACK, and after a power cut); the seed firmware reports no version or image hash, so which image it runs cannot be read over BLE',
      };
    default:
      return { outcome: 'not-installed', evidence: `Control reads 0x${control.toString(16).padStart(2, '0')}: DONE never reached the device, which still runs its old image` };
  }
}
