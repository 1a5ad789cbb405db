/**
 * Mutation suite: thousands of mutated real and synthetic application images through the image checks
 * (parseImage, inspectImage, validateAppImage) and the flash pre-flight (planFlash), in process.
 * For every mutant: nothing crashes; an accepted image is one ESP-IDF's loader accepts too (the
 * independent oracle in esp-image-oracle.ts); a refusal carries a documented image error code and a
 * sentence. Structure-aware mutators re-seal checksum and hash so that the deeper checks are reached.
 * MUTATION_COUNT overrides the number of synthetic mutants (default 12,000) for longer runs.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { OtaError } from '../../lib/errors';
import { buildAppImage, IMAGE_ERROR_CODES, inspectImage, parseImage, validateAppImage } from '../../lib/image';
import { Prng } from '../../lib/image/prng';
import { planFlash } from '../../lib/ota/preflight';
import { SHARED_VECTORS_DIR } from '../helpers/paths';
import { espImageVerdict } from './esp-image-oracle';
import { reseal } from './helpers';

type Mutator = (image: Buffer, rng: Prng) => Buffer;

const HEADER_SIZE = 24;

/** Re-seals when the structure still allows it; otherwise the mutant stays as it is. */
function resealed(image: Buffer): Buffer {
  try {
    return reseal(image);
  } catch {
    return image;
  }
}

/** Offsets of the segment headers as the (possibly mutated) header describes them, within the file. */
function segmentHeaders(image: Buffer): number[] {
  const out: number[] = [];
  let offset = HEADER_SIZE;
  for (let s = 0; s < image[1] && offset + 8 <= image.length; s++) {
    out.push(offset);
    offset += 8 + image.readUInt32LE(offset + 4);
  }
  return out;
}

function interesting(rng: Prng): number {
  return rng.pick([0, 1, 2, 3, 4, 0xff, 0xffff, 0x10000, 0xfffffffc, 0xffffffff, 0x7fffffff, 0x1000000, rng.next()]);
}

const MUTATORS: Record<string, Mutator> = {
  flipBytes(image, rng) {
    const out = Buffer.from(image);
    for (let n = 1 + rng.below(4); n > 0; n--) out[rng.below(out.length)] ^= 1 << rng.below(8);
    return out;
  },
  flipBytesResealed(image, rng) {
    return resealed(MUTATORS.flipBytes(image, rng));
  },
  headerField(image, rng) {
    const out = Buffer.from(image);
    out[rng.below(HEADER_SIZE)] = rng.next() & 0xff;
    return resealed(out);
  },
  segmentCount(image, rng) {
    const out = Buffer.from(image);
    out[1] = rng.pick([0, 1, image[1] - 1, image[1] + 1, 16, 17, 255]) & 0xff;
    return resealed(out);
  },
  segmentLength(image, rng) {
    const out = Buffer.from(image);
    const headers = segmentHeaders(out);
    const at = headers[rng.below(headers.length)] + 4;
    const old = out.readUInt32LE(at);
    const next = rng.chance(0.5) ? old + rng.pick([-8, -4, -2, -1, 1, 2, 4, 8, 16]) : interesting(rng);
    out.writeUInt32LE(next >>> 0, at);
    return resealed(out);
  },
  segmentAddress(image, rng) {
    const out = Buffer.from(image);
    const headers = segmentHeaders(out);
    const at = headers[rng.below(headers.length)];
    const old = out.readUInt32LE(at);
    const next = rng.chance(0.5) ? old + rng.pick([-0x10000, -4, 4, 0x100, 0x10000]) : interesting(rng);
    out.writeUInt32LE(next >>> 0, at);
    return resealed(out);
  },
  appDescription(image, rng) {
    const out = Buffer.from(image);
    const descAt = HEADER_SIZE + 8;
    const field = rng.pick([0, 4, 16, 48, 80, 112, 128, 144]);
    if (rng.chance(0.5)) out.fill(rng.next() & 0xff, descAt + field, descAt + field + 32);
    else out.writeUInt32LE(rng.next(), descAt + field);
    return resealed(out);
  },
  truncate(image, rng) {
    return image.subarray(0, rng.below(image.length));
  },
  append(image, rng) {
    return Buffer.concat([image, rng.fill(Buffer.alloc(1 + rng.below(64)))]);
  },
  insertOrDelete(image, rng) {
    const at = HEADER_SIZE + rng.below(image.length - HEADER_SIZE);
    const n = 1 + rng.below(16);
    const out = rng.chance(0.5)
      ? Buffer.concat([image.subarray(0, at), rng.fill(Buffer.alloc(n)), image.subarray(at)])
      : Buffer.concat([image.subarray(0, at), image.subarray(Math.min(image.length, at + n))]);
    return rng.chance(0.7) ? resealed(out) : out;
  },
};

const MUTATOR_NAMES = Object.keys(MUTATORS);

interface Tally {
  mutants: number;
  accepted: number;
  refusedByCode: Map<string, number>;
  /** Refusals of images ESP-IDF's loader would take (the library is stricter: app description, chip list), by code. */
  stricterByCode: Map<string, number>;
  lastRefusal?: string;
}

function isSentence(message: string): boolean {
  return /^[A-Z]/.test(message) && message.endsWith('.') && message.length > 30;
}

