/**
 * One install task on this gateway's adapter, from image to verified device: fetch and check the image,
 * read the device's Status (exactly once: a device that already runs the image is only verified and
 * reported installed: false), flash, verify (confirm / roll back per task.options.confirm). Cancelling or
 * timing out aborts whatever runs (the v2 client sends ABORT mid-transfer); an image already written and
 * still pending verify is then rolled back with lib/ota's rollbackDevice, so a stopped task never leaves
 * a device on an unconfirmed image. It never throws: every end is an outcome with what happened.
 */
import { abortable } from '../../ble/abort';
import type { AdapterScheduler } from '../../ble/scheduler';
import type { Clock } from '../../clock';
import { OtaError, toOtaError } from '../../errors';
import { flashDevice, readDeviceStatus, verifyDevice, type FlashResult, type VerifyResult } from '../../ota';
import { rollbackDevice } from '../../ota/rollback';
import type { DeviceStatus } from '../../protocol/status';
import type { ExecutionStatus, InstallTask } from '../messages';
import { checkTaskImage } from './image-check';
import type { GatewayLog, ImageSource } from './ports';

export type TaskProgress = NonNullable<ExecutionStatus['progress']>;
type Firmware = { version: string | null; sha256: string | null };

export interface InstallContext {
  scheduler: AdapterScheduler;
  clock: Clock;
  images: ImageSource;
  keys: { masterKey?: Buffer; fleetKey?: Buffer };
  log: GatewayLog;
  onProgress: (progress: TaskProgress) => void;
  /** How long to look for the device before DEVICE_NOT_FOUND (ms). */
  findTimeoutMs: number;
  /** How long the verify (and a rollback after a cancel) waits for the device after its reboot (ms). */
  verifyWaitMs: number;
}

export interface TaskOutcome {
  state: 'succeeded' | 'failed' | 'rolled-back' | 'cancelled';
  error?: { code: string; message: string };
  before?: Firmware;
  after?: Firmware;
  installed?: boolean;
  bytesOnAir?: number;
  encoding?: string;
}

function firmwareOf(status: Record<string, unknown> | DeviceStatus): Firmware {
  const s = status as Partial<DeviceStatus>;
  return { version: s.appVersion || null, sha256: s.runningSha256 || null };
}

function errorOf(err: OtaError): { code: string; message: string } {
  return { code: err.code, message: err.message };
}

/** What a verify found, as the task's end. */
function verifyOutcome(verify: VerifyResult, appSha256: string, before: Firmware | undefined, installed: boolean): TaskOutcome {
  const after = firmwareOf(verify.status);
  if (verify.passed) return { state: 'succeeded', before, after, installed };
  const reasons = verify.reasons.join('; ');
  if (verify.action === 'rolled-back') {
    return { state: 'rolled-back', before, after: before, installed, error: { code: 'VERIFY_REJECTED', message: `${reasons}; the gateway rolled the device back to its previous image` } };
  }
  const status = verify.status as unknown as DeviceStatus;
  // The device gave the image up itself (diagnostics failed under its own confirm policy).
  if (status.last?.rolledBack && status.runningSha256 !== appSha256) {
    return { state: 'rolled-back', before, after, installed, error: { code: 'VERIFY_REJECTED', message: `${reasons}; the device rolled back to its previous image` } };
  }
  return { state: 'failed', before, after, installed, error: { code: 'VERIFY_REJECTED', message: reasons } };
}

