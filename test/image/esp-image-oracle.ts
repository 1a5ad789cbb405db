/**
 * An independent reading of what ESP-IDF's image loader accepts, used as the oracle of the mutation
 * suite: written from components/bootloader_support/src/esp_image_format.c (espressif/esp-idf at
 * 102122904ade, lines cited below), not with lib/image, so that a bug in the library cannot agree
 * with itself. It answers "would esp_image_verify() accept these bytes as an application image for
 * some chip", which is what the library must never contradict when it accepts an image.
 */
import { createHash } from 'crypto';

/** esp_app_format.h:77 */
const IMAGE_MAGIC = 0xe9;
/** esp_app_format.h:123 */
const MAX_SEGMENTS = 16;
/** esp_image_format.c:56 (chips without 32-bit cache address maps) */
const MAX_SEGMENT_LENGTH = 0x1000000;
/** esp_image_format.c:59 */
const CHECKSUM_SEED = 0xef;
/** esp_app_desc.h:21 */
const APP_DESC_MAGIC = 0xabcd5432;
/** sizeof(esp_app_desc_t) */
const APP_DESC_SIZE = 256;
const HEADER_SIZE = 24;
const SEGMENT_HEADER_SIZE = 8;
const MMU_PAGE = 0x10000;
/** Chip ids of esp_chip_id_t that ESP-IDF builds applications for. */
const KNOWN_CHIP_IDS = new Set([0, 2, 5, 9, 12, 13, 16, 18]);

/**
 * Flash-mapped (DROM/IROM) ranges of the chips with a fixed 64 KiB MMU page, components/soc/<chip>/
 * include/soc/soc.h: esp32 :162-167, esp32s2 :149-152, esp32c3 :141-144, esp32s3 :156-159. Chips with a
 * configurable page (read from the app description): not listed, so the mapping alignment check is not
 * made for them and the oracle is weaker there, never stricter.
 */
const MAPPED_RANGES: Record<number, Array<[number, number]> | undefined> = {
  0: [[0x3f400000, 0x3f800000], [0x400d0000, 0x40400000]],
  2: [[0x3f000000, 0x3ff80000], [0x40080000, 0x40800000]],
  5: [[0x3c000000, 0x3c800000], [0x42000000, 0x42800000]],
  9: [[0x3c000000, 0x3e000000], [0x42000000, 0x44000000]],
};

export interface OracleVerdict {
  valid: boolean;
  reason?: string;
}

export function espImageVerdict(buf: Buffer): OracleVerdict {
  const bad = (reason: string): OracleVerdict => ({ valid: false, reason });
  if (buf.length < HEADER_SIZE) return bad('shorter than the image header');
  // verify_image_header, esp_image_format.c:396-410
  if (buf[0] !== IMAGE_MAGIC) return bad('magic');
  const segmentCount = buf[1];
  if (segmentCount > MAX_SEGMENTS) return bad('segment count');
  const chipId = buf.readUInt16LE(12);
  if (!KNOWN_CHIP_IDS.has(chipId)) return bad('chip id');
  // bootloader_common_loader.c:32,45-57: no revision passes min <= rev <= max when a set max is below min.
  const minRev = buf.readUInt16LE(15);
  const maxRev = buf.readUInt16LE(17);
  if (maxRev !== 0xffff && maxRev !== 0 && minRev > maxRev) return bad('chip revision range empty');
  const hashAppended = buf[23] === 1;
  let offset = HEADER_SIZE;
  let checksum = CHECKSUM_SEED;
  for (let index = 0; index < segmentCount; index++) {
    if (offset + SEGMENT_HEADER_SIZE > buf.length) return bad(`segment ${index} header past the end`);
    const loadAddr = buf.readUInt32LE(offset);
    const length = buf.readUInt32LE(offset + 4);
    const dataOffset = offset + SEGMENT_HEADER_SIZE;
    // verify_segment_header, esp_image_format.c:862-878
    if ((length & 3) !== 0 || length >= MAX_SEGMENT_LENGTH) return bad(`segment ${index} length`);
    if (index === 0 && length < APP_DESC_SIZE) return bad('segment 0 too short for the app description');
    // verify_load_addresses, esp_image_format.c:439: a segment's end lies above its start (no wrap-around).
    if (loadAddr + length > 0x1_0000_0000) return bad(`segment ${index} wraps the address space`);
    if (dataOffset + length > buf.length) return bad(`segment ${index} data past the end`);
    if (index === 0 && buf.readUInt32LE(dataOffset) !== APP_DESC_MAGIC) return bad('app description magic');
    // esp_image_format.c:927-933: a flash-mapped segment sits at its address modulo the MMU page.
    const ranges = MAPPED_RANGES[chipId];
    const mapped = ranges?.some(([low, high]) => loadAddr >= low && loadAddr < high) ?? false;
    if (mapped && dataOffset % MMU_PAGE !== loadAddr % MMU_PAGE) return bad(`segment ${index} mapping alignment`);
    for (let i = dataOffset; i < dataOffset + length; i++) checksum ^= buf[i];
    offset = dataOffset + length;
  }
  // process_checksum, esp_image_format.c:1069-1085: the checksum is the last byte of the 16-byte padding.
  const checksumOffset = ((offset + 1 + 15) & ~15) - 1;
  if (checksumOffset >= buf.length) return bad('checksum past the end');
  if (buf[checksumOffset] !== checksum) return bad('checksum');
  // process_appended_hash_and_sig / verify_simple_hash, esp_image_format.c:1023-1028
  if (hashAppended) {
    if (checksumOffset + 1 + 32 > buf.length) return bad('appended hash past the end');
    const digest = createHash('sha256').update(buf.subarray(0, checksumOffset + 1)).digest();
    if (!digest.equals(buf.subarray(checksumOffset + 1, checksumOffset + 33))) return bad('appended hash');
  }
  return { valid: true };
}
