/**
 * The benchmark's images: every file of the shared vectors that is a valid application image, plus a
 * synthetic 1.4 MB ESP32-C3 one (lib/image's builder, realistic compressibility): the size class of the
 * issue's 20x target.
 */
import { existsSync, readdirSync, readFileSync } from 'fs';
import { join, resolve } from 'path';
import { buildAppImage, parseImage } from '../image';
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
