/** The one-byte image checksum: 0xEF XOR every segment data byte, stored at the end of a 16-byte block. */
import { CHECKSUM_ALIGN, CHECKSUM_SEED } from './format';
import type { ImageSegment } from './types';

export function computeChecksum(buf: Buffer, segments: readonly ImageSegment[]): number {
  let sum = CHECKSUM_SEED;
  for (const s of segments) {
    for (let i = s.dataOffset, end = s.dataOffset + s.length; i < end; i++) sum ^= buf[i];
  }
  return sum;
}

/** Offset of the checksum byte for segments ending at `segmentsEnd`: zero padding so (offset + 1) % 16 === 0. */
export function checksumOffsetAfter(segmentsEnd: number): number {
  return segmentsEnd + (CHECKSUM_ALIGN - 1) - (segmentsEnd % CHECKSUM_ALIGN);
}
