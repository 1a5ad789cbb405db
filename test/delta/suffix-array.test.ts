import { strict as assert } from 'assert';
import { suffixArray } from '../../lib/delta/suffix-array';
import { Prng } from '../../lib/image/prng';

/** Reference: sort every suffix with Buffer.compare (a shorter equal prefix sorts first). */
function naiveSuffixArray(data: Buffer): number[] {
  return Array.from(data.keys()).sort((a, b) => Buffer.compare(data.subarray(a), data.subarray(b)));
}

describe('delta: suffix array (SA-IS)', () => {
  it('handles the empty string and a single byte', () => {
    assert.deepEqual(Array.from(suffixArray(Buffer.alloc(0))), []);
    assert.deepEqual(Array.from(suffixArray(Buffer.from([7]))), [0]);
  });

  it('equals a naive sort on texts with few symbols, runs and periods (the recursive cases)', () => {
    const rng = new Prng(11);
    for (let t = 0; t < 400; t++) {
      const n = rng.below(120);
      const symbols = 1 + rng.below(t % 4 === 0 ? 256 : 4);
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = t % 5 === 0 ? (i % (1 + (t % 7))) * 60 : 255 - rng.below(symbols);
      assert.deepEqual(Array.from(suffixArray(data)), naiveSuffixArray(data), `text ${data.toString('hex')}`);
    }
  });

  it('sorts bytes 0x00 and 0xff correctly (the sentinel is below every byte)', () => {
    const data = Buffer.from([0xff, 0x00, 0xff, 0x00, 0x00, 0xff]);
    assert.deepEqual(Array.from(suffixArray(data)), naiveSuffixArray(data));
  });
});
