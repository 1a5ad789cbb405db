/**
 * What one flash sends, decided once after the device's Status is read and kept for every attempt (so a
 * resumed session gets the same BEGIN and the same transfer bytes): the whole image (raw or deflate), or a
 * delta patch (PROTOCOL.md §13) against the image the device runs when a base images store holds it.
 * 'auto' takes the delta when its transfer is below 0.9 × the deflated image (lib/delta chooseEncoding);
 * a patch the device refuses (BASE_MISMATCH, PATCH_INVALID) earns one more try with the whole image.
 */
import { resolve } from 'path';
import type { Clock } from '../clock';
import { OtaError } from '../errors';
import { ImageStore } from '../delta/image-store';
import { chooseEncoding } from '../delta/patch';
import { Caps } from '../protocol/constants';
import { prepareDeltaPayload, prepareWholeImagePayload, type TransferPayload } from '../protocol/payload';

export type EncodingOption = 'auto' | 'raw' | 'deflate' | 'delta';
export type SentEncoding = 'raw' | 'deflate' | 'delta';

export interface TransferChoice {
  encoding: SentEncoding;
  /**
   * The prepared payload: a delta (BEGIN base_sha256 and the patch's zlib stream) or the whole image
   * deflated by the best encoder (lib/protocol/best-deflate.ts); null for a raw image.
   */
  payload: TransferPayload | null;
  /** running_sha256 of the base a patch was made from (hex), null when no patch was made. */
  base: string | null;
  /** Bytes of the patch's zlib stream when one was made (sent or not), else null. */
  patchBytes: number | null;
}

/** Why a flash sent the whole image after starting with a delta. */
export interface DeltaFallback {
  from: 'delta';
  to: 'raw' | 'deflate';
  /** The device's refusal (DEVICE_BASE_MISMATCH, DEVICE_PATCH_INVALID). */
  code: string;
  message: string;
}

/** The device's answers to a patch after which the whole image is sent instead (once). */
const DELTA_REFUSALS = new Set(['DEVICE_BASE_MISMATCH', 'DEVICE_PATCH_INVALID']);

export function isDeltaRefusal(err: OtaError): boolean {
  return DELTA_REFUSALS.has(err.code);
}

/** One store per directory in this process, so its patch cache serves every flash from that directory. */
const storesByDir = new Map<string, ImageStore>();

/** FlashOptions.baseImages as a store: an ImageStore as it is, a directory path through the shared store of that directory. */
export function openBaseImages(option: unknown): ImageStore | null {
  if (option === undefined || option === null || option === '') return null;
  if (option instanceof ImageStore) return option;
  if (typeof option !== 'string') throw new OtaError('BAD_OPTION', `baseImages must be an ImageStore or a directory path; got ${typeof option}`);
  const dir = resolve(option);
  let store = storesByDir.get(dir);
  if (!store) {
    try {
      store = new ImageStore(dir);
    } catch (err) {
      if (err instanceof OtaError) throw err;
      throw new OtaError('BAD_OPTION', `the base images directory ${option} cannot be used: ${(err as Error).message}`, { baseImages: option });
    }
    storesByDir.set(dir, store);
  }
  return store;
}

export interface ChoiceInput {
  image: Buffer;
  option: EncodingOption;
  protocol: 'v2' | 'legacy';
  deviceDeflate: boolean;
  deviceDelta: boolean;
  /** The device's running_sha256 (hex) from Status; null when unknown. */
  runningSha256: string | null;
  store: ImageStore | null;
  /** The session's clock: a simulated one is held while the worker generates (it waits on real CPU, not on modeled time). */
  clock?: Clock;
}

/**
 * The whole image as 'raw' / 'deflate' / 'auto' ask (DEFLATE_UNSUPPORTED for a device without deflate).
 * A deflated image is compressed here, by the best encoder in a worker thread (once per image content).
 */
export async function wholeImageChoice(input: Pick<ChoiceInput, 'image' | 'option' | 'protocol' | 'deviceDeflate' | 'clock'>): Promise<TransferChoice> {
  const raw: TransferChoice = { encoding: 'raw', payload: null, base: null, patchBytes: null };
  if (input.option === 'raw') return raw;
  const canDeflate = input.protocol === 'v2' && input.deviceDeflate;
  if (input.option === 'deflate' && !canDeflate) {
    throw new OtaError('DEFLATE_UNSUPPORTED', `the device (${input.protocol} protocol) does not accept deflate-compressed transfers; use raw or auto`);
  }
  if (!canDeflate) return raw;
  // 'auto' (and 'delta' after a refusal): deflate when it saves enough (lib/protocol's rule).
  const release = holdClock(input.clock);
  try {
    const payload = await prepareWholeImagePayload(input.image, input.option === 'deflate' ? 'deflate' : 'auto', Caps.DEFLATE);
    return payload.encoding === 'deflate' ? { encoding: 'deflate', payload, base: null, patchBytes: null } : raw;
  } finally {
    release();
  }
}

/** Decides the transfer; for a delta generates (worker thread, cached in the store) the patch. */
export async function chooseTransfer(input: ChoiceInput): Promise<TransferChoice> {
  const { option } = input;
  if (option === 'raw' || option === 'deflate') return wholeImageChoice(input);
  const forced = option === 'delta';
  const whole = () => wholeImageChoice({ ...input, option: 'auto' });
  if (input.protocol !== 'v2' || !input.deviceDelta) {
    if (forced) throw new OtaError('DELTA_UNSUPPORTED', `the device (${input.protocol} protocol) does not accept delta patches (caps bit 7); use encoding auto, raw or deflate`);
    return whole();
  }
  const store = input.store;
  const running = input.runningSha256;
  if (!store || !running || !store.find(running)) {
    if (!forced) return whole();
    const why = !store ? 'no base images directory is configured' : !running ? 'the device did not report the image it runs' : `the base images directory ${store.dir} holds no image with the running SHA-256 ${running}`;
    throw new OtaError('BASE_UNKNOWN', `a delta update needs the image the device runs as its base, and ${why}; add that image to the base images, or use encoding auto`, { runningSha256: running });
  }
  let made;
  const release = holdClock(input.clock);
  try {
    made = await store.deltaInWorker(running, input.image);
  } catch (err) {
    if (forced) throw err;
    return whole(); // auto: a patch that cannot be made is no reason to fail the update
  } finally {
    release();
  }
  if (!made) {
    if (forced) throw new OtaError('BASE_UNKNOWN', `the base image ${running} left the base images directory before its patch was made`, { runningSha256: running });
    return whole();
  }
  const patchBytes = made.transfer.length;
  if (!forced) {
    const fallback = await whole();
    const wholeBytes = fallback.payload ? fallback.payload.transfer.length : input.image.length;
    if (chooseEncoding({ deflatedSize: wholeBytes, patchSize: patchBytes }) !== 'delta') return { ...fallback, patchBytes };
  }
  const payload = prepareDeltaPayload(input.image, made.transfer, Buffer.from(made.baseSha256, 'hex'), Caps.DELTA);
  return { encoding: 'delta', payload, base: made.baseSha256, patchBytes };
}

/**
 * The simulator's virtual clock jumps from timer to timer while nothing else runs; a worker thread is
 * real work it cannot see, so it is held for it (lib/sim/virtual-clock.ts hold()). A real clock has no
 * hold: the generation takes its real time there.
 */
function holdClock(clock: Clock | undefined): () => void {
  const hold = (clock as { hold?: () => () => void } | undefined)?.hold;
  return typeof hold === 'function' ? hold.call(clock) : () => undefined;
}
