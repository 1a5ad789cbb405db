/**
 * Chip ids of the ESP image header (esp_chip_id_t) and the address windows each chip maps from flash.
 * The flash windows tell an application (code/rodata executed from flash) from a bootloader (RAM only).
 */
/** The chips ESP-IDF builds applications for, by the names the library uses. */
export type ChipName = 'esp32' | 'esp32s2' | 'esp32c3' | 'esp32s3' | 'esp32c2' | 'esp32c6' | 'esp32h2' | 'esp32p4';

export const CHIP_IDS: Readonly<Record<ChipName, number>> = {
  esp32: 0,
  esp32s2: 2,
  esp32c3: 5,
  esp32s3: 9,
  esp32c2: 12,
  esp32c6: 13,
  esp32h2: 16,
  esp32p4: 18,
};

export const CHIP_NAMES: readonly ChipName[] = Object.keys(CHIP_IDS) as ChipName[];

export function chipNameFromId(chipId: number): ChipName | null {
  for (const name of CHIP_NAMES) if (CHIP_IDS[name] === chipId) return name;
  return null;
}

export function isChipName(value: unknown): value is ChipName {
  return typeof value === 'string' && (CHIP_NAMES as readonly string[]).includes(value);
}

/** [start, end) address ranges a chip's cache maps from flash (instruction and data buses). */
export type AddressRange = readonly [number, number];

/**
 * Address windows the loader maps from flash (esp_image_format.c should_map: SOC_DROM/IROM_LOW..HIGH of
 * components/soc/<chip>/include/soc/soc.h in espressif/esp-idf; esp32 soc.h:162-167).
 */
const FLASH_WINDOWS: Readonly<Record<ChipName, readonly AddressRange[]>> = {
  esp32: [[0x3f400000, 0x3f800000], [0x400d0000, 0x40400000]],
  esp32s2: [[0x3f000000, 0x3ff80000], [0x40080000, 0x40800000]],
  esp32c3: [[0x3c000000, 0x3c800000], [0x42000000, 0x42800000]],
  esp32s3: [[0x3c000000, 0x3e000000], [0x42000000, 0x44000000]],
  esp32c2: [[0x3c000000, 0x3c400000], [0x42000000, 0x42400000]],
  esp32c6: [[0x42000000, 0x43000000]],
  esp32h2: [[0x42000000, 0x43000000]],
  esp32p4: [[0x40000000, 0x4c000000]],
};

/** True when `addr` lies in a flash-mapped window of `chip` (of any known chip when chip is null). */
export function isFlashMappedAddress(chip: ChipName | null, addr: number): boolean {
  const chips = chip ? [chip] : CHIP_NAMES;
  return chips.some((c) => FLASH_WINDOWS[c].some(([start, end]) => addr >= start && addr < end));
}

/** Load addresses the synthetic image builder uses: one flash data window, one flash code window, RAM. */
export interface ChipMemoryMap {
  drom: number;
  irom: number;
  dram: number;
  iram: number;
}

export const CHIP_MEMORY_MAPS: Readonly<Record<ChipName, ChipMemoryMap>> = {
  esp32: { drom: 0x3f400000, irom: 0x400d0000, dram: 0x3ffb0000, iram: 0x40080000 },
  esp32s2: { drom: 0x3f000000, irom: 0x40080000, dram: 0x3ffbe000, iram: 0x40022000 },
  esp32c3: { drom: 0x3c000000, irom: 0x42000000, dram: 0x3fc8a000, iram: 0x40380000 },
  esp32s3: { drom: 0x3c000000, irom: 0x42000000, dram: 0x3fc90000, iram: 0x40374000 },
  esp32c2: { drom: 0x3c000000, irom: 0x42000000, dram: 0x3fca0000, iram: 0x40380000 },
  esp32c6: { drom: 0x42800000, irom: 0x42000000, dram: 0x40810000, iram: 0x40800000 },
  esp32h2: { drom: 0x42800000, irom: 0x42000000, dram: 0x40810000, iram: 0x40800000 },
  esp32p4: { drom: 0x40800000, irom: 0x40000000, dram: 0x4ff10000, iram: 0x4ff00000 },
};

/**
 * The MMU page a flash-mapped segment must be congruent to (file offset = address modulo the page,
 * esp_image_format.c verify_segment_header). Chips with a configurable page size read it from the app
 * description; the check then uses their smallest page (8 KiB), which never refuses a valid image.
 */
export function mmuPageAlignment(chip: ChipName | null): number {
  return chip === 'esp32' || chip === 'esp32s2' || chip === 'esp32c3' || chip === 'esp32s3' ? 0x10000 : 0x2000;
}
