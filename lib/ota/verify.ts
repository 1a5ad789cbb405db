/**
 * verifyDevice: after a reboot into a new image, wait (bounded) for the device to come back, read its
 * Status, compare with what the caller expects, and confirm or roll back per the host's policy.
 * readDeviceStatus: the same read without judgement.
 */
import type { BleConnection, DiscoveredDevice } from '../ble/central';
import type { AdapterScheduler, DeviceSession } from '../ble/scheduler';
import { abortable, abortableSleep, abortError } from '../ble/abort';
import { OtaError, toOtaError } from '../errors';
import type { DeviceStatus } from '../protocol/status';
import { checkDeviceSpec, deviceRef, type DeviceSpec } from './device-ref';
import { checkKeyOptions } from './preflight';
import { sessionKeyForDevice } from './security-gate';
import { openProtocolSession, readDeviceInfo } from './protocols';
import { isRetryable } from './retry';
import type { DeviceRef, FirmwareSummary, OtaState, VerifyExpectations, VerifyOptions, VerifyResult } from './types';

const OTA_STATES: OtaState[] = ['new', 'pending-verify', 'valid', 'invalid', 'aborted', 'undefined'];

/** Plain-sentence reasons why a Status does not meet the expectations (empty: it does). */
export function judgeStatus(status: DeviceStatus, expect: VerifyExpectations): string[] {
  const reasons: string[] = [];
  if (expect.version !== undefined && status.appVersion !== expect.version) {
    reasons.push(`the device runs version ${status.appVersion || '(none)'}, expected ${expect.version}`);
  }
  if (expect.imageSha256 !== undefined && status.runningSha256 !== expect.imageSha256.toLowerCase()) {
    reasons.push(`the running image's SHA-256 is ${status.runningSha256.slice(0, 16)}…, expected ${expect.imageSha256.toLowerCase().slice(0, 16)}…`);
  }
  const states = expect.states ?? ['valid', 'pending-verify'];
  if (!states.includes(status.otaStateName)) reasons.push(`the running image is ${status.otaStateName}, expected ${states.join(' or ')}`);
  const last = status.last;
  if (expect.forbidRollback !== false && last.recordValid && last.rolledBack) {
    reasons.push(`the last update was rolled back${status.lastMessage ? ` (${status.lastMessage})` : ''}`);
  }
  if (expect.requireDiagnosticsPassed !== false && last.recordValid) {
    if (last.diagnosticsRan && !last.diagnosticsPassed) reasons.push(`the first-boot diagnostics failed${status.lastMessage ? `: ${status.lastMessage}` : ''}`);
    else if (!last.diagnosticsRan && status.otaStateName === 'pending-verify') reasons.push('the first-boot diagnostics have not run yet');
  }
  if (reasons.length === 0 && last.recordValid && status.lastResultName && status.lastResultName !== 'OK' && status.sessionStateName === 'idle' && expect.imageSha256 !== undefined && status.lastSha256 === expect.imageSha256) {
    reasons.push(`the last update ended with ${status.lastResultName}`);
  }
  return reasons;
}

function checkExpectations(expect: unknown): VerifyExpectations {
  if (!expect || typeof expect !== 'object') throw new OtaError('BAD_OPTION', 'verify needs an "expect" object (version, imageSha256, states, ...)');
  const e = expect as VerifyExpectations;
  if (e.imageSha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(e.imageSha256)) throw new OtaError('BAD_OPTION', 'expect.imageSha256 must be 64 hex digits');
  for (const s of e.states ?? []) if (!OTA_STATES.includes(s)) throw new OtaError('BAD_OPTION', `expect.states: "${s}" is not an OTA state (${OTA_STATES.join(', ')})`);
  return e;
}

async function readStatus(link: BleConnection): Promise<DeviceStatus> {
  const info = await readDeviceInfo(link);
  if (!info.status) throw new OtaError('VERIFY_UNSUPPORTED', 'the device speaks the legacy (seed) protocol, which has no Status to verify');
  return info.status;
}

