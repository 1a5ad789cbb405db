/** The 24-byte image header (esp_image_header_t). */
import { HEADER, IMAGE_HEADER_SIZE } from './format';
import type { ImageHeader } from './types';

/** Reads the header at `offset`; the caller makes sure IMAGE_HEADER_SIZE bytes are there. */
export function readImageHeader(buf: Buffer, offset = 0): ImageHeader {
  if (buf.length < offset + IMAGE_HEADER_SIZE) throw new RangeError('image header needs 24 bytes');
  const at = (field: number) => offset + field;
  const speedSize = buf[at(HEADER.spiSpeedSize)];
  return {
    magic: buf[at(HEADER.magic)],
    segmentCount: buf[at(HEADER.segmentCount)],
    spiMode: buf[at(HEADER.spiMode)],
    spiSpeed: speedSize & 0x0f,
    spiSize: speedSize >> 4,
    entryAddr: buf.readUInt32LE(at(HEADER.entryAddr)),
    wpPin: buf[at(HEADER.wpPin)],
    chipId: buf.readUInt16LE(at(HEADER.chipId)),
    minChipRev: buf[at(HEADER.minChipRev)],
    minChipRevFull: buf.readUInt16LE(at(HEADER.minChipRevFull)),
    maxChipRevFull: buf.readUInt16LE(at(HEADER.maxChipRevFull)),
    hashAppended: buf[at(HEADER.hashAppended)] === 1,
  };
}

/** ESP-IDF ignores a maximum revision of 0 (field unset before ESP-IDF 5.0) or 0xFFFF. */
export function hasMaxChipRev(maxChipRevFull: number): boolean {
  return maxChipRevFull !== 0 && maxChipRevFull !== 0xffff;
}

/** "v3.1" style text for a major * 100 + minor revision. */
export function formatChipRev(full: number): string {
  return `v${Math.floor(full / 100)}.${full % 100}`;
}
