/**
 * Streaming zlib (RFC 1950/1951) decoder for the device model, playing the part of the ROM miniz tinfl
 * decoder on the ESP32: input arrives in arbitrary pieces, output comes out as soon as it is decoded.
 *
 * Why not Node's zlib: its streaming API is asynchronous (thread pool), so decoded bytes would appear at
 * a wall-clock moment unrelated to the virtual clock and transfers would stop being deterministic. Its
 * synchronous API only takes whole buffers. This decoder is synchronous and resumable: every operation
 * (a header, a literal/length + distance pair, a table description) either completes or is rolled back
 * to its start until more input arrives.
 */

export class InflateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InflateError';
  }
}

/** Thrown internally when an operation needs more input than has arrived; never escapes. */
const NEED_INPUT = Symbol('need input');

const WINDOW_SIZE = 32768;
const WINDOW_MASK = WINDOW_SIZE - 1;
const MAX_BITS = 15;

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/** Order in which code length code lengths are sent (RFC 1951 3.2.7). */
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Canonical Huffman code as counts per length and symbols in code order. */
interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
}

function buildHuffman(lengths: ArrayLike<number>, n: number): Huffman {
  const count = new Uint16Array(MAX_BITS + 1);
  const symbol = new Uint16Array(n);
  for (let s = 0; s < n; s++) count[lengths[s]]++;
  let left = 1;
  for (let len = 1; len <= MAX_BITS; len++) {
    left = (left << 1) - count[len];
    if (left < 0) throw new InflateError('over-subscribed Huffman code in deflate stream');
  }
  const offs = new Uint16Array(MAX_BITS + 1);
  for (let len = 1; len < MAX_BITS; len++) offs[len + 1] = offs[len] + count[len];
  for (let s = 0; s < n; s++) if (lengths[s] !== 0) symbol[offs[lengths[s]]++] = s;
  return { count, symbol };
}

function fixedTables(): { lit: Huffman; dist: Huffman } {
  const l = new Uint8Array(288);
  l.fill(8, 0, 144);
  l.fill(9, 144, 256);
  l.fill(7, 256, 280);
  l.fill(8, 280, 288);
  return { lit: buildHuffman(l, 288), dist: buildHuffman(new Uint8Array(30).fill(5), 30) };
}
const FIXED = fixedTables();

type Mode = 'zlib-header' | 'block-header' | 'stored' | 'codes' | 'trailer' | 'done';

export class StreamInflater {
  private input: Buffer = Buffer.alloc(0);
  /** Holds the undecoded tail of the previous input (callers may reuse their buffers after push). */
  private carry: Buffer = Buffer.alloc(0);
  private carryLen = 0;
  private pos = 0;
  private bitBuf = 0;
  private bitCnt = 0;
  private mode: Mode = 'zlib-header';
  private lastBlock = false;
  private storedLeft = 0;
  private lit: Huffman = FIXED.lit;
  private dist: Huffman = FIXED.dist;
  private readonly window = new Uint8Array(WINDOW_SIZE);
  private windowPos = 0;
  private totalOut = 0;
  private adlerA = 1;
  private adlerB = 0;
  private out: Buffer = Buffer.alloc(0);
  private outLen = 0;

  /** True once the stream's end (with a correct Adler-32) has been decoded. */
  get finished(): boolean {
    return this.mode === 'done';
  }

  /** Decoded bytes so far. */
  get totalOutput(): number {
    return this.totalOut;
  }

  /**
   * Feeds input; returns the bytes it decoded. Throws InflateError for a corrupt stream. The result is
   * a view of the decoder's output buffer, valid until the next push (as tinfl's output buffer is):
   * copy it to keep it. The decoder copies what it needs of `chunk`, so the caller may reuse it.
   */
  push(chunk: Buffer): Buffer {
    if (this.mode === 'done') {
      if (chunk.length > 0) throw new InflateError('data after the end of the deflate stream');
      return Buffer.alloc(0);
    }
    this.input = this.carryLen > 0 ? this.appendToCarry(chunk) : chunk;
    this.pos = 0;
    const room = Math.max(1024, chunk.length * 4);
    if (this.out.length < room) this.out = Buffer.allocUnsafe(room);
    this.outLen = 0;
    for (;;) {
      const pos = this.pos;
      const bitBuf = this.bitBuf;
      const bitCnt = this.bitCnt;
      try {
        if (!this.step()) break;
      } catch (err) {
        if (err !== NEED_INPUT) throw err;
        this.pos = pos;
        this.bitBuf = bitBuf;
        this.bitCnt = bitCnt;
        break;
      }
    }
    if (this.finished && this.pos < this.input.length) {
      throw new InflateError('data after the end of the deflate stream');
    }
    this.keepUndecoded();
    return this.out.subarray(0, this.outLen);
  }

