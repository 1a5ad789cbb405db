/**
 * Walks the segment table: each segment is {load_addr u32, data_len u32} followed by its data.
 * Stops at the first impossible or cut-off segment and says which one and why.
 */
import type { ChipName } from './chips';
import { isFlashMappedAddress, mmuPageAlignment } from './chips';
import { problem } from './error-codes';
import { IMAGE_HEADER_SIZE, MAX_SEGMENT_LENGTH, SEGMENT_HEADER_SIZE } from './format';
import { hex } from './hex';
import type { ImageProblem, ImageSegment } from './types';

export interface SegmentWalk {
  segments: ImageSegment[];
  /** File offset right after the last segment's data (valid only without a problem). */
  end: number;
  problem: ImageProblem | null;
}

export function walkSegments(buf: Buffer, segmentCount: number, chip: ChipName | null): SegmentWalk {
  const segments: ImageSegment[] = [];
  let offset = IMAGE_HEADER_SIZE;
  for (let index = 0; index < segmentCount; index++) {
    const number = index + 1;
    if (offset + SEGMENT_HEADER_SIZE > buf.length) {
      return cutOff(segments, offset, problem('TRUNCATED_IMAGE',
        `The file ends at byte ${buf.length}, inside the header of segment ${number} of ${segmentCount}: the image is truncated (incomplete download or copy).`,
        { fileLength: buf.length, segment: number }));
    }
    const loadAddr = buf.readUInt32LE(offset);
    const length = buf.readUInt32LE(offset + 4);
    const dataOffset = offset + SEGMENT_HEADER_SIZE;
    if (length > MAX_SEGMENT_LENGTH) {
      return cutOff(segments, offset, problem('BAD_SEGMENT',
        `Segment ${number} claims ${length} bytes (${hex(length)}) at address ${hex(loadAddr, 8)}, more than any ESP chip can load: the file is damaged or not an ESP image.`,
        { segment: number, length, loadAddr }));
    }
    if (length % 4 !== 0) {
      return cutOff(segments, offset, problem('BAD_SEGMENT',
        `Segment ${number} has a length of ${length} bytes, which is not a multiple of 4 as every ESP image segment is: the file is damaged or not an ESP image.`,
        { segment: number, length, loadAddr }));
    }
    if (loadAddr + length > 0x1_0000_0000) {
      return cutOff(segments, offset, problem('BAD_SEGMENT',
        `Segment ${number} at address ${hex(loadAddr, 8)} with ${length} bytes runs past the end of the 32-bit address space: the file is damaged.`,
        { segment: number, length, loadAddr }));
    }
    if (dataOffset + length > buf.length) {
      return cutOff(segments, offset, problem('TRUNCATED_IMAGE',
        `The file ends at byte ${buf.length}, but segment ${number} of ${segmentCount} needs bytes up to ${dataOffset + length}: the image is truncated (incomplete download or copy).`,
        { fileLength: buf.length, segment: number, neededLength: dataOffset + length }));
    }
    const flashMapped = isFlashMappedAddress(chip, loadAddr);
    const page = mmuPageAlignment(chip);
    if (flashMapped && chip !== null && dataOffset % page !== loadAddr % page) {
      return cutOff(segments, offset, problem('BAD_SEGMENT',
        `Segment ${number} is mapped from flash at address ${hex(loadAddr, 8)} but its data starts at file offset ${hex(dataOffset)}: the two must agree modulo the ${page / 1024} KiB MMU page, so the chip would refuse the image (the file was edited or damaged).`,
        { segment: number, loadAddr, dataOffset }));
    }
    segments.push({ index, loadAddr, length, headerOffset: offset, dataOffset, flashMapped });
    offset = dataOffset + length;
  }
  return { segments, end: offset, problem: null };
}

function cutOff(segments: ImageSegment[], end: number, found: ImageProblem): SegmentWalk {
  return { segments, end, problem: found };
}
