/**
 * Byte layout of ESP application images (ESP-IDF esp_app_format.h, esp_app_desc.h, bootloader_common.h,
 * secure boot signature formats). Offsets are from the start of the structure they belong to.
 */
export const IMAGE_MAGIC = 0xe9;
export const IMAGE_HEADER_SIZE = 24;
export const SEGMENT_HEADER_SIZE = 8;
export const MAX_SEGMENTS = 16;
/** The checksum byte ends a 16-byte block: (offset of checksum + 1) % 16 === 0. */
export const CHECKSUM_ALIGN = 16;
export const CHECKSUM_SEED = 0xef;
export const SHA256_SIZE = 32;
/** No real segment comes near this; a larger length means the header is garbage. */
export const MAX_SEGMENT_LENGTH = 16 * 1024 * 1024;

export const HEADER = {
  magic: 0,
  segmentCount: 1,
  spiMode: 2,
  spiSpeedSize: 3,
  entryAddr: 4,
  wpPin: 8,
  spiPinDrv: 9,
  chipId: 12,
  minChipRev: 14,
  minChipRevFull: 15,
  maxChipRevFull: 17,
  reserved: 19,
  hashAppended: 23,
} as const;

export const APP_DESC_MAGIC = 0xabcd5432;
export const APP_DESC_SIZE = 256;
export const APP_DESC = {
  magic: 0,
  secureVersion: 4,
  version: 16,
  projectName: 48,
  time: 80,
  date: 96,
  idfVer: 112,
  appElfSha256: 144,
} as const;
export const APP_DESC_FIELD_SIZE = { version: 32, projectName: 32, time: 16, date: 16, idfVer: 32 } as const;

/** esp_bootloader_desc_t (ESP-IDF >= 5.2) starts the first segment of a bootloader with this byte. */
export const BOOTLOADER_DESC_MAGIC_BYTE = 0x50;

/** Secure Boot V1 (and ECDSA signed apps without secure boot): {u32 version = 0, u8 signature[64]}. */
export const SIGNATURE_V1_BLOCK_SIZE = 68;

/** Secure Boot V2: a 4 KiB sector of up to 3 signature blocks. */
export const SIGNATURE_V2_SECTOR_SIZE = 4096;
export const SIGNATURE_V2_BLOCK_SIZE = 1216;
export const SIGNATURE_V2_MAX_BLOCKS = 3;
export const SIGNATURE_V2_MAGIC = 0xe7;
export const SIGNATURE_V2_VERSION_RSA = 2;
export const SIGNATURE_V2_VERSION_ECDSA = 3;
/** The block CRC32 covers bytes [0, 1196) and is stored right after them. */
export const SIGNATURE_V2_CRC_COVERED = 1196;

/** Partition table entry magic (bytes 0xAA 0x50) and where merged flash images put things. */
export const PARTITION_MAGIC = Buffer.from([0xaa, 0x50]);
export const PARTITION_ENTRY_SIZE = 32;
export const PARTITION_TABLE_FLASH_OFFSET = 0x8000;
export const PARTITION_TYPE_APP = 0x00;
/** Apps in flash start on 64 KiB boundaries (MMU page). */
export const APP_FLASH_ALIGN = 0x10000;
