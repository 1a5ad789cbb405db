/**
 * The benchmark's images: every file of the shared vectors that is a valid application image, plus a
 * synthetic 1.4 MB ESP32-C3 one (lib/image's builder, realistic compressibility): the size class of the
 * issue's 20x target.
 */
import { createHash } from 'crypto';
import { existsSync, readdirSync, readFileSync } from 'fs';
import { join, resolve } from 'path';
import { appHash, buildAppImage, checksumOffsetAfter, encodeAppDescription, imageFormat, parseImage, validateAppImage } from '../image';
import type { ImageSegment } from '../image';
import { Prng } from '../image/prng';
import type { ChipName } from '../sim/types';

export interface BenchImage {
  name: string;
  chip: ChipName;
  data: Buffer;
}

export const SYNTHETIC_SIZE = 1400 * 1024;
export const SYNTHETIC_NAME = 'synthetic-esp32c3-1.4MB';

/** ../shared/vectors next to the repository (dist/lib/bench → repo root is three levels up). */
export function defaultVectorsDir(): string {
  return process.env.ESP32_BLE_OTA_VECTORS ?? resolve(__dirname, '..', '..', '..', '..', 'shared', 'vectors');
}

export function loadBenchImages(options: { vectorsDir?: string; synthetic?: boolean; only?: string[] } = {}): { images: BenchImage[]; notes: string[] } {
  const dir = options.vectorsDir ?? defaultVectorsDir();
  const images: BenchImage[] = [];
  const notes: string[] = [];
  // Images that were not asked for are neither read nor built (the RSS child wants exactly one).
  const only = options.only;
  const wanted = (name: string) => !only || only.includes(name);
  if (existsSync(dir)) {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.bin') && wanted(f)).sort()) {
      const data = readFileSync(join(dir, file));
      const parsed = parseImage(data);
      if (parsed.valid && parsed.chip && parsed.appDesc) images.push({ name: file, chip: parsed.chip, data });
      else notes.push(`${file}: not a valid app image (${parsed.problems[0]?.code ?? 'invalid'}), skipped`);
    }
  } else {
    notes.push(`vectors directory ${dir} not found: only the synthetic image is measured`);
  }
  if (options.synthetic !== false && wanted(SYNTHETIC_NAME)) {
    images.push({ name: SYNTHETIC_NAME, chip: 'esp32c3', data: buildAppImage({ chip: 'esp32c3', version: '2.0.0', projectName: 'bench', size: SYNTHETIC_SIZE, seed: 1 }) });
  }
  return { images, notes };
}

/** Two versions of one app, the second differing from the first like a small code change. */
export interface SyntheticPair {
  name: string;
  chip: ChipName;
  /** Version A: what the device runs. */
  base: Buffer;
  /** Version B. */
  image: Buffer;
}

export const SYNTHETIC_PAIR_NAME = 'synthetic-esp32c3-1.4MB small change';

/**
 * Version A is the synthetic bench image; version B is A after a small code change as a rebuild shows it:
 * a new version string and build time in the app descriptor, a few edited constants, code inserted and
 * removed in the flash code segment (later code moves, and the pointers to it change accordingly), a log
 * message reworded in the rodata. Both are valid images (validateAppImage).
 */
export function buildSyntheticPair(options: { size?: number; seed?: number } = {}): SyntheticPair {
  const size = options.size ?? SYNTHETIC_SIZE;
  const base = buildAppImage({ chip: 'esp32c3', version: '2.0.0', projectName: 'bench', size, seed: options.seed ?? 1 });
  const parsed = validateAppImage(base);
  const rng = new Prng((options.seed ?? 1) + 0x5eed);
  const datas = parsed.segments.map((s) => Buffer.from(base.subarray(s.dataOffset, s.dataOffset + s.length)));
  const desc = parsed.appDesc!;
  encodeAppDescription({ ...desc, version: '2.0.1', time: '11:42:07', appElfSha256: appHash(base) }).copy(datas[0]);

  const word = (data: Buffer) => 4 * (1 + rng.below(data.length / 4 - 2));
  // Changed constants in every segment (initialised data, immediates, thresholds).
  for (const data of datas) for (let k = 0; k < 3; k++) data.writeUInt32LE(rng.next(), word(data));
  // A log message reworded in place (rodata, after the descriptor).
  datas[0].write('retry %d of %d failed', imageFormat.APP_DESC_SIZE + word(datas[0].subarray(imageFormat.APP_DESC_SIZE)), 'latin1');

  // Code inserted and removed in the largest flash-mapped segment: everything behind each edit moves.
  const code = parsed.segments.reduce((a, b) => (b.flashMapped && b.length > a.length ? b : a));
  const edits = [
    { at: word(datas[code.index]), insert: 96, remove: 0 },
    { at: word(datas[code.index]), insert: 0, remove: 40 },
    { at: word(datas[code.index]), insert: 212, remove: 0 },
  ].sort((a, b) => b.at - a.at);
  for (const e of edits) {
    const data = datas[code.index];
    const inserted = Buffer.from(data.subarray(Math.max(0, e.at - e.insert), e.at)); // code like its neighbours
    datas[code.index] = Buffer.concat([data.subarray(0, e.at), inserted, data.subarray(e.at + e.remove)]);
  }
  // Pointers (aligned words) into the moved code follow it, as the linker would relocate them.
  const shiftAt = (addr: number) => edits.reduce((d, e) => (addr >= code.loadAddr + e.at ? d + e.insert - e.remove : d), 0);
  const end = code.loadAddr + code.length;
  for (const data of datas) {
    for (let i = 0; i + 4 <= data.length; i += 4) {
      const v = data.readUInt32LE(i);
      if (v >= code.loadAddr && v < end) data.writeUInt32LE((v + shiftAt(v)) >>> 0, i);
    }
  }
  const image = assembleLike(base, parsed.segments, datas);
  validateAppImage(image);
  return { name: SYNTHETIC_PAIR_NAME, chip: 'esp32c3', base, image };
}

/** An image with `base`'s header and segments of new contents (flash-mapped addresses kept congruent to their offsets). */
function assembleLike(base: Buffer, segments: readonly ImageSegment[], datas: Buffer[]): Buffer {
  const { IMAGE_HEADER_SIZE, SEGMENT_HEADER_SIZE, CHECKSUM_SEED, APP_FLASH_ALIGN } = imageFormat;
  const parts: Buffer[] = [Buffer.from(base.subarray(0, IMAGE_HEADER_SIZE))];
  let offset = IMAGE_HEADER_SIZE;
  let checksum = CHECKSUM_SEED;
  segments.forEach((s, i) => {
    const dataOffset = offset + SEGMENT_HEADER_SIZE;
    const addr = s.flashMapped ? s.loadAddr - (s.dataOffset % APP_FLASH_ALIGN) + (dataOffset % APP_FLASH_ALIGN) : s.loadAddr;
    const header = Buffer.alloc(SEGMENT_HEADER_SIZE);
    header.writeUInt32LE(addr >>> 0, 0);
    header.writeUInt32LE(datas[i].length, 4);
    for (let k = 0; k < datas[i].length; k++) checksum ^= datas[i][k];
    parts.push(header, datas[i]);
    offset = dataOffset + datas[i].length;
  });
  const tail = Buffer.alloc(checksumOffsetAfter(offset) + 1 - offset);
  tail[tail.length - 1] = checksum;
  parts.push(tail);
  const image = Buffer.concat(parts);
  return Buffer.concat([image, createHash('sha256').update(image).digest()]);
}
