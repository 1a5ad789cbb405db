/**
 * The delta patch record stream (PROTOCOL contract §F): per record `uvarint diff_len`, `diff[diff_len]`,
 * `uvarint extra_len`, `extra[extra_len]`, `svarint seek`. uvarint = unsigned LEB128 of at most 5 bytes and
 * a value below 2^32; svarint = zigzag of a 32-bit signed value in a uvarint.
 */
import { OtaError } from '../errors';

export interface PatchRecord {
  /** Added byte-wise (mod 256) to the base bytes at the current base position. */
  diff: Uint8Array;
  /** Copied to the output as they are. */
  extra: Uint8Array;
  /** Moves the base position after the diff part (may be negative). */
  seek: number;
}

export const MAX_VARINT_BYTES = 5;
const UINT32_LIMIT = 0x1_0000_0000;

export function zigzag(value: number): number {
  if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) {
    throw new OtaError('BAD_PARAMETER', `A patch seek must be a 32-bit signed whole number, got ${value}.`);
  }
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

export function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}

/** Appends bytes to a growing buffer (doubling), so a 1.4 MB patch costs a few copies, not thousands. */
export class ByteWriter {
  private buf: Buffer;
  private used = 0;

  constructor(initialCapacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.used;
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + extra));
    this.buf.copy(next, 0, 0, this.used);
    this.buf = next;
  }

  uvarint(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value >= UINT32_LIMIT) {
      throw new OtaError('BAD_PARAMETER', `A patch length must be a whole number below 2^32, got ${value}.`);
    }
    this.reserve(MAX_VARINT_BYTES);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.used++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.used++] = v;
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buf.set(data, this.used);
    this.used += data.length;
  }

  /** Reserves `count` bytes and returns a view to fill in place. */
  view(count: number): Buffer {
    this.reserve(count);
    const out = this.buf.subarray(this.used, this.used + count);
    this.used += count;
    return out;
  }

  /** A copy of the written bytes, exactly sized. */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.used));
  }
}

export function writeRecord(out: ByteWriter, record: PatchRecord): void {
  out.uvarint(record.diff.length);
  out.bytes(record.diff);
  out.uvarint(record.extra.length);
  out.bytes(record.extra);
  out.uvarint(zigzag(record.seek));
}

/** The record stream of `records`, in order. */
export function encodePatch(records: readonly PatchRecord[]): Buffer {
  const out = new ByteWriter();
  for (const r of records) writeRecord(out, r);
  return out.toBuffer();
}
