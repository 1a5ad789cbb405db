/**
 * rollbackDevice: undo an update that was cancelled after its image was written. A v2 device whose running
 * image is still pending verify (host confirm policy) gets ROLLBACK (PROTOCOL.md: the tagged command, with
 * the session key), which marks the image invalid and reboots into the previous one; a device that
 * installed the image and has not booted it yet (Status last.flags INSTALLED with boot_count 0: the
 * restart after END is still to come) is waited for, since the boot makes it pending. Anything else is
 * left alone: an old image running means nothing was switched, a valid new image cannot be undone.
 * Unlike verifyDevice's onFail it judges nothing: it acts only on the pending image it is told about.
 */
import type { BleConnection } from '../ble/central';
import type { AdapterScheduler, DeviceSession } from '../ble/scheduler';
import { abortable, abortableSleep, abortError } from '../ble/abort';
import { OtaError, toOtaError } from '../errors';
import { LastFlags } from '../protocol/constants';
import type { DeviceStatus } from '../protocol/status';
import { checkDeviceSpec, deviceRef } from './device-ref';
import { checkKeyOptions } from './preflight';
import { openProtocolSession, readDeviceInfo } from './protocols';
import { isRetryable } from './retry';
import { sessionKeyForDevice } from './security-gate';
import type { DeviceRef } from './types';

export interface RollbackOptions {
  device: string | DeviceRef;
  /** The image to undo (hex SHA-256 the device reports as running, esp_partition_get_sha256); omitted: any pending image. */
  imageSha256?: string;
  /**
   * SHA-256 of the image file as sent with BEGIN (FlashResult.fileSha256; Status last_sha256 records it):
   * a device whose last update installed this file and has not restarted yet is waited for. Default imageSha256.
   */
  fileSha256?: string;
  fleetKey?: Buffer;
  masterKey?: Buffer;
  /** How long to wait for the device to be readable and settled (ms, default 30000); then ROLLBACK_TIMEOUT. */
  waitMs?: number;
  signal?: AbortSignal;
}

export interface RollbackResult {
  device: DeviceRef;
  /** 'rolled-back': ROLLBACK was accepted (the device reboots into its previous image); 'none': nothing was pending. */
  action: 'rolled-back' | 'none';
  /** Status as read before acting; null for a legacy (seed) device, which has neither Status nor rollback. */
  status: DeviceStatus | null;
}

type Decision = 'rollback' | 'wait' | 'none';

/** What the Status says about the image: pending (roll back), about to boot (wait), or nothing to undo. */
export function rollbackDecision(status: DeviceStatus, imageSha256: string | undefined, fileSha256: string | undefined = imageSha256): Decision {
  const wanted = imageSha256?.toLowerCase();
  const file = fileSha256?.toLowerCase();
  if (status.sessionStateName === 'finishing') return 'wait';
  const isImage = (sha: string) => wanted === undefined || sha === wanted;
  if (status.otaStateName === 'pending-verify' && isImage(status.runningSha256)) return 'rollback';
  const installedNotBooted = status.last.recordValid && (status.lastFlags & LastFlags.INSTALLED) !== 0 && !status.last.rolledBack && status.bootCount === 0;
  if (installedNotBooted && file !== undefined && status.lastSha256 === file && status.runningSha256 !== wanted) return 'wait';
  return 'none';
}

async function readStatusOnce(session: DeviceSession, deadline: number): Promise<{ link: BleConnection; status: DeviceStatus | null }> {
  const clock = session.clock;
  const link = await session.connect({ timeoutMs: Math.max(1000, Math.min(10000, deadline - clock.now())) });
  try {
    const info = await abortable(readDeviceInfo(link), session.signal);
    return { link, status: info.status };
  } catch (err) {
    await link.disconnect().catch(() => undefined);
    throw err;
  }
}

export async function rollbackDevice(scheduler: AdapterScheduler, options: RollbackOptions): Promise<RollbackResult> {
  if (!options || typeof options !== 'object') throw new OtaError('BAD_OPTION', 'rollbackDevice needs an options object with device');
  const device = checkDeviceSpec(options.device);
  const keys = checkKeyOptions(options);
  for (const key of ['imageSha256', 'fileSha256'] as const) {
    const value = options[key];
    if (value !== undefined && !/^[0-9a-fA-F]{64}$/.test(value)) throw new OtaError('BAD_OPTION', `${key} must be 64 hex digits`);
  }
  const waitMs = options.waitMs ?? 30000;
  if (!Number.isFinite(waitMs) || waitMs <= 0) throw new OtaError('BAD_OPTION', `waitMs must be a positive number of milliseconds, got ${String(waitMs)}`);
  const clock = scheduler.clock;
  const deadline = clock.now() + waitMs;
  return scheduler.session(
    device,
    async (session) => {
      let lastProblem = '';
      while (clock.now() < deadline) {
        if (session.signal.aborted) throw abortError(session.signal);
        let link: BleConnection | null = null;
        try {
          const read = await readStatusOnce(session, deadline);
          link = read.link;
          const status = read.status;
          if (!status) return { device: deviceRef(session.device), action: 'none', status: null };
          const decision = rollbackDecision(status, options.imageSha256, options.fileSha256 ?? options.imageSha256);
          if (decision === 'none') return { device: deviceRef(session.device), action: 'none', status };
          if (decision === 'rollback') {
            const fleetKey = sessionKeyForDevice(keys, status.caps, status.deviceId);
            const client = await openProtocolSession(link, { requested: 'v2', fleetKey, clock, signal: session.signal });
            await client.open();
            await (client.rollback as () => Promise<void>)();
            return { device: deviceRef(session.device), action: 'rolled-back', status };
          }
          lastProblem = status.sessionStateName === 'finishing' ? 'the device is still finishing the update' : 'the device installed the image and has not restarted into it yet';
        } catch (err) {
          const e = toOtaError(err);
          if (session.signal.aborted) throw abortError(session.signal);
          if (!isRetryable(e)) throw e;
          lastProblem = e.message;
        } finally {
          await link?.disconnect().catch(() => undefined);
        }
        await abortableSleep(clock, 500, session.signal);
        await session.rediscover({ seenAfter: clock.now() - 500, timeoutMs: Math.max(1, deadline - clock.now()) }).catch(() => undefined);
      }
      throw new OtaError('ROLLBACK_TIMEOUT', `the device did not settle so that its new image could be rolled back within ${waitMs / 1000} s${lastProblem ? ` (last: ${lastProblem})` : ''}`, { waitMs });
    },
    { signal: options.signal, findTimeoutMs: waitMs },
  );
}
