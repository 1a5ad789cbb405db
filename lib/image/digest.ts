/** Checksums the image format uses: SHA-256 and the CRC32 (zlib/IEEE polynomial) of Secure Boot V2 blocks. */
import { createHash } from 'crypto';

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Same result as zlib.crc32 (and ESP-IDF esp_rom_crc32_le(0, ...)); Node 18 has no zlib.crc32. */
export function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