/** All checks on one mutant; throws with the mutator and seed so a failure can be replayed. */
function checkMutant(mutant: Buffer, label: string, tally: Tally): void {
  tally.mutants++;
  parseImage(mutant);
  inspectImage(mutant);
  let accepted = true;
  try {
    validateAppImage(mutant);
  } catch (err) {
    accepted = false;
    if (!(err instanceof OtaError)) throw new Error(`${label}: crashed with ${String(err)}`, { cause: err });
    if (!(IMAGE_ERROR_CODES as readonly string[]).includes(err.code)) throw new Error(`${label}: undocumented code ${err.code}`, { cause: err });
    if (!isSentence(err.message)) throw new Error(`${label}: ${err.code} message is not a sentence: ${err.message}`, { cause: err });
    tally.refusedByCode.set(err.code, (tally.refusedByCode.get(err.code) ?? 0) + 1);
    tally.lastRefusal = err.code;
  }
  // The flash pre-flight must come to the same verdict before any radio work.
  let planned = true;
  try {
    planFlash({ device: 'esp32-line-01', image: mutant });
  } catch (err) {
    planned = false;
    if (!(err instanceof OtaError)) throw new Error(`${label}: planFlash crashed with ${String(err)}`, { cause: err });
  }
  assert.strictEqual(planned, accepted, `${label}: planFlash and validateAppImage disagree`);
  const verdict = espImageVerdict(mutant);
  if (accepted) {
    tally.accepted++;
    if (!verdict.valid) throw new Error(`${label}: accepted, but ESP-IDF's loader refuses it (${verdict.reason})`);
  } else if (verdict.valid) {
    const code = (tally.lastRefusal ?? 'unknown');
    tally.stricterByCode.set(code, (tally.stricterByCode.get(code) ?? 0) + 1);
  }
}

function run(bases: Buffer[], count: number, seed: number): Tally {
  const tally: Tally = { mutants: 0, accepted: 0, refusedByCode: new Map(), stricterByCode: new Map() };
  const rng = new Prng(seed);
  for (let i = 0; i < count; i++) {
    const baseIndex = i % bases.length;
    const name = MUTATOR_NAMES[rng.below(MUTATOR_NAMES.length)];
    const mutantSeed = rng.next();
    const mutant = MUTATORS[name](bases[baseIndex], new Prng(mutantSeed));
    checkMutant(mutant, `mutant ${i} (base ${baseIndex}, ${name}, seed ${mutantSeed})`, tally);
  }
  return tally;
}

function byCount(counts: Map<string, number>): string {
  return [...counts].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ') || 'none';
}

function summary(tally: Tally): string {
  return `${tally.mutants} mutants: ${tally.accepted} accepted (all valid for ESP-IDF), refused: ${byCount(tally.refusedByCode)}; refused by a check stricter than the loader's: ${byCount(tally.stricterByCode)}`;
}

describe('image: mutation suite (parse, inspect, validate, flash pre-flight)', function () {
  this.timeout(120000);

  it('the oracle accepts every unmutated base image and refuses obvious garbage', () => {
    for (const chip of ['esp32', 'esp32c3', 'esp32s3'] as const) {
      const image = buildAppImage({ chip, version: '1.2.3', size: 8192 });
      assert.deepStrictEqual(espImageVerdict(image), { valid: true }, chip);
      const broken = Buffer.from(image);
      broken[broken.length - 1] ^= 1;
      assert.strictEqual(espImageVerdict(broken).reason, 'appended hash');
    }
    assert.strictEqual(espImageVerdict(Buffer.alloc(100)).reason, 'magic');
  });

  it('synthetic images: no crash, nothing invalid accepted, every refusal coded and explained', () => {
    const bases = (['esp32', 'esp32c3', 'esp32s3', 'esp32s2'] as const).flatMap((chip, i) => [
      buildAppImage({ chip, version: `1.${i}.0`, size: 4096 + 1024 * i }),
      buildAppImage({ chip, version: 'v2.0.0-rc1', size: 12288, seed: 77 + i }),
    ]);
    const count = Number(process.env.MUTATION_COUNT ?? 12000);
    const tally = run(bases, count, 0x5eed);
    console.log(`      ${summary(tally)}`);
    assert.strictEqual(tally.mutants, count);
    assert.ok(tally.accepted > 0, 'some re-sealed mutants stay valid and must be accepted');
    assert.ok(tally.refusedByCode.size >= 5, `refusals should reach several checks: ${summary(tally)}`);
  });

  const realNames = ['esp32-hello_world.bin', 'esp32c3-hello_world.bin', 'esp32s3-hello_world.bin', 'esp32s2-blink.bin', 'esp32-hello_world-signed_v1.bin'];
  const haveVectors = fs.existsSync(path.join(SHARED_VECTORS_DIR, 'expected.json'));
  (haveVectors ? it : it.skip)('real images (shared vectors): the same invariants', () => {
    const bases = realNames.map((n) => fs.readFileSync(path.join(SHARED_VECTORS_DIR, n)));
    const tally = run(bases, 1500, 0xbeef);
    console.log(`      ${summary(tally)}`);
    assert.ok(tally.accepted > 0 && tally.refusedByCode.size >= 4, summary(tally));
  });
  if (!haveVectors) console.log('      (real-image mutations skipped: ../shared/vectors is not next to this clone)');
});
