/**
 * flashDevice: pre-flight checks, a device a name picks unambiguously (select-device.ts), then one
 * device session on the scheduler: connect, detect the protocol, read the device's facts (before-state
 * and target checks), transfer. A dropped link reconnects after an exponential backoff (central's
 * clock) and resumes where the device left off (v2; the legacy protocol starts over, except after a
 * link lost between DONE and its answer: the next attempt first reads what the device can tell,
 * legacy-outcome.ts, and never sends an image the device already took). Cancelling stops the client,
 * which sends ABORT (v2) before the session closes the link.
 */
import type { DeviceSession } from '../ble/scheduler';
import type { AdapterScheduler } from '../ble/scheduler';
import { abortableSleep, abortError } from '../ble/abort';
import type { Clock } from '../clock';
import { OtaError, toOtaError } from '../errors';
import { CountingConnection } from './counting-connection';
import { deviceRef, labelOf } from './device-ref';
import { checkAgainstDevice, planFlash, summaryOf, type FlashPlan } from './preflight';
import { ProgressTracker } from './progress';
import { checkLegacyImageSize } from '../protocol/legacy-client';
import { checkLegacyOutcome } from './legacy-outcome';
import { openProtocolSession } from './protocols';
import { prepareSecureBegin } from './security-gate';
import { assertNameUnique } from './select-device';
import type { DeviceFacts, ProtocolSession } from './protocol-session';
import { backoffDelay, isRetryable } from './retry';
import type { FirmwareSummary, FlashOptions, FlashResult } from './types';
import { chooseTransfer, isDeltaRefusal, wholeImageChoice, type DeltaFallback, type TransferChoice } from './transfer-choice';
import { addFlashedBase, encodingFields } from './delta-result';

interface AttemptState {
  protocol: 'v2' | 'legacy' | null;
  /** What this flash sends, decided once (the same payload on every attempt: a resume resends the same BEGIN). */
  choice: TransferChoice | null;
  /** The device refused the patch; the whole image was sent instead. */
  deltaFallback: DeltaFallback | null;
  /** False after a fallback until the next BEGIN: the whole image starts fresh, it never resumes the patch's session. */
  resumable: boolean;
  before: FirmwareSummary | null;
  bytesOnAir: number;
  transferStartedAt: number | null;
  /** Clock time END was acknowledged (the reboot that follows is not part of the update time). */
  finishedAt: number | null;
  /** Legacy: an attempt sent DONE and lost the link before DONE_ACK / DONE_NAK (outcome unknown). */
  doneUnanswered: boolean;
}

export async function flashDevice(scheduler: AdapterScheduler, options: FlashOptions): Promise<FlashResult> {
  const plan = planFlash(options);
  const label = labelOf(plan.device);
  const tracker = new ProgressTracker(label, plan.image.length, scheduler.clock, options.onProgress);
  tracker.setPhase('waiting', 1);
  try {
    return await scheduler.session(plan.device, (session) => runFlash(scheduler, session, plan, tracker, options), {
      signal: options.signal,
      findTimeoutMs: options.findTimeoutMs,
      wait: options.waitIfBusy !== false,
    });
  } catch (err) {
    tracker.setPhase('failed');
    throw toOtaError(err);
  }
}

