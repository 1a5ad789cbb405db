/**
 * Diff generator in the manner of bsdiff 4 (Colin Percival, "Naive differences of executable code", 2003):
 * a suffix array over the base finds, for each position of the new image, the longest exact match; a match
 * is taken once it is clearly better than simply continuing the previous alignment, and the aligned region
 * before it is extended forward and backward with approximate matches. Those aligned regions become diff
 * parts (new − base, mostly zero bytes in code that only moved, so zlib shrinks them to almost nothing),
 * the bytes between them extra parts. Output: the §F record stream.
 */
import { ByteWriter, writeRecord } from './records';
import { suffixArray } from './suffix-array';

/** How much longer an exact match must be than continuing the current alignment to start a new one. */
const NEW_ALIGNMENT_MARGIN = 8;

/** The §F record stream that turns `base` into `target`. */
export function createPatch(base: Uint8Array, target: Uint8Array): Buffer {
  const out = new ByteWriter(target.length + 1024);
  if (target.length === 0) return out.toBuffer();
  if (base.length === 0) {
    writeRecord(out, { diff: new Uint8Array(0), extra: target, seek: 0 });
    return out.toBuffer();
  }
  const finder = new MatchFinder(base);
  const oldSize = base.length;
  const newSize = target.length;

  let scan = 0;
  let len = 0;
  let lastScan = 0;
  let lastPos = 0;
  let lastOffset = 0;
  while (scan < newSize) {
    let oldScore = 0;
    let scsc = (scan += len);
    for (; scan < newSize; scan++) {
      len = finder.longestMatch(target, scan);
      // Bytes the current alignment (offset lastOffset) already gets right over the same stretch.
      for (; scsc < scan + len; scsc++) {
        if (scsc + lastOffset < oldSize && base[scsc + lastOffset] === target[scsc]) oldScore++;
      }
      if ((len === oldScore && len !== 0) || len > oldScore + NEW_ALIGNMENT_MARGIN) break;
      if (scan + lastOffset < oldSize && base[scan + lastOffset] === target[scan]) oldScore--;
    }
    if (len === oldScore && scan !== newSize) continue;
    const pos = finder.matchPos;

    // Extend the previous alignment forward while at least half its bytes match...
    let s = 0;
    let bestForward = 0;
    let lenF = 0;
    for (let i = 0; lastScan + i < scan && lastPos + i < oldSize; ) {
      if (base[lastPos + i] === target[lastScan + i]) s++;
      i++;
      if (s * 2 - i > bestForward * 2 - lenF) {
        bestForward = s;
        lenF = i;
      }
    }
    // ...and the new match backward likewise.
    let lenB = 0;
    if (scan < newSize) {
      s = 0;
      let bestBackward = 0;
      for (let i = 1; scan >= lastScan + i && pos >= i; i++) {
        if (base[pos - i] === target[scan - i]) s++;
        if (s * 2 - i > bestBackward * 2 - lenB) {
          bestBackward = s;
          lenB = i;
        }
      }
    }
    // Where the two extensions overlap, split at the point that keeps the most matching bytes.
    if (lastScan + lenF > scan - lenB) {
      const overlap = lastScan + lenF - (scan - lenB);
      s = 0;
      let bestSplit = 0;
      let lenS = 0;
      for (let i = 0; i < overlap; i++) {
        if (target[lastScan + lenF - overlap + i] === base[lastPos + lenF - overlap + i]) s++;
        if (target[scan - lenB + i] === base[pos - lenB + i]) s--;
        if (s > bestSplit) {
          bestSplit = s;
          lenS = i + 1;
        }
      }
      lenF += lenS - overlap;
      lenB -= lenS;
    }

    const extraStart = lastScan + lenF;
    const extraEnd = scan - lenB;
    out.uvarint(lenF);
    const diff = out.view(lenF);
    for (let i = 0; i < lenF; i++) diff[i] = (target[lastScan + i] - base[lastPos + i]) & 0xff;
    out.uvarint(extraEnd - extraStart);
    out.bytes(target.subarray(extraStart, extraEnd));
    // The last record's seek is 0 by convention (nothing reads the base after it).
    const last = scan >= newSize;
    out.uvarint(last ? 0 : zigzag32(pos - lenB - (lastPos + lenF)));

    lastScan = scan - lenB;
    lastPos = pos - lenB;
    lastOffset = pos - scan;
  }
  return out.toBuffer();
}

function zigzag32(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

/** Longest exact match of a suffix of the target among the base's suffixes (binary search on the suffix array). */
class MatchFinder {
  private readonly sa: Int32Array;
  /** Suffix array range [first, last] of the suffixes starting with each 2-byte prefix (last < first: none). */
  private readonly first = new Int32Array(65536);
  private readonly last = new Int32Array(65536).fill(-1);
  /** Base position of the last longestMatch answer. */
  matchPos = 0;

  constructor(private readonly base: Uint8Array) {
    this.sa = suffixArray(base);
    const { sa, first, last } = this;
    for (let i = 0; i < sa.length; i++) {
      const p = sa[i];
      if (p + 1 >= base.length) continue; // the 1-byte suffix has no 2-byte prefix
      const key = (base[p] << 8) | base[p + 1];
      if (last[key] < 0) first[key] = i;
      last[key] = i;
    }
  }

  longestMatch(target: Uint8Array, from: number): number {
    const { sa, base } = this;
    let lo = 0;
    let hi = sa.length - 1;
    // The longest match lies among the suffixes sharing the first two bytes, when there are any.
    if (from + 1 < target.length) {
      const key = (target[from] << 8) | target[from + 1];
      if (this.last[key] >= 0) {
        lo = this.first[key];
        hi = this.last[key];
      }
    }
    while (hi - lo >= 2) {
      const mid = lo + ((hi - lo) >> 1);
      if (compareSuffix(base, sa[mid], target, from) < 0) lo = mid;
      else hi = mid;
    }
    const x = matchLength(base, sa[lo], target, from);
    const y = matchLength(base, sa[hi], target, from);
    if (x > y) {
      this.matchPos = sa[lo];
      return x;
    }
    this.matchPos = sa[hi];
    return y;
  }
}

function matchLength(a: Uint8Array, aFrom: number, b: Uint8Array, bFrom: number): number {
  const n = Math.min(a.length - aFrom, b.length - bFrom);
  let i = 0;
  while (i < n && a[aFrom + i] === b[bFrom + i]) i++;
  return i;
}

/**
 * Lexicographic order of the two suffixes, a proper prefix first (the suffix array's order): < 0, 0 or > 0.
 * (bsdiff compares only the common length and so, inside a long run, steers to the shortest suffixes and
 * finds a match of a few bytes where the run offers one as long as the run.)
 */
function compareSuffix(a: Uint8Array, aFrom: number, b: Uint8Array, bFrom: number): number {
  const aLength = a.length - aFrom;
  const bLength = b.length - bFrom;
  const n = Math.min(aLength, bLength);
  for (let i = 0; i < n; i++) {
    const d = a[aFrom + i] - b[bFrom + i];
    if (d !== 0) return d;
  }
  return aLength - bLength;
}
