/**
 * Runs one schedule: a fleet of one device (the TS model or the twin) on the virtual clock, the faults
 * injected as the update starts, flashDevice (+ verifyDevice, confirming under the host policy), a
 * settling time for resume timeouts, reboots and first-boot diagnostics, a Status read, then the
 * invariants on the flash (invariants.ts). A schedule that has not finished after MODELED_LIMIT_MS of
 * modeled time, or WALL_LIMIT_MS of real time (the virtual clock stuck), is a hang.
 */
import { AdapterScheduler } from '../../ble/scheduler';
import { sleep, withTimeout } from '../../clock';
import { OtaError } from '../../errors';
import { parseImage } from '../../image/parse';
import { flashDevice, readDeviceStatus, verifyDevice } from '../../ota';
import { applyFaultToConfig, faultSpec } from '../faults';
import { createSimFleet } from '../fleet';
import { SimDevice } from '../device';
import type { SimDeviceConfig } from '../types';
import { readFlash } from './flash-view';
import { checkInvariants, type Violation } from './invariants';
import type { Schedule } from './schedule';

export const MODELED_LIMIT_MS = 60 * 60 * 1000;
export const WALL_LIMIT_MS = 120 * 1000;
/** After the update: resume timeouts (60 s), reboots and diagnostics settle. */
export const SETTLE_MS = 75 * 1000;
/** Connection attempts flashDevice gets (its own retries); "done within 3 retries" = attempts <= 4. */
export const MAX_ATTEMPTS = 8;
const PARTITION_SIZE = 0x1e0000;
const OLD_VERSION = '1.0.0';
const PRIOR_VERSION = '1.0.5';

export interface ScheduleOutcome {
  index: number;
  implementation: Schedule['implementation'];
  /** 'done': flashDevice succeeded; 'failed': it reported an error (code); 'hang'. */
  outcome: 'done' | 'failed' | 'hang';
  errorCode?: string;
  attempts?: number;
  verified?: boolean;
  faults: string[];
  violations: Violation[];
  modeledMs: number;
}

export async function runSchedule(s: Schedule): Promise<ScheduleOutcome> {
  const name = `camp-${s.index}`;
  let config: SimDeviceConfig = {
    name,
    chip: s.chip,
    version: OLD_VERSION,
    confirmPolicy: s.policy,
    fleetKey: s.fleetKey,
    // Devices are secure by default; an unkeyed schedule runs a development build.
    allowUnauthenticated: s.fleetKey === undefined,
    allowDowngrade: true,
    implementation: s.implementation,
    otaPartitionSize: PARTITION_SIZE,
  };
  for (const f of s.faults) config = applyFaultToConfig(config, f);
  const fleet = await createSimFleet({ devices: [config], link: s.link, clock: 'virtual' });
  const scheduler = new AdapterScheduler(fleet.central, { readyTimeoutMs: 2000 });
  const clock = fleet.clock;
  const startedAt = clock.now();
  const device = fleet.devices.get(name);
  const result: ScheduleOutcome = { index: s.index, implementation: s.implementation, outcome: 'failed', faults: s.faults.map(faultSpec), violations: [], modeledMs: 0 };
  let wallTimer: NodeJS.Timeout | undefined;
  try {
    if (!device) throw new Error('the fleet has no device');
    const oldImage = readFlash(device, PARTITION_SIZE).slots[0];
    const newVersion = parseImage(s.image).appDesc?.version ?? '';
    const work = async (): Promise<{ flashed: boolean; committed: boolean }> => {
      let flashed = false;
      let committed = false;
      if (s.priorUpdate) {
        try {
          await flashDevice(scheduler, { device: name, image: s.priorUpdate, fleetKey: s.fleetKey, encoding: s.encoding, preventDowngrade: false, reboot: false });
        } catch (err) {
          result.violations.push({ invariant: 'report', detail: `the fault-free earlier update failed: ${String(err)}` });
        }
      }
      for (const f of s.faults) if (f.kind !== 'slowFlash') fleet.injectFault(name, f);
      try {
        const r = await flashDevice(scheduler, { device: name, image: s.image, fleetKey: s.fleetKey, encoding: s.encoding, maxAttempts: MAX_ATTEMPTS, preventDowngrade: false });
        flashed = true;
        result.outcome = 'done';
        result.attempts = r.attempts;
      } catch (err) {
        result.outcome = 'failed';
        result.errorCode = err instanceof OtaError ? err.code : String(err);
      }
      if (flashed) {
        try {
          // Committed = the image is VALID in otadata: confirmed by us (host policy) or by the device after its
          // diagnostics (auto, waited for). A power cut before that rolls back (bootloader.ts), which is no
          // misreport of flashDevice's: the client's success said "installed, pending verify".
          const v = await verifyDevice(scheduler, {
            device: name,
            expect: { version: newVersion, states: s.policy === 'auto' ? ['valid'] : undefined },
            onPass: s.policy === 'host' ? 'confirm' : 'none',
            fleetKey: s.fleetKey,
            waitMs: 60000,
          });
          result.verified = v.passed;
          committed = s.policy === 'auto' ? v.passed : v.action === 'confirmed';
        } catch {
          result.verified = false;
        }
      }
      await sleep(clock, SETTLE_MS);
      return { flashed, committed };
    };
    const wall = new Promise<never>((_resolve, reject) => {
      wallTimer = setTimeout(() => reject(new OtaError('TIMEOUT', `schedule ${s.index}: no end after ${WALL_LIMIT_MS / 1000} s of real time`)), WALL_LIMIT_MS);
    });
    let done: { flashed: boolean; committed: boolean };
    try {
      done = await Promise.race([withTimeout(clock, work(), MODELED_LIMIT_MS, () => new OtaError('TIMEOUT', `no end after ${MODELED_LIMIT_MS / 60000} min of modeled time`)), wall]);
    } catch (err) {
      result.outcome = 'hang';
      result.violations.push({ invariant: 'hang', detail: (err as Error).message });
      return result;
    }
    let statusVersion: string | null = null;
    try {
      const st = await withTimeout(clock, readDeviceStatus(scheduler, { device: name, findTimeoutMs: 10000 }), 60000, () => new OtaError('TIMEOUT', 'status read'));
      statusVersion = st.firmware.version;
    } catch {
      statusVersion = null;
    }
    const view = readFlash(device, PARTITION_SIZE);
    result.violations.push(
      ...checkInvariants({
        view,
        chip: s.chip,
        oldImages: s.priorUpdate ? [oldImage, s.priorUpdate] : [oldImage],
        newImage: s.image,
        flashed: done.flashed,
        committed: done.committed,
        // After an update without reboot the device runs another image than otadata names: not compared.
        statusVersion: s.priorUpdate ? null : statusVersion,
        oldVersions: [OLD_VERSION, PRIOR_VERSION],
        newVersion,
      }),
    );
    if (device instanceof SimDevice && device.machine.state === 'bricked') result.violations.push({ invariant: 'bootable', detail: 'the device model reports itself bricked' });
    return result;
  } finally {
    if (wallTimer) clearTimeout(wallTimer);
    result.modeledMs = clock.now() - startedAt;
    await scheduler.close().catch(() => undefined);
    await fleet.close().catch(() => undefined);
  }
}
