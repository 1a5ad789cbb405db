/**
 * One schedule of the campaign: a device, an image, the update's settings and the faults injected when
 * it starts, all drawn from (seed, index). Fault density (docs/FAULTS.md "Campaign"): 0 faults with
 * probability 0.25, 1 with 0.40, 2 with 0.25, 3 with 0.10; each fault's kind uniform over the kinds the
 * implementation supports, its parameters uniform over the ranges below.
 */
import * as fs from 'fs';
import * as path from 'path';
import { buildAppImage } from '../../image';
import { parseImage } from '../../image/parse';
import type { ChipName } from '../types';
import type { Fault } from '../faults';
import { LINK_SCENARIO_NAMES, type LinkScenarioName } from '../link-model';
import { scheduleRandom, type Random } from './random';

export type Implementation = 'model' | 'twin';

export interface Schedule {
  seed: number;
  index: number;
  implementation: Implementation;
  chip: ChipName;
  /** Where the image comes from: a file name of the real vectors or "synthetic". */
  imageSource: string;
  image: Buffer;
  policy: 'auto' | 'host';
  fleetKey: Buffer | undefined;
  encoding: 'raw' | 'deflate';
  link: LinkScenarioName;
  faults: Fault[];
  /**
   * An earlier update (version 1.0.5) installed with END but no reboot before this one (the issue's
   * finding 3: a second update over a slot marked NEW); null for most schedules.
   */
  priorUpdate: Buffer | null;
}


/**
 * Share of schedules that first install an earlier update without reboot (issue 9 finding 3): the second
 * update then erases the slot otadata's NEW entry names, as ESP-IDF allows (invariants.ts marked-valid).
 */
export const DEFAULT_PRIOR_UPDATES = 0.1;

/** Probability of 0, 1, 2, 3 faults per schedule. */
export const FAULT_COUNT_WEIGHTS = [0.25, 0.4, 0.25, 0.1] as const;

/** Real images usable as updates (valid app images of a known chip); bad-* vectors are left out. */
export function loadRealImages(dir: string | undefined): Array<{ name: string; image: Buffer; chip: ChipName }> {
  if (!dir || !fs.existsSync(dir)) return [];
  const out: Array<{ name: string; image: Buffer; chip: ChipName }> = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.bin') || name.startsWith('bad-')) continue;
    const image = fs.readFileSync(path.join(dir, name));
    const parsed = parseImage(image);
    if (parsed.problems.length === 0 && parsed.chip) out.push({ name, image, chip: parsed.chip as ChipName });
  }
  return out;
}

const SYNTHETIC_CHIPS: readonly ChipName[] = ['esp32', 'esp32c3', 'esp32s3'];

/** priorUpdateChance: share of schedules that install an earlier update without reboot first (`--prior-updates p`). */
export function drawSchedule(seed: number, index: number, realImages: ReadonlyArray<{ name: string; image: Buffer; chip: ChipName }>, priorUpdateChance = 0): Schedule {
  const rnd = scheduleRandom(seed, index);
  const implementation = implementationOf(index);
  let chip: ChipName;
  let image: Buffer;
  let imageSource = 'synthetic';
  if (realImages.length > 0 && rnd.chance(0.25)) {
    const real = rnd.pick(realImages);
    ({ chip, image } = real);
    imageSource = real.name;
  } else {
    chip = rnd.pick(SYNTHETIC_CHIPS);
    image = buildAppImage({ chip, version: '1.1.0', size: rnd.int(24, 320) * 1024, seed: rnd.int(1, 1_000_000) });
  }
  const policy = rnd.pick(['auto', 'host'] as const);
  const fleetKey = rnd.chance(0.5) ? rnd.bytes(32) : undefined;
  const encoding = rnd.pick(['raw', 'deflate'] as const);
  const link = rnd.pick(LINK_SCENARIO_NAMES);
  const faults: Fault[] = [];
  const count = weightedCount(rnd);
  for (let i = 0; i < count; i++) faults.push(drawFault(rnd, image.length));
  // Drawn last, so the fields above are the same as in campaigns run before this draw existed.
  const priorUpdate = priorUpdateChance > 0 && rnd.chance(priorUpdateChance) ? buildAppImage({ chip, version: '1.0.5', size: rnd.int(24, 160) * 1024, seed: rnd.int(1, 1_000_000) }) : null;
  return { seed, index, implementation, chip, imageSource, image, policy, fleetKey, encoding, link, faults, priorUpdate };
}

/** Even schedules run on the TS model, odd ones on the firmware twin. */
export function implementationOf(index: number): Implementation {
  return index % 2 === 0 ? 'model' : 'twin';
}

function weightedCount(rnd: Random): number {
  let x = rnd.next();
  for (let k = 0; k < FAULT_COUNT_WEIGHTS.length; k++) {
    x -= FAULT_COUNT_WEIGHTS[k];
    if (x < 0) return k;
  }
  return FAULT_COUNT_WEIGHTS.length - 1;
}

/** Flash operations an update of `bytes` issues on the model, roughly (sector erases + page-run programs). */
function flashOpsOf(bytes: number): number {
  return Math.ceil(bytes / 4096) * 2 + 4;
}

function drawFault(rnd: Random, imageBytes: number): Fault {
  // Both implementations take every kind (the twin's flash-operation faults: docs/TWIN.md "fault").
  const kinds = ['dropLink', 'loseWrite', 'flipWrite', 'loseNotification', 'corruptNotification', 'delayNotification', 'vanish', 'powerCutAt', 'slowFlash', 'powerCutOp', 'tornWrite'] as const;
  const kind = rnd.pick<string>(kinds);
  const chunks = Math.max(1, Math.ceil(imageBytes / 240));
  switch (kind) {
    case 'dropLink':
      return { kind: 'dropLink', bytes: rnd.int(0, imageBytes + 200) };
    case 'loseWrite':
      return { kind: 'loseWrite', n: rnd.int(1, chunks) };
    case 'flipWrite':
      return { kind: 'flipWrite', n: rnd.int(1, chunks), bit: rnd.int(0, 7) };
    case 'loseNotification':
      return { kind: 'loseNotification', n: rnd.int(1, 30) };
    case 'corruptNotification':
      return { kind: 'corruptNotification', n: rnd.int(1, 30), bit: rnd.int(0, 7) };
    case 'delayNotification':
      return { kind: 'delayNotification', n: rnd.int(1, 30), ms: rnd.int(10, 5000) };
    case 'vanish':
      return { kind: 'vanish', atMs: rnd.int(0, 20000), forMs: rnd.int(200, 30000) };
    case 'powerCutAt':
      return { kind: 'powerCut', atMs: rnd.int(0, 30000), offMs: rnd.int(10, 3000) };
    case 'slowFlash':
      return { kind: 'slowFlash', factor: rnd.int(2, 8) };
    case 'powerCutOp':
      return { kind: 'powerCut', flashOp: rnd.int(1, flashOpsOf(imageBytes)), offMs: rnd.int(10, 3000) };
    default:
      return { kind: 'tornWrite', flashOp: rnd.int(1, flashOpsOf(imageBytes)), bytes: rnd.int(1, 4095), offMs: rnd.int(10, 3000) };
  }
}