/** Connects and reads Status, retrying link trouble and a device still finishing, until deadline (clock ms). */
async function readStatusWhenBack(session: DeviceSession, deadline: number): Promise<{ link: BleConnection; status: DeviceStatus }> {
  const clock = session.clock;
  let lastError: OtaError | null = null;
  while (clock.now() < deadline) {
    if (session.signal.aborted) throw abortError(session.signal);
    let link: BleConnection | null = null;
    try {
      link = await session.connect({ timeoutMs: Math.max(1000, Math.min(10000, deadline - clock.now())) });
      const status = await abortable(readStatus(link), session.signal);
      // Right after END the device may still be finishing before its restart: not back yet.
      if (status.sessionStateName === 'idle') return { link, status };
      lastError = new OtaError('DEVICE_NOT_READY', `the device is still ${status.sessionStateName} an update`);
    } catch (err) {
      lastError = toOtaError(err);
      if (session.signal.aborted) throw abortError(session.signal);
      if (!isRetryable(lastError) && lastError.code !== 'DEVICE_NOT_READY') throw lastError;
    }
    await link?.disconnect().catch(() => undefined);
    await abortableSleep(clock, 500, session.signal);
    await session.rediscover({ seenAfter: clock.now() - 500, timeoutMs: Math.max(1, deadline - clock.now()) }).catch(() => undefined);
  }
  throw new OtaError('VERIFY_TIMEOUT', `the device did not come back with a readable status in time${lastError ? ` (last: ${lastError.message})` : ''}`, { lastError: lastError?.toJSON() });
}

export async function verifyDevice(scheduler: AdapterScheduler, options: VerifyOptions): Promise<VerifyResult> {
  if (!options || typeof options !== 'object') throw new OtaError('BAD_OPTION', 'verifyDevice needs an options object with device and expect');
  const device = checkDeviceSpec(options.device);
  const expect = checkExpectations(options.expect);
  const keys = checkKeyOptions(options);
  const waitMs = options.waitMs ?? 30000;
  if (!Number.isFinite(waitMs) || waitMs <= 0) throw new OtaError('BAD_OPTION', `waitMs must be a positive number of milliseconds, got ${String(waitMs)}`);
  const onPass = options.onPass ?? 'none';
  const onFail = options.onFail ?? 'none';
  if (!['none', 'confirm'].includes(onPass)) throw new OtaError('BAD_OPTION', `onPass must be none or confirm, got ${JSON.stringify(onPass)}`);
  if (!['none', 'rollback'].includes(onFail)) throw new OtaError('BAD_OPTION', `onFail must be none or rollback, got ${JSON.stringify(onFail)}`);
  const clock = scheduler.clock;
  const deadline = clock.now() + waitMs;
  return scheduler.session(
    device,
    async (session) => {
      const { link, status } = await readStatusWhenBack(session, deadline);
      const reasons = judgeStatus(status, expect);
      const passed = reasons.length === 0;
      let action: VerifyResult['action'] = 'none';
      let finalStatus = status;
      const pending = status.otaStateName === 'pending-verify';
      if (pending && ((passed && onPass === 'confirm') || (!passed && onFail === 'rollback'))) {
        // The session key of this device: the fleet key, or the master key's derivation for its Status device id.
        const fleetKey = sessionKeyForDevice(keys, status.caps, status.deviceId);
        const client = await openProtocolSession(link, { requested: 'v2', fleetKey, clock, signal: session.signal });
        await client.open();
        if (passed) {
          await (client.confirm as () => Promise<void>)();
          action = 'confirmed';
          finalStatus = await readStatus(link).catch(() => status);
        } else {
          await (client.rollback as () => Promise<void>)();
          action = 'rolled-back';
        }
      }
      return { passed, reasons, device: deviceRef(session.device), status: finalStatus as unknown as Record<string, unknown>, action };
    },
    { signal: options.signal, findTimeoutMs: waitMs },
  );
}

export interface StatusReport {
  device: DeviceRef;
  protocol: 'v2' | 'legacy';
  firmware: FirmwareSummary;
  /** Decoded Status (v2), null for legacy devices. */
  status: DeviceStatus | null;
  /** Device Information strings (manufacturer, model, firmware revision) when present. */
  info: Record<string, string>;
  rssi: number;
}

export async function readDeviceStatus(scheduler: AdapterScheduler, options: { device: DeviceSpec | DiscoveredDevice; signal?: AbortSignal; findTimeoutMs?: number }): Promise<StatusReport> {
  const device = checkDeviceSpec(options?.device);
  return scheduler.withConnection(
    device,
    async (link, found) => {
      const info = await readDeviceInfo(link);
      const s = info.status;
      return {
        device: deviceRef(found),
        protocol: info.protocol,
        firmware: s
          ? { version: s.appVersion || null, state: s.otaStateName, imageSha256: s.runningSha256, projectName: s.projectName || null }
          : { version: info.info.firmwareRevision ?? null, state: 'undefined', imageSha256: null, projectName: null },
        status: s,
        info: info.info,
        rssi: found.rssi,
      };
    },
    { signal: options.signal, findTimeoutMs: options.findTimeoutMs },
  );
}