async function runFlash(scheduler: AdapterScheduler, session: DeviceSession, plan: FlashPlan, tracker: ProgressTracker, options: FlashOptions): Promise<FlashResult> {
  const clock = session.clock;
  await assertNameUnique(scheduler, plan.device, session.device, session.signal);
  const state: AttemptState = { protocol: null, choice: null, deltaFallback: null, resumable: true, before: null, bytesOnAir: 0, transferStartedAt: null, finishedAt: null, doneUnanswered: false };
  const startedAt = clock.now();
  let lastError: OtaError | null = null;
  // A link lost between DONE and its answer earns one more connection, to look, even past maxAttempts.
  for (let attempt = 1; attempt <= plan.maxAttempts || (attempt === plan.maxAttempts + 1 && state.doneUnanswered); attempt++) {
    if (session.signal.aborted) throw abortError(session.signal);
    if (attempt > 1) {
      tracker.setPhase('reconnecting', attempt);
      await abortableSleep(clock, backoffDelay(attempt), session.signal);
    }
    try {
      await runAttempt(session, plan, tracker, state, attempt, options);
      const seconds = ((state.finishedAt ?? clock.now()) - startedAt) / 1000;
      tracker.setPhase('done', attempt);
      if (state.protocol === 'v2') addFlashedBase(plan.baseImages, plan.image);
      return {
        success: true,
        device: deviceRef(session.device),
        protocol: state.protocol ?? 'v2',
        ...encodingFields(state.choice, state.deltaFallback),
        bytes: plan.image.length,
        bytesOnAir: state.bytesOnAir,
        seconds: Math.round(seconds * 1000) / 1000,
        secondsKind: clock.virtual ? 'modeled' : 'measured',
        kBps: seconds > 0 ? Math.round((plan.image.length / seconds / 1000) * 100) / 100 : 0,
        attempts: attempt,
        before: state.before,
        after: plan.after,
        fileSha256: plan.fileSha256,
      };
    } catch (err) {
      if (session.signal.aborted) throw abortError(session.signal);
      lastError = toOtaError(err);
      if (lastError.details?.doneSent === true) state.doneUnanswered = true;
      if (state.choice?.encoding === 'delta' && !state.deltaFallback && isDeltaRefusal(lastError)) {
        // The device refused the patch before anything was activated: send the whole image once, at once,
        // without counting it as a failed attempt.
        state.deltaFallback = { from: 'delta', to: 'deflate', code: lastError.code, message: lastError.message };
        state.choice = null;
        state.resumable = false;
        attempt--;
        continue;
      }
      if (!isRetryable(lastError)) throw lastError;
    }
  }
  const last = lastError as OtaError;
  const unknown = state.doneUnanswered ? '; DONE had been sent and its answer never came, so whether the device took the image is unknown' : '';
  throw new OtaError('RETRIES_EXHAUSTED', `the update of ${labelOf(plan.device)} failed ${plan.maxAttempts} time(s); last error: ${last.code}: ${last.message}${unknown}`, {
    attempts: plan.maxAttempts,
    lastError: last.toJSON(),
    ...(state.doneUnanswered ? { doneSent: true } : {}),
  });
}

