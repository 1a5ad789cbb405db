/**
 * Applying a delta patch (PROTOCOL contract §F) with every bounds check the device makes. The applier is a
 * byte-at-a-time state machine, so the result and the error do not depend on how the patch is cut into
 * chunks (the device sees it in whatever pieces the inflater hands out).
 */
import { OtaError } from '../errors';
import { MAX_VARINT_BYTES, unzigzag } from './records';

export type PatchProblem =
  | 'read-outside-base'
  | 'output-past-image-size'
  | 'overlong-varint'
  | 'trailing-bytes'
  | 'ends-early';

/** A malformed patch: an OtaError PATCH_INVALID whose `reason` (also in details) says which rule it broke. */
export type PatchError = OtaError & { readonly reason: PatchProblem };

export function patchError(reason: PatchProblem, message: string, details: Record<string, unknown>): PatchError {
  return Object.assign(new OtaError('PATCH_INVALID', message, { reason, ...details }), { reason });
}

export function isPatchError(err: unknown): err is PatchError {
  return err instanceof OtaError && err.code === 'PATCH_INVALID' && typeof (err as Partial<PatchError>).reason === 'string';
}

const enum Phase {
  DiffLength,
  Diff,
  ExtraLength,
  Extra,
  Seek,
  Done,
}

export class PatchApplier {
  private phase: Phase;
  private varintValue = 0;
  private varintBytes = 0;
  /** Bytes left in the current diff or extra part. */
  private remaining = 0;
  private basePos = 0;
  private produced = 0;
  private baseRead = 0;
  /** Patch bytes consumed so far (for error messages). */
  private consumed = 0;
  private failure: PatchError | null = null;

  constructor(
    private readonly base: Uint8Array,
    readonly imageSize: number,
  ) {
    if (!Number.isInteger(imageSize) || imageSize < 0) throw new OtaError('BAD_PARAMETER', `image_size must be a whole number of bytes, got ${imageSize}.`);
    this.phase = imageSize === 0 ? Phase.Done : Phase.DiffLength;
  }

  /** Output bytes produced so far. */
  get outputLength(): number {
    return this.produced;
  }

  /** Base bytes read so far (a device reads them from flash: what its read time is charged by). */
  get baseBytesRead(): number {
    return this.baseRead;
  }

  /** True once image_size bytes were produced and the last record is complete. */
  get complete(): boolean {
    return this.phase === Phase.Done;
  }

  /** Consumes the next patch bytes; returns the output bytes they produce (never more than chunk.length). */
  push(chunk: Uint8Array): Buffer {
    if (this.failure) throw this.failure;
    const out = Buffer.allocUnsafe(chunk.length);
    let written = 0;
    let i = 0;
    try {
      while (i < chunk.length) {
        switch (this.phase) {
          case Phase.Diff: {
            const n = Math.min(this.remaining, chunk.length - i);
            const base = this.base;
            let pos = this.basePos;
            for (let k = 0; k < n; k++) out[written++] = (base[pos++] + chunk[i + k]) & 0xff;
            this.basePos = pos;
            this.baseRead += n;
            this.advance(n);
            i += n;
            this.remaining -= n;
            if (this.remaining === 0) this.phase = Phase.ExtraLength;
            break;
          }
          case Phase.Extra: {
            const n = Math.min(this.remaining, chunk.length - i);
            out.set(chunk.subarray(i, i + n), written);
            written += n;
            this.advance(n);
            i += n;
            this.remaining -= n;
            if (this.remaining === 0) this.phase = Phase.Seek;
            break;
          }
          case Phase.Done:
            throw this.fail('trailing-bytes', `The patch goes on after the image is complete (${chunk.length - i} more byte(s) in this piece).`);
          default: {
            const value = this.varintByte(chunk[i]);
            this.consumed++;
            i++;
            if (value !== null) this.onVarint(value);
          }
        }
      }
    } catch (err) {
      if (isPatchError(err)) this.failure = err;
      throw err;
    }
    return out.subarray(0, written);
  }

  /** Call at the end of the patch: throws when it ended before image_size bytes and the last seek. */
  finish(): void {
    if (this.failure) throw this.failure;
    if (this.phase !== Phase.Done) {
      throw this.fail('ends-early', `The patch ends after ${this.produced} of ${this.imageSize} image bytes${this.produced === this.imageSize ? ' (the last record misses its seek)' : ''}.`);
    }
  }

  private advance(n: number): void {
    this.produced += n;
    this.consumed += n;
  }

  /** Feeds one byte to the varint being read; returns its value when complete. */
  private varintByte(byte: number): number | null {
    const index = this.varintBytes++;
    this.varintValue += (byte & 0x7f) * 2 ** (7 * index);
    if (byte & 0x80) {
      if (this.varintBytes >= MAX_VARINT_BYTES) throw this.fail('overlong-varint', `A varint at patch byte ${this.consumed - index} is longer than ${MAX_VARINT_BYTES} bytes.`);
      return null;
    }
    const value = this.varintValue;
    this.varintValue = 0;
    this.varintBytes = 0;
    if (value >= 0x1_0000_0000) throw this.fail('overlong-varint', `A varint at patch byte ${this.consumed - index} is ${value}, not below 2^32.`);
    return value;
  }

  private onVarint(value: number): void {
    switch (this.phase) {
      case Phase.DiffLength:
        this.checkOutput(value, 'diff');
        if (value > 0 && (this.basePos < 0 || this.basePos + value > this.base.length)) {
          throw this.fail('read-outside-base', `A diff part reads base bytes [${this.basePos}, ${this.basePos + value}), outside the base's ${this.base.length} bytes.`);
        }
        this.remaining = value;
        this.phase = value > 0 ? Phase.Diff : Phase.ExtraLength;
        return;
      case Phase.ExtraLength:
        this.checkOutput(value, 'extra');
        this.remaining = value;
        this.phase = value > 0 ? Phase.Extra : Phase.Seek;
        return;
      case Phase.Seek:
        this.basePos += unzigzag(value);
        this.phase = this.produced === this.imageSize ? Phase.Done : Phase.DiffLength;
        return;
      default:
        throw new Error(`unreachable patch phase ${this.phase}`);
    }
  }

  private checkOutput(length: number, part: string): void {
    if (this.produced + length > this.imageSize) {
      throw this.fail('output-past-image-size', `A ${part} part of ${length} byte(s) after ${this.produced} output bytes goes past image_size ${this.imageSize}.`);
    }
  }

  private fail(reason: PatchProblem, message: string): PatchError {
    this.failure = patchError(reason, `Invalid delta patch: ${message}`, { patchOffset: this.consumed, outputOffset: this.produced });
    return this.failure;
  }
}

/** The image `patch` produces from `base`; throws PatchError on any rule of §F broken. */
export function applyPatch(base: Uint8Array, patch: Uint8Array, imageSize: number): Buffer {
  const applier = new PatchApplier(base, imageSize);
  const out = applier.push(patch);
  applier.finish();
  return out;
}
