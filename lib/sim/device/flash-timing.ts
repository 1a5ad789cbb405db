/**
 * Flash timing of the device model, the only place its flash durations come from (docs/DEVICE-MODEL.md
 * has the derivation). Erase and program: a W25Q32-class SPI NOR chip, datasheet typical values
 * (../shared/DESIGN.md §6). `slowdown` multiplies every erase/program/read duration
 * (SimDeviceConfig.flashSlowdown, fault injection "slow flash").
 *
 * How ESP-IDF v5.3.2 cuts the work into cache-disabled windows (each one stalls the NimBLE host):
 * - esp_flash_erase_region issues one erase command per 64 KiB block (aligned) or 4 KiB sector, each
 *   between its own os start()/end(): the cache stays disabled for the whole block erase
 *   (components/spi_flash/esp_flash_api.c:657-690).
 * - esp_flash_write cuts a write into chunks of CONFIG_SPI_FLASH_WRITE_CHUNK_SIZE (default 8192,
 *   components/spi_flash/Kconfig:282-284; esp_flash_api.c:32-35, 1045, 1061-1100), one window each; inside
 *   a chunk the chip driver programs page by page (spi_flash_chip_generic.c:279-295) in commands of at
 *   most 64 bytes that never cross a page (SPI_FLASH_HAL_MAX_WRITE_BYTES, hal/include/hal/spi_flash_hal.h:27;
 *   memspi_host_driver.c:226-230), each waiting for the chip's program time.
 * - start() is spi_flash_disable_interrupts_caches_and_other_cpu (spi_flash_os_func_app.c:104-128,
 *   cache_utils.c:157-223): the scheduler is suspended and both CPUs run only IRAM code until end().
 */

export const SECTOR_SIZE = 4096;
export const BLOCK_SIZE = 65536;
export const PAGE_SIZE = 256;
/** CONFIG_SPI_FLASH_WRITE_CHUNK_SIZE default: bytes programmed per cache-disabled window. */
export const WRITE_CHUNK_BYTES = 8192;

export const SECTOR_ERASE_MS = 45;
export const BLOCK_ERASE_MS = 150;
/**
 * Full 256-byte page (tPP typical). A program command of n bytes is charged n/256 of it: the writer hands
 * esp_ota_write whatever piece it took from its ring, so where the 64-byte commands split depends on task
 * scheduling; charging by bytes keeps the cost a function of what is written (the firmware twin charges
 * the same). 0.4 ms per 256 B is 640 KB/s, under ESP-IDF's CI floor for 2 KB writes to the ESP32 main
 * flash (754 KB/s, v4.4 components/idf_test/include/esp32/idf_performance_target.h:71).
 */
export const PAGE_PROGRAM_MS = 0.4;
/**
 * Flash read rate of whole-image verification (esp_image_verify through the cache, with checksum and
 * SHA-256; esp_partition_get_sha256), in bytes per ms: ESP-IDF's CI floor for 2 KB reads of the main
 * flash, the lower of the ESP32-C3 figure (6536 * 1000 B/s, LEGACY_RD_2KB, v4.4
 * components/idf_test/include/esp32c3/idf_performance_target.h:50) and the ESP32 one (6650 * 1000 B/s,
 * RD_2KB, v4.4 components/idf_test/include/esp32/idf_performance_target.h:74), set at about 70 % of the
 * measured average. The firmware twin uses the same figure (firmware/host/host_flash.h).
 */
export const VERIFY_READ_BYTES_PER_MS = 6536;

export interface FlashTiming {
  sectorEraseMs: number;
  blockEraseMs: number;
  pageProgramMs: number;
  verifyBytesPerMs: number;
}

export function flashTiming(slowdown = 1): FlashTiming {
  const factor = Number.isFinite(slowdown) && slowdown > 0 ? slowdown : 1;
  return {
    sectorEraseMs: SECTOR_ERASE_MS * factor,
    blockEraseMs: BLOCK_ERASE_MS * factor,
    pageProgramMs: PAGE_PROGRAM_MS * factor,
    verifyBytesPerMs: VERIFY_READ_BYTES_PER_MS / factor,
  };
}

/** Time to program `bytes` starting at partition offset `offset`, every page touched counted whole (the seed model). */
export function programTimeMs(timing: FlashTiming, offset: number, bytes: number): number {
  if (bytes <= 0) return 0;
  const firstPage = Math.floor(offset / PAGE_SIZE);
  const lastPage = Math.floor((offset + bytes - 1) / PAGE_SIZE);
  return (lastPage - firstPage + 1) * timing.pageProgramMs;
}

/**
 * The cache-disabled windows of one esp_partition_write(offset, bytes): one per WRITE_CHUNK_BYTES, each
 * as long as its bytes take at the page program rate (PAGE_PROGRAM_MS per 256 bytes).
 */
export function writeWindowsMs(timing: FlashTiming, offset: number, bytes: number): number[] {
  const windows: number[] = [];
  for (let at = offset; at < offset + bytes; at += WRITE_CHUNK_BYTES) {
    const len = Math.min(WRITE_CHUNK_BYTES, offset + bytes - at);
    windows.push((len * timing.pageProgramMs) / PAGE_SIZE);
  }
  return windows;
}

/** esp_image_verify of an image of `bytes` bytes (read through the cache and hashed). */
export function verifyTimeMs(timing: FlashTiming, bytes: number): number {
  return bytes / timing.verifyBytesPerMs;
}

/**
 * Where a session's erasing ends: the image rounded up to a 4 KiB sector, or to the 64 KiB block when the
 * block's sectors the image needs would take longer one by one than the block at once (4 or more: 4 x 45 ms
 * > 150 ms) and the block lies inside the partition. The bytes past the image in that block belong to no
 * image (esp_ota_begin with OTA_SIZE_UNKNOWN erases the whole slot: espressif/esp-idf v5.3.2
 * components/app_update/esp_ota_ops.c:148-150), and esp_partition_erase_range takes a block erase for an
 * aligned 64 KiB range (components/spi_flash/esp_flash_api.c:665-672). The firmware port computes the same
 * (esp_port_flash.c erase_end_for, firmware/host/host_device.c).
 */
export function eraseEnd(imageSize: number, partitionSize: number): number {
  const sectorEnd = alignUp(imageSize, SECTOR_SIZE);
  const blockEnd = alignUp(imageSize, BLOCK_SIZE);
  const tailSectors = (sectorEnd - (blockEnd - BLOCK_SIZE)) / SECTOR_SIZE;
  return sectorEnd !== blockEnd && tailSectors >= BLOCK_TAIL_SECTORS && blockEnd <= partitionSize ? blockEnd : sectorEnd;
}

/** Sectors of a block's tail from which one block erase is faster: the smallest n with n x 45 ms > 150 ms. */
export const BLOCK_TAIL_SECTORS = Math.floor(BLOCK_ERASE_MS / SECTOR_ERASE_MS) + 1;

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