async function runAttempt(session: DeviceSession, plan: FlashPlan, tracker: ProgressTracker, state: AttemptState, attempt: number, options: FlashOptions): Promise<void> {
  tracker.setPhase('connecting', attempt);
  const link = new CountingConnection(await session.connect());
  try {
    if (state.doneUnanswered) {
      // The last attempt sent DONE and lost the link before the answer: look before sending again.
      const { outcome, evidence } = await checkLegacyOutcome(link, plan.appSha256);
      if (outcome === 'installed') {
        state.finishedAt = session.clock.now();
        return;
      }
      if (outcome === 'rejected') throw new OtaError('LEGACY_DONE_NAK', `The seed firmware rejected the image at the end (${evidence}).`);
      if (outcome === 'unknown') {
        throw new OtaError('LEGACY_OUTCOME_UNKNOWN', `the link to ${labelOf(plan.device)} was lost after DONE was sent and before the device answered; ${evidence}. The image was not sent again; check the device's behaviour, or flash again to be sure`, { evidence });
      }
      state.doneUnanswered = false;
      if (attempt > plan.maxAttempts) {
        throw new OtaError('RETRIES_EXHAUSTED', `the update of ${labelOf(plan.device)} failed ${plan.maxAttempts} time(s); ${evidence}`, { attempts: plan.maxAttempts, evidence });
      }
    }
    const client: ProtocolSession = await openProtocolSession(link, {
      requested: plan.protocol,
      fleetKey: plan.fleetKey,
      clock: session.clock,
      signal: session.signal,
      legacyPartitionSize: plan.legacyPartitionSize,
      beforeBurst: () => session.yieldToSetups(),
    });
    if (state.protocol && client.protocol !== state.protocol) throw new OtaError('PROTOCOL_CHANGED', `${labelOf(plan.device)} changed its protocol between attempts`);
    state.protocol = client.protocol;
    // Known from the GATT table alone: nothing is written (not even a subscription) for an image the seed cannot hold.
    if (client.protocol === 'legacy') checkLegacyImageSize(plan.image.length, plan.legacyPartitionSize);
    tracker.setPhase('authenticating', attempt);
    await client.open();
    const facts = await client.deviceFacts();
    // The device runs this very image already: nothing is left to send, and sending it again would be refused
    // (BEGIN while pending verify: INVALID_STATE, PROTOCOL.md §4.4) or flash it twice. Either it is not confirmed
    // yet (installed by an earlier attempt, or by another gateway that died before confirming), or this flash's
    // own earlier attempt installed it and lost the END answer, or the device itself to a power cut. The
    // caller's verify confirms it or rolls it back.
    const installedByEarlierAttempt = attempt > 1 && state.before !== null && state.before.imageSha256 !== plan.appSha256;
    if (facts.runningSha256 === plan.appSha256 && (facts.state === 'pending-verify' || installedByEarlierAttempt)) {
      state.before = state.before ?? summaryOf(facts);
      state.finishedAt = session.clock.now();
      return;
    }
    if (!state.before) {
      state.before = summaryOf(facts);
      checkAgainstDevice(plan, facts, options.partitionSize);
    }
    // Every attempt: the key is set on this connection's client, and the manifest goes with every BEGIN (resumed too).
    let manifest: Buffer | undefined;
    if (facts.security) {
      const secure = prepareSecureBegin(plan, facts.security, Date.now());
      manifest = secure.manifest;
      // Right after Status (its caps say whether the device takes MANIFEST): the device verifies the
      // signature while the key, the transfer choice, CHALLENGE and BEGIN follow (PROTOCOL.md §2.4). Not
      // for a resume: the kept session keeps the manifest it verified, a MANIFEST would only cost a verify.
      if (manifest && !(attempt > 1 && state.resumable)) await client.stageManifest?.(manifest);
      client.setSessionKey?.(secure.sessionKey);
    }
    // A session this device kept for the same file (another gateway, or an earlier flash, lost its link mid-transfer)
    // is continued from the device's offset on the first attempt too; the device checks digest, sizes and encoding.
    const keptSession = facts.raw.sessionStateName === 'suspended' && facts.raw.lastSha256 === plan.fileSha256;
    state.choice = state.choice ?? (await chooseFor(plan, client.protocol, facts, state.deltaFallback, session.clock));
    if (state.deltaFallback) state.deltaFallback.to = state.choice.encoding === 'raw' ? 'raw' : 'deflate';
    const choice = state.choice;
    let finishing = false;
    await client.transfer({
      image: plan.image,
      encoding: choice.encoding,
      payload: choice.payload ?? undefined,
      resume: state.resumable && (attempt > 1 || keptSession),
      reboot: plan.reboot,
      ...(manifest ? { manifest } : {}),
      signal: session.signal,
      onTransferStart: (resumedFrom) => {
        state.resumable = true;
        tracker.update(resumedFrom);
        tracker.setPhase('transferring', attempt);
      },
      onProgress: (done) => {
        tracker.update(done);
        if (done >= plan.image.length && !finishing) {
          finishing = true;
          tracker.setPhase('finishing', attempt);
        }
      },
    });
    state.finishedAt = session.clock.now();
    if (plan.reboot) {
      tracker.setPhase('rebooting', attempt);
      // The device restarts shortly after END; returning once the link has dropped means the next
      // operation (verify) meets the new image, not the old one in its last milliseconds.
      await waitForDrop(link, session.clock, REBOOT_DROP_WAIT_MS);
    }
  } finally {
    state.bytesOnAir += link.bytesWritten;
    await link.disconnect().catch(() => undefined);
  }
}

/** How long to wait for the device to drop the link after END with the reboot flag. */
const REBOOT_DROP_WAIT_MS = 5000;

function waitForDrop(link: CountingConnection, clock: Clock, ms: number): Promise<void> {
  if (!link.connected) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = clock.setTimer(done, ms);
    function done() {
      timer.cancel();
      link.removeListener('disconnect', done);
      resolve();
    }
    link.once('disconnect', done);
  });
}

/** The transfer of this flash (transfer-choice.ts); after a refused patch, the whole image. */
function chooseFor(plan: FlashPlan, protocol: 'v2' | 'legacy', facts: DeviceFacts, fallback: DeltaFallback | null, clock: Clock): Promise<TransferChoice> {
  const input = { clock, image: plan.image, option: plan.encoding, protocol, deviceDeflate: facts.deflate, deviceDelta: facts.delta, runningSha256: facts.runningSha256, store: plan.baseImages };
  if (fallback) return wholeImageChoice({ ...input, option: 'auto' });
  return chooseTransfer(input);
}