export async function runInstallTask(task: InstallTask, ctx: InstallContext, signal: AbortSignal): Promise<TaskOutcome> {
  const address = task.device.address;
  const verifyOptions = {
    device: address,
    ...ctx.keys,
    waitMs: ctx.verifyWaitMs,
    onPass: task.options.confirm ? ('confirm' as const) : ('none' as const),
    onFail: task.options.confirm ? ('rollback' as const) : ('none' as const),
    signal,
  };
  let before: Firmware | undefined;
  let appSha256: string | null = null;
  let writing = false;
  /** Every byte acknowledged: END is sent or about to be, so the device may install the image. */
  let endReached = false;
  let flash: FlashResult | null = null;
  try {
    const image = await abortable(ctx.images.get(task.image.sha256, task.image.size), signal);
    appSha256 = checkTaskImage(image, task.image).appSha256;
    ctx.onProgress({ phase: 'reading status', percent: 0, bytesSent: 0, bytesTotal: image.length });
    const report = await readDeviceStatus(ctx.scheduler, { device: address, signal, findTimeoutMs: ctx.findTimeoutMs });
    before = { version: report.firmware.version, sha256: report.firmware.imageSha256 ?? null };
    if (report.firmware.imageSha256 === appSha256) {
      ctx.log('info', `${address} already runs ${task.image.version} (${appSha256.slice(0, 8)}): verifying only`);
      ctx.onProgress({ phase: 'verifying', percent: 100, bytesSent: 0, bytesTotal: image.length });
      return verifyOutcome(await verifyDevice(ctx.scheduler, { ...verifyOptions, expect: { imageSha256: appSha256 } }), appSha256, before, false);
    }
    writing = true;
    const manifest = task.image.manifest ? Buffer.from(task.image.manifest, 'base64') : undefined;
    flash = await flashDevice(ctx.scheduler, {
      device: address,
      image,
      ...ctx.keys,
      ...(manifest ? { manifest } : {}),
      encoding: task.options.encoding,
      maxAttempts: task.options.maxAttempts,
      findTimeoutMs: ctx.findTimeoutMs,
      signal,
      onProgress: (p) => {
        if (p.phase === 'finishing' || p.phase === 'rebooting' || p.phase === 'done') endReached = true;
        ctx.onProgress({ phase: p.phase, percent: p.percent, bytesSent: p.bytesDone, bytesTotal: p.totalBytes });
      },
    });
    const transfer = { bytesOnAir: flash.bytesOnAir, encoding: flash.encoding };
    if (report.protocol === 'legacy') {
      // The seed firmware has no Status to verify and no confirm: its DONE_ACK is all there is to know.
      return { state: 'succeeded', before, after: { version: flash.after.version, sha256: flash.after.imageSha256 ?? null }, installed: true, ...transfer };
    }
    ctx.onProgress({ phase: 'verifying', percent: 100, bytesSent: image.length, bytesTotal: image.length });
    const verify = await verifyDevice(ctx.scheduler, { ...verifyOptions, expect: { imageSha256: appSha256 } });
    return { ...verifyOutcome(verify, appSha256, before, true), ...transfer };
  } catch (err) {
    const stop = signal.aborted ? toOtaError(signal.reason) : null;
    const failure = stop ?? toOtaError(err);
    const transfer = flash ? { bytesOnAir: flash.bytesOnAir, encoding: flash.encoding } : {};
    const ended: TaskOutcome = { state: stop?.code === 'TASK_CANCELLED' ? 'cancelled' : 'failed', error: errorOf(failure), ...(before ? { before, after: before } : {}), ...transfer };
    // A stop after the transfer began looks at the device; a failure only when END may have installed the
    // image and the host is the one that confirms. Otherwise nothing can be pending.
    const look = stop ? writing : endReached && task.options.confirm;
    if (!look || appSha256 === null) return ended;
    return { ...(await undoWrite(task, ctx, appSha256, ended, failure)), ...transfer };
  }
}

/** After a stop or failure past BEGIN: roll back an image that is installed but unconfirmed. */
async function undoWrite(task: InstallTask, ctx: InstallContext, appSha256: string, ended: TaskOutcome, failure: OtaError): Promise<TaskOutcome> {
  const address = task.device.address;
  try {
    // Its own wait, not the aborted task's signal: the rollback is the cancel's last step.
    const undo = await rollbackDevice(ctx.scheduler, { device: address, imageSha256: appSha256, fileSha256: task.image.sha256, ...ctx.keys, waitMs: ctx.verifyWaitMs });
    if (undo.action === 'rolled-back') {
      ctx.log('info', `${address}: the image written before the task ended (${failure.code}) was pending verify and is rolled back`);
      return { ...ended, error: { code: failure.code, message: `${failure.message}; the image already written was rolled back, the device returns to its previous image` } };
    }
    const now = undo.status ? firmwareOf(undo.status) : ended.after;
    if (undo.status && undo.status.runningSha256 === appSha256 && undo.status.otaStateName === 'valid') {
      // Too late to undo: the device installed and confirmed the image before the stop reached it.
      ctx.log('warn', `${address}: ${failure.code} came after the device had installed and confirmed the image; it runs it`);
      return { state: 'succeeded', before: ended.before, after: now, installed: true };
    }
    return { ...ended, ...(now ? { after: now } : {}) };
  } catch (err) {
    const e = toOtaError(err);
    // The rollback could not be done (the device rebooting, a lost link): one more look, on a new connection,
    // says what the device runs now, so the campaign's record agrees with the device.
    const settled = await lookAgain(task, ctx, appSha256, ended, failure);
    if (settled) return settled;
    // A stopped task is reported by what went wrong in its rollback; a failed one keeps its own code.
    const code = failure.code === 'TASK_CANCELLED' || failure.code === 'TASK_TIMEOUT' ? e.code : failure.code;
    return { ...ended, state: 'failed', error: { code, message: `${failure.code}: ${failure.message}; then the rollback of the written image failed (${e.code}): ${e.message}` } };
  }
}

/** After a failed rollback: the device's Status once more; an outcome when it settles the question, else null. */
async function lookAgain(task: InstallTask, ctx: InstallContext, appSha256: string, ended: TaskOutcome, failure: OtaError): Promise<TaskOutcome | null> {
  try {
    const report = await readDeviceStatus(ctx.scheduler, { device: task.device.address, findTimeoutMs: 10000 });
    const status = report.status;
    if (!status) return null;
    const now = firmwareOf(status);
    if (status.runningSha256 === appSha256 && status.otaStateName === 'valid') {
      ctx.log('warn', `${task.device.address}: ${failure.code} came after the device had installed and confirmed the image; it runs it`);
      return { state: 'succeeded', before: ended.before, after: now, installed: true };
    }
    // The old image runs and nothing of the new one is pending: the stop took effect.
    if (status.runningSha256 !== appSha256 && status.otaStateName !== 'pending-verify') return { ...ended, after: now };
    return null;
  } catch {
    return null;
  }
}