  /** The carried tail followed by `chunk`, in the carry buffer (grown when too small). */
  private appendToCarry(chunk: Buffer): Buffer {
    const need = this.carryLen + chunk.length;
    if (this.carry.length < need) {
      const bigger = Buffer.allocUnsafe(Math.max(need, 2 * this.carry.length));
      this.carry.copy(bigger, 0, 0, this.carryLen);
      this.carry = bigger;
    }
    chunk.copy(this.carry, this.carryLen);
    this.carryLen = 0;
    return this.carry.subarray(0, need);
  }

  /** Moves the input bytes not decoded yet to the start of the carry buffer. */
  private keepUndecoded(): void {
    const left = this.input.length - this.pos;
    if (left > 0) {
      if (this.input.buffer === this.carry.buffer && this.input.byteOffset === this.carry.byteOffset) {
        this.carry.copyWithin(0, this.pos, this.input.length);
      } else {
        if (this.carry.length < left) this.carry = Buffer.allocUnsafe(Math.max(left, 2 * this.carry.length));
        this.input.copy(this.carry, 0, this.pos);
      }
    }
    this.carryLen = left;
    this.input = this.carry.subarray(0, left);
    this.pos = 0;
  }

  /** One complete operation; false when the stream has ended. */
  private step(): boolean {
    switch (this.mode) {
      case 'zlib-header':
        this.readZlibHeader();
        return true;
      case 'block-header':
        this.readBlockHeader();
        return true;
      case 'stored':
        this.copyStored();
        return true;
      case 'codes':
        this.decodeSymbol();
        return true;
      case 'trailer':
        this.readTrailer();
        return false;
      case 'done':
        return false;
    }
  }

  private bits(need: number): number {
    while (this.bitCnt < need) {
      if (this.pos >= this.input.length) throw NEED_INPUT;
      this.bitBuf |= this.input[this.pos++] << this.bitCnt;
      this.bitCnt += 8;
    }
    const value = this.bitBuf & ((1 << need) - 1);
    this.bitBuf >>>= need;
    this.bitCnt -= need;
    return value;
  }

  private byte(): number {
    if (this.pos >= this.input.length) throw NEED_INPUT;
    return this.input[this.pos++];
  }

