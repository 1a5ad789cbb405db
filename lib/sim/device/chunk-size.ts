/**
 * The chunk_size the device answers in BEGIN: a Data write is one L2CAP frame of 4 (L2CAP) + 3 (ATT
 * write command) + 4 (offset) + chunk bytes, and the chunk is chosen so that frame fills whole LL PDUs
 * of the link's data length DL: MTU - 7 when the largest ATT packet fits one PDU anyway (MTU + 4 <= DL),
 * else the largest k * DL - 11 that is <= MTU - 7 (DL 251: MTU 256 -> 240, MTU 517 -> 491; DL 27,
 * MTU 256 -> 232). A chunk of MTU - 7 at MTU 256 would need a second, 9-byte PDU per write.
 */
import { ATT_HEADER_SIZE, DATA_HEADER_SIZE } from '../../protocol/constants';

const L2CAP_HEADER_SIZE = 4;
const FRAME_OVERHEAD = L2CAP_HEADER_SIZE + ATT_HEADER_SIZE + DATA_HEADER_SIZE;

export function deviceChunkSize(mtu: number, dataLength: number): number {
  const largest = mtu - ATT_HEADER_SIZE - DATA_HEADER_SIZE;
  if (mtu + L2CAP_HEADER_SIZE <= dataLength) return largest;
  const pdus = Math.floor((largest + FRAME_OVERHEAD) / dataLength);
  return pdus >= 1 ? pdus * dataLength - FRAME_OVERHEAD : largest;
}
