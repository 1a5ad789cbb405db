/**
 * buildAppImage: a valid synthetic ESP application image for the simulator, tests and the benchmark.
 * Layout as esptool writes it: header, DROM segment starting with esp_app_desc_t, DRAM, IRAM and IROM
 * segments (flash-mapped ones at addresses congruent to their file offset modulo 64 KiB), zero padding,
 * checksum, appended SHA-256. Deterministic from the options; deflate shrinks it to about half.
 */
import { OtaError } from '../errors';
import type { ChipName } from './chips';
import { encodeAppDescription } from './app-desc';
import { CHIP_IDS, CHIP_MEMORY_MAPS, isChipName } from './chips';
import { checksumOffsetAfter } from './checksum';
import { sha256 } from './digest';
import { APP_DESC_SIZE, APP_FLASH_ALIGN, CHECKSUM_SEED, HEADER, IMAGE_HEADER_SIZE, IMAGE_MAGIC, SEGMENT_HEADER_SIZE, SHA256_SIZE } from './format';
import { Prng, seedFromText } from './prng';
import { machineCode, mixture, pointerTable, randomBytes, stringTable, zeroBytes } from './synthetic-content';

export interface BuildAppImageOptions {
  chip: ChipName;
  version: string;
  projectName?: string;
  secureVersion?: number;
  idfVer?: string;
  /** Approximate total size in bytes (default 256 KiB; rounded down to 16). */
  size?: number;
  /** Content seed (default: derived from chip, version, project name and secure version). */
  seed?: number;
  minChipRevFull?: number;
  maxChipRevFull?: number;
}

export const MIN_SYNTHETIC_IMAGE_SIZE = 4096;
export const MAX_SYNTHETIC_IMAGE_SIZE = 16 * 1024 * 1024;
const DEFAULT_SIZE = 256 * 1024;
const SEGMENT_COUNT = 4;
/** Header (24) + segment headers + padding to the checksum + checksum + SHA-256, for an exact 16-byte multiple. */
const TAIL_BYTES = 3 + 1 + SHA256_SIZE;
/** Highest revision (major * 100 + minor) each chip's current ESP-IDF accepts by default. */
const DEFAULT_MAX_REV: Readonly<Record<ChipName, number>> = {
  esp32: 399, esp32s2: 199, esp32c3: 199, esp32s3: 99, esp32c2: 199, esp32c6: 99, esp32h2: 99, esp32p4: 199,
};

export function buildAppImage(options: BuildAppImageOptions): Buffer {
  const opts = checkOptions(options);
  const rng = new Prng(opts.seed);
  const map = CHIP_MEMORY_MAPS[opts.chip];
  const payload = opts.size - IMAGE_HEADER_SIZE - SEGMENT_COUNT * SEGMENT_HEADER_SIZE - TAIL_BYTES;
  const drom = roundDown4(payload * 0.24);
  const dram = roundDown4(payload * 0.04);
  const iram = roundDown4(payload * 0.12);
  const irom = payload - drom - dram - iram;

  const desc = encodeAppDescription({
    secureVersion: opts.secureVersion,
    version: opts.version,
    projectName: opts.projectName,
    time: `${pad2(rng.below(24))}:${pad2(rng.below(60))}:${pad2(rng.below(60))}`,
    date: `${rng.pick(['Jan', 'Mar', 'May', 'Jul', 'Sep', 'Nov'])} ${String(1 + rng.below(28)).padStart(2, ' ')} 2025`,
    idfVer: opts.idfVer,
    appElfSha256: sha256(Buffer.from(`${opts.seed}:${opts.chip}:${opts.version}:${opts.projectName}`)),
  });
  const rodata = mixture(drom - APP_DESC_SIZE, [
    [55, (n) => stringTable(rng, n)],
    [20, (n) => pointerTable(rng, n, map.drom)],
    [13, (n) => randomBytes(rng, n)],
    [12, (n) => zeroBytes(n)],
  ]);
  const data = mixture(dram, [[50, (n) => zeroBytes(n)], [30, (n) => pointerTable(rng, n, map.dram)], [20, (n) => randomBytes(rng, n)]]);
  const iramCode = machineCode(rng, iram, map.iram);
  const iromCode = mixture(irom, [[88, (n) => machineCode(rng, n, map.irom)], [12, (n) => randomBytes(rng, n)]]);

  const segments: Array<{ data: Buffer; addr: (dataOffset: number) => number }> = [
    { data: Buffer.concat([desc, rodata]), addr: (off) => map.drom + (off % APP_FLASH_ALIGN) },
    { data, addr: () => map.dram },
    { data: iramCode, addr: () => map.iram },
    { data: iromCode, addr: (off) => map.irom + (off % APP_FLASH_ALIGN) },
  ];
  const entryAddr = map.iram + roundDown4(iram / 3);
  return assemble(opts, entryAddr, segments);
}