  private readZlibHeader(): void {
    const cmf = this.byte();
    const flg = this.byte();
    if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7) throw new InflateError('not a zlib stream (compression method is not deflate)');
    if (((cmf << 8) | flg) % 31 !== 0) throw new InflateError('zlib header check bits are wrong');
    if (flg & 0x20) throw new InflateError('zlib stream needs a preset dictionary');
    this.mode = 'block-header';
  }

  private readBlockHeader(): void {
    this.lastBlock = this.bits(1) === 1;
    const type = this.bits(2);
    if (type === 0) {
      this.bitBuf = 0;
      this.bitCnt = 0; // stored blocks start on a byte boundary
      if (this.pos + 4 > this.input.length) throw NEED_INPUT;
      const len = this.input.readUInt16LE(this.pos);
      const nlen = this.input.readUInt16LE(this.pos + 2);
      if ((len ^ 0xffff) !== nlen) throw new InflateError('stored block length check failed');
      this.pos += 4;
      this.storedLeft = len;
      this.mode = 'stored';
    } else if (type === 1) {
      this.lit = FIXED.lit;
      this.dist = FIXED.dist;
      this.mode = 'codes';
    } else if (type === 2) {
      this.readDynamicTables();
      this.mode = 'codes';
    } else {
      throw new InflateError('invalid deflate block type 3');
    }
  }

  private readDynamicTables(): void {
    const nlen = this.bits(5) + 257;
    const ndist = this.bits(5) + 1;
    const ncode = this.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw new InflateError('bad counts in a dynamic deflate block');
    const clens = new Uint8Array(19);
    for (let i = 0; i < ncode; i++) clens[CLEN_ORDER[i]] = this.bits(3);
    const clen = buildHuffman(clens, 19);
    const lengths = new Uint8Array(nlen + ndist);
    for (let i = 0; i < nlen + ndist; ) {
      const sym = this.decode(clen);
      if (sym < 16) {
        lengths[i++] = sym;
        continue;
      }
      let value = 0;
      let repeat: number;
      if (sym === 16) {
        if (i === 0) throw new InflateError('repeat of a code length with no previous length');
        value = lengths[i - 1];
        repeat = 3 + this.bits(2);
      } else if (sym === 17) {
        repeat = 3 + this.bits(3);
      } else {
        repeat = 11 + this.bits(7);
      }
      if (i + repeat > nlen + ndist) throw new InflateError('too many code lengths in a dynamic deflate block');
      lengths.fill(value, i, i + repeat);
      i += repeat;
    }
    if (lengths[256] === 0) throw new InflateError('dynamic deflate block has no end-of-block code');
    this.lit = buildHuffman(lengths.subarray(0, nlen), nlen);
    this.dist = buildHuffman(lengths.subarray(nlen), ndist);
  }

  private decode(h: Huffman): number {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= MAX_BITS; len++) {
      code |= this.bits(1);
      const count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new InflateError('invalid Huffman code in deflate stream');
  }

  private copyStored(): void {
    if (this.storedLeft === 0) {
      this.endBlock();
      return;
    }
    const available = this.input.length - this.pos;
    if (available === 0) throw NEED_INPUT;
    const n = Math.min(available, this.storedLeft);
    for (let i = 0; i < n; i++) this.emit(this.input[this.pos + i]);
    this.pos += n;
    this.storedLeft -= n;
  }

  private decodeSymbol(): void {
    const sym = this.decode(this.lit);
    if (sym < 256) {
      this.emit(sym);
      return;
    }
    if (sym === 256) {
      this.endBlock();
      return;
    }
    const li = sym - 257;
    if (li >= 29) throw new InflateError('invalid length code in deflate stream');
    const length = LENGTH_BASE[li] + this.bits(LENGTH_EXTRA[li]);
    const di = this.decode(this.dist);
    if (di >= 30) throw new InflateError('invalid distance code in deflate stream');
    const distance = DIST_BASE[di] + this.bits(DIST_EXTRA[di]);
    if (distance > this.totalOut) throw new InflateError('deflate distance reaches before the start of the output');
    for (let i = 0; i < length; i++) this.emit(this.window[(this.windowPos - distance) & WINDOW_MASK]);
  }

  private endBlock(): void {
    this.mode = this.lastBlock ? 'trailer' : 'block-header';
  }

  private readTrailer(): void {
    this.bitBuf = 0;
    this.bitCnt = 0;
    if (this.pos + 4 > this.input.length) throw NEED_INPUT;
    const expected = this.input.readUInt32BE(this.pos);
    this.pos += 4;
    const actual = ((this.adlerB << 16) | this.adlerA) >>> 0;
    if (expected !== actual) throw new InflateError('Adler-32 of the decoded data does not match the zlib trailer');
    this.mode = 'done';
  }

  private emit(b: number): void {
    this.window[this.windowPos] = b;
    this.windowPos = (this.windowPos + 1) & WINDOW_MASK;
    this.totalOut++;
    this.adlerA += b;
    if (this.adlerA >= 65521) this.adlerA -= 65521;
    this.adlerB += this.adlerA;
    if (this.adlerB >= 65521) this.adlerB -= 65521;
    if (this.outLen === this.out.length) {
      const bigger = Buffer.allocUnsafe(this.out.length * 2);
      this.out.copy(bigger, 0, 0, this.outLen);
      this.out = bigger;
    }
    this.out[this.outLen++] = b;
  }
}
