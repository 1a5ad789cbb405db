/**
 * The chunk_size the device answers in BEGIN, by the firmware core's rule
 * (firmware/components/ble_ota/core/ble_ota_session.c negotiated_chunk): a Data write is one L2CAP frame
 * of 4 (L2CAP) + 3 (ATT write command) + 4 (offset) + chunk bytes. The limit is the smallest of the
 * client's request, the device maximum (CONFIG_BLE_OTA_MAX_CHUNK) and MTU - 7; when that frame fits one
 * LL PDU of the link's data length DL it is the chunk, else the chunk is rounded down so the frame fills
 * whole PDUs: floor((limit + 11) / DL) * DL - 11 (DL 251: MTU 256 -> 240, MTU 517 -> 491; DL 27,
 * MTU 256 -> 232). A chunk of MTU - 7 at MTU 256 would need a second, 9-byte PDU per write.
 */
import { ATT_HEADER_SIZE, DATA_HEADER_SIZE } from '../../protocol/constants';

const L2CAP_HEADER_SIZE = 4;
const FRAME_OVERHEAD = L2CAP_HEADER_SIZE + ATT_HEADER_SIZE + DATA_HEADER_SIZE;

export function deviceChunkSize(mtu: number, dataLength: number, clientChunk: number, deviceMaxChunk: number): number {
  let limit = Math.min(clientChunk, deviceMaxChunk);
  const byMtu = mtu > 7 ? mtu - ATT_HEADER_SIZE - DATA_HEADER_SIZE : 1;
  if (byMtu < limit) limit = byMtu;
  if (limit + FRAME_OVERHEAD <= dataLength) return limit;
  return Math.floor((limit + FRAME_OVERHEAD) / dataLength) * dataLength - FRAME_OVERHEAD;
}
