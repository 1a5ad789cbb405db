/**
 * Suffix array of a byte string by induced sorting (SA-IS, Nong, Zhang & Chan 2009): linear time, typed
 * arrays only (about 9 bytes per input byte at the top level), no native code.
 */

/** Positions of every suffix of `data`, in lexicographic order (a shorter prefix sorts first). */
export function suffixArray(data: Uint8Array): Int32Array {
  const n = data.length;
  if (n === 0) return new Int32Array(0);
  // Shift every byte up by one and end with a unique smallest sentinel 0, as the algorithm needs.
  const text = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) text[i] = data[i] + 1;
  const sa = new Int32Array(n + 1);
  sais(text, sa, n + 1, 256);
  // sa[0] is the sentinel's suffix: drop it.
  return sa.subarray(1);
}

/** One level of SA-IS; `text` ends with a unique smallest symbol 0, symbols are 0..maxSymbol. */
function sais(text: Int32Array, sa: Int32Array, n: number, maxSymbol: number): void {
  // isS[i] = 1: suffix i is S-type (smaller than suffix i + 1).
  const isS = new Uint8Array(n);
  isS[n - 1] = 1;
  for (let i = n - 2; i >= 0; i--) {
    isS[i] = text[i] < text[i + 1] || (text[i] === text[i + 1] && isS[i + 1] === 1) ? 1 : 0;
  }
  const isLms = (i: number) => i > 0 && isS[i] === 1 && isS[i - 1] === 0;
  const bucket = new Int32Array(maxSymbol + 1);

  // Stage 1: sort the LMS substrings by inducing from their unsorted positions.
  bucketEnds(text, n, bucket);
  sa.fill(-1, 0, n);
  for (let i = 1; i < n; i++) if (isLms(i)) sa[--bucket[text[i]]] = i;
  induce(text, sa, n, isS, bucket);

  // Compact the sorted LMS positions to the front, then name the distinct LMS substrings.
  let lmsCount = 0;
  for (let i = 0; i < n; i++) if (isLms(sa[i])) sa[lmsCount++] = sa[i];
  sa.fill(-1, lmsCount, n);
  let names = 0;
  let previous = -1;
  for (let i = 0; i < lmsCount; i++) {
    const pos = sa[i];
    let differs = false;
    for (let d = 0; d < n; d++) {
      if (previous === -1 || text[pos + d] !== text[previous + d] || isS[pos + d] !== isS[previous + d]) {
        differs = true;
        break;
      }
      if (d > 0 && (isLms(pos + d) || isLms(previous + d))) break;
    }
    if (differs) {
      names++;
      previous = pos;
    }
    sa[lmsCount + (pos >> 1)] = names - 1;
  }
  for (let i = n - 1, j = n - 1; i >= lmsCount; i--) if (sa[i] >= 0) sa[j--] = sa[i];

  // Stage 2: sort the reduced string (recursively when names repeat).
  const reduced = sa.subarray(n - lmsCount, n);
  const reducedSa = sa.subarray(0, lmsCount);
  if (names < lmsCount) sais(reduced, reducedSa, lmsCount, names - 1);
  else for (let i = 0; i < lmsCount; i++) reducedSa[reduced[i]] = i;

  // Stage 3: place the LMS suffixes in their sorted order, then induce all others.
  for (let i = 1, j = 0; i < n; i++) if (isLms(i)) reduced[j++] = i;
  for (let i = 0; i < lmsCount; i++) reducedSa[i] = reduced[reducedSa[i]];
  sa.fill(-1, lmsCount, n);
  bucketEnds(text, n, bucket);
  for (let i = lmsCount - 1; i >= 0; i--) {
    const j = sa[i];
    sa[i] = -1;
    sa[--bucket[text[j]]] = j;
  }
  induce(text, sa, n, isS, bucket);
}

function bucketEnds(text: Int32Array, n: number, bucket: Int32Array): void {
  bucket.fill(0);
  for (let i = 0; i < n; i++) bucket[text[i]]++;
  let sum = 0;
  for (let c = 0; c < bucket.length; c++) {
    sum += bucket[c];
    bucket[c] = sum;
  }
}

function bucketStarts(text: Int32Array, n: number, bucket: Int32Array): void {
  bucket.fill(0);
  for (let i = 0; i < n; i++) bucket[text[i]]++;
  let sum = 0;
  for (let c = 0; c < bucket.length; c++) {
    const count = bucket[c];
    bucket[c] = sum;
    sum += count;
  }
}

/** Induce L-type suffixes left to right from bucket starts, then S-type right to left from bucket ends. */
function induce(text: Int32Array, sa: Int32Array, n: number, isS: Uint8Array, bucket: Int32Array): void {
  bucketStarts(text, n, bucket);
  for (let i = 0; i < n; i++) {
    const j = sa[i] - 1;
    if (j >= 0 && isS[j] === 0) sa[bucket[text[j]]++] = j;
  }
  bucketEnds(text, n, bucket);
  for (let i = n - 1; i >= 0; i--) {
    const j = sa[i] - 1;
    if (j >= 0 && isS[j] === 1) sa[--bucket[text[j]]] = j;
  }
}