function assemble(opts: Required<BuildAppImageOptions>, entryAddr: number, segments: Array<{ data: Buffer; addr: (dataOffset: number) => number }>): Buffer {
  const header = Buffer.alloc(IMAGE_HEADER_SIZE);
  header[HEADER.magic] = IMAGE_MAGIC;
  header[HEADER.segmentCount] = segments.length;
  header[HEADER.spiMode] = 2; // DIO
  header[HEADER.spiSpeedSize] = 0x20; // 40 MHz, 4 MB
  header.writeUInt32LE(entryAddr >>> 0, HEADER.entryAddr);
  header[HEADER.wpPin] = 0xee; // no WP pin
  header.writeUInt16LE(CHIP_IDS[opts.chip], HEADER.chipId);
  header.writeUInt16LE(opts.minChipRevFull, HEADER.minChipRevFull);
  header.writeUInt16LE(opts.maxChipRevFull, HEADER.maxChipRevFull);
  header[HEADER.hashAppended] = 1;

  const parts: Buffer[] = [header];
  let offset = IMAGE_HEADER_SIZE;
  let checksum = CHECKSUM_SEED;
  for (const s of segments) {
    const segHeader = Buffer.alloc(SEGMENT_HEADER_SIZE);
    segHeader.writeUInt32LE(s.addr(offset + SEGMENT_HEADER_SIZE) >>> 0, 0);
    segHeader.writeUInt32LE(s.data.length, 4);
    for (let i = 0; i < s.data.length; i++) checksum ^= s.data[i]; // indexed: no iterator object per byte
    parts.push(segHeader, s.data);
    offset += SEGMENT_HEADER_SIZE + s.data.length;
  }
  const checksumOffset = checksumOffsetAfter(offset);
  const tail = Buffer.alloc(checksumOffset + 1 - offset);
  tail[tail.length - 1] = checksum;
  parts.push(tail);
  const image = Buffer.concat(parts);
  return Buffer.concat([image, sha256(image)]);
}

function checkOptions(o: BuildAppImageOptions): Required<BuildAppImageOptions> {
  const bad = (what: string) => new OtaError('BAD_BUILD_OPTIONS', `Cannot build a synthetic image: ${what}.`);
  if (!o || !isChipName(o.chip)) throw bad(`chip must be one of ${Object.keys(CHIP_IDS).join(', ')}, got ${JSON.stringify(o?.chip)}`);
  if (typeof o.version !== 'string' || o.version.length === 0 || o.version.length > 31) throw bad(`version must be a text of 1 to 31 characters, got ${JSON.stringify(o.version)}`);
  const size = o.size ?? DEFAULT_SIZE;
  if (!Number.isInteger(size) || size < MIN_SYNTHETIC_IMAGE_SIZE || size > MAX_SYNTHETIC_IMAGE_SIZE) {
    throw bad(`size must be a whole number of bytes from ${MIN_SYNTHETIC_IMAGE_SIZE} to ${MAX_SYNTHETIC_IMAGE_SIZE}, got ${JSON.stringify(o.size)}`);
  }
  const secureVersion = o.secureVersion ?? 0;
  if (!Number.isInteger(secureVersion) || secureVersion < 0 || secureVersion > 0xffffffff) throw bad(`secureVersion must be a whole number from 0 to 4294967295, got ${JSON.stringify(o.secureVersion)}`);
  const projectName = o.projectName ?? 'ble_ota_app';
  const idfVer = o.idfVer ?? 'v5.3.1';
  for (const [name, value] of [['projectName', projectName], ['idfVer', idfVer]] as const) {
    if (typeof value !== 'string' || value.length > 31) throw bad(`${name} must be a text of at most 31 characters, got ${JSON.stringify(value)}`);
  }
  return {
    chip: o.chip,
    version: o.version,
    projectName,
    secureVersion,
    idfVer,
    size: size - (size % 16),
    seed: o.seed ?? seedFromText(`${o.chip}/${o.version}/${projectName}/${secureVersion}`),
    minChipRevFull: o.minChipRevFull ?? 0,
    maxChipRevFull: o.maxChipRevFull ?? DEFAULT_MAX_REV[o.chip],
  };
}

function roundDown4(n: number): number {
  return Math.floor(n / 4) * 4;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}
