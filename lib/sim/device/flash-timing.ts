/**
 * Flash timing of a W25Q32-class SPI NOR chip (datasheet typical values, ../shared/DESIGN.md §6), the
 * only place the device model's flash durations come from. `slowdown` multiplies every duration
 * (SimDeviceConfig.flashSlowdown, fault injection "slow flash").
 */

export const SECTOR_SIZE = 4096;
export const BLOCK_SIZE = 65536;
export const PAGE_SIZE = 256;

export const SECTOR_ERASE_MS = 45;
export const BLOCK_ERASE_MS = 150;
export const PAGE_PROGRAM_MS = 0.4;

export interface FlashTiming {
  sectorEraseMs: number;
  blockEraseMs: number;
  pageProgramMs: number;
}

export function flashTiming(slowdown = 1): FlashTiming {
  const factor = Number.isFinite(slowdown) && slowdown > 0 ? slowdown : 1;
  return {
    sectorEraseMs: SECTOR_ERASE_MS * factor,
    blockEraseMs: BLOCK_ERASE_MS * factor,
    pageProgramMs: PAGE_PROGRAM_MS * factor,
  };
}

/** Time to program `bytes` starting at partition offset `offset` (page by page, partial pages count whole). */
export function programTimeMs(timing: FlashTiming, offset: number, bytes: number): number {
  if (bytes <= 0) return 0;
  const firstPage = Math.floor(offset / PAGE_SIZE);
  const lastPage = Math.floor((offset + bytes - 1) / PAGE_SIZE);
  return (lastPage - firstPage + 1) * timing.pageProgramMs;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
