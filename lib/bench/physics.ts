/**
 * The ceiling of the benchmark: the shortest time physics allows for one row, the larger of
 * bytes-on-air over the link's best ATT payload rate (lib/sim/link-model.ts) and the image over the
 * flash's best erase+program rate (64 KiB block erases where aligned, 4 KiB sectors for the rest,
 * 256-byte page programs; lib/sim/device/flash-timing.ts).
 */
import { bestPayloadRate, resolveLinkProfile } from '../sim/link-model';
import { BLOCK_ERASE_MS, BLOCK_SIZE, PAGE_PROGRAM_MS, PAGE_SIZE, SECTOR_ERASE_MS, SECTOR_SIZE } from '../sim/device/flash-timing';

/** Erase + program time of `bytes` written from the start of a partition, in seconds. */
export function flashSeconds(bytes: number): number {
  const blocks = Math.floor(bytes / BLOCK_SIZE);
  const sectors = Math.ceil((bytes - blocks * BLOCK_SIZE) / SECTOR_SIZE);
  const pages = Math.ceil(bytes / PAGE_SIZE);
  return (blocks * BLOCK_ERASE_MS + sectors * SECTOR_ERASE_MS + pages * PAGE_PROGRAM_MS) / 1000;
}

export function linkSeconds(bytesOnAir: number, scenario: string): number {
  const rate = bestPayloadRate(resolveLinkProfile(scenario));
  return Number.isFinite(rate) ? bytesOnAir / rate : 0;
}

export function ceilingSeconds(bytesOnAir: number, imageBytes: number, scenario: string): number {
  return Math.max(linkSeconds(bytesOnAir, scenario), flashSeconds(imageBytes));
}
