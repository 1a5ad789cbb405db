/**
 * Merged flash images (esptool merge_bin: bootloader + partition table + app in one file) are not OTA
 * images. Found by the partition table at flash offset 0x8000 (file offset 0x8000, or 0x7000 when the
 * file starts at the ESP32's bootloader offset 0x1000), else by scanning 4 KiB boundaries for an app.
 */
import { APP_DESC_MAGIC, IMAGE_HEADER_SIZE, IMAGE_MAGIC, PARTITION_ENTRY_SIZE, PARTITION_MAGIC, PARTITION_TABLE_FLASH_OFFSET, PARTITION_TYPE_APP, SEGMENT_HEADER_SIZE } from './format';
import type { MergedImageInfo } from './types';

const APP_DESC_FILE_OFFSET = IMAGE_HEADER_SIZE + SEGMENT_HEADER_SIZE;
const MAX_PARTITIONS = 95;
const SCAN_STEP = 0x1000;
/** File offsets a merged image can start at: flash 0, or flash 0x1000 (ESP32/ESP32-S2 bootloader). */
const FILE_BASES = [0, 0x1000];

/** An ESP image header followed by an app description at the usual place. */
export function isAppImageAt(buf: Buffer, offset: number): boolean {
  if (offset + APP_DESC_FILE_OFFSET + 4 > buf.length || buf[offset] !== IMAGE_MAGIC) return false;
  return buf.readUInt32LE(offset + APP_DESC_FILE_OFFSET) === APP_DESC_MAGIC;
}

/** A merged image, or null. A file whose offset 0 is an app is an app, whatever follows it. */
export function detectMergedImage(buf: Buffer): MergedImageInfo | null {
  if (isAppImageAt(buf, 0)) return null;
  for (const base of FILE_BASES) {
    const tableOffset = PARTITION_TABLE_FLASH_OFFSET - base;
    const appFlashOffsets = readAppPartitionOffsets(buf, tableOffset);
    if (appFlashOffsets === null) continue;
    const appFlashAddress = appFlashOffsets.find((o) => isAppImageAt(buf, o - base));
    if (appFlashAddress !== undefined) return { appOffset: appFlashAddress - base, partitionTableOffset: tableOffset, appFlashAddress };
    return { appOffset: scanForApp(buf), partitionTableOffset: tableOffset, appFlashAddress: null };
  }
  const appOffset = scanForApp(buf);
  return appOffset === null ? null : { appOffset, partitionTableOffset: null, appFlashAddress: null };
}

/** Flash offsets of app partitions, or null when no plausible partition table is at `offset`. */
function readAppPartitionOffsets(buf: Buffer, offset: number): number[] | null {
  const offsets: number[] = [];
  let entries = 0;
  for (let e = offset; entries < MAX_PARTITIONS && e + PARTITION_ENTRY_SIZE <= buf.length; e += PARTITION_ENTRY_SIZE, entries++) {
    if (!buf.subarray(e, e + 2).equals(PARTITION_MAGIC)) break;
    const type = buf[e + 2];
    const partitionOffset = buf.readUInt32LE(e + 4);
    // Every partition starts on a 4 KiB boundary; anything else means these bytes are not a table.
    if (partitionOffset % 0x1000 !== 0) return null;
    if (type === PARTITION_TYPE_APP) offsets.push(partitionOffset);
  }
  return entries > 0 ? offsets : null;
}

function scanForApp(buf: Buffer): number | null {
  for (let o = SCAN_STEP; o + APP_DESC_FILE_OFFSET + 4 <= buf.length; o += SCAN_STEP) {
    if (isAppImageAt(buf, o)) return o;
  }
  return null;
}
