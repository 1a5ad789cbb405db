/**
 * Sizes of the ATT PDUs the simulated GATT client (mirroring noble's hci-socket gatt.js) and server
 * exchange (Bluetooth Core Vol 3 Part F 3.4), so that discovery, reads and writes cost what they cost.
 */
import type { VirtualService } from '../types';

export const ATT = {
  errorRsp: 5,
  mtuReq: 3,
  mtuRsp: 3,
  /** opcode + start + end + 16-bit group type */
  readByGroupTypeReq: 7,
  readByTypeReq: 7,
  readReq: 3,
  readBlobReq: 5,
  findInformationReq: 5,
  writeRsp: 1,
  executeWriteReq: 2,
  executeWriteRsp: 1,
  handleValueConfirmation: 1,
  /** opcode + handle (+ value) for write request, write command, notification, indication */
  writeHeader: 3,
  /** opcode + handle + offset (+ value) for prepare write request and response */
  prepareWriteHeader: 5,
  /** LL_TERMINATE_IND control PDU payload: opcode + error code */
  llTerminateInd: 2,
};

function uuidBytes(uuid: string): number {
  return uuid.length <= 4 ? 2 : 16;
}

/** Responses packed into the MTU: one entry length per response (the server starts a new one when it changes). */
function packedResponses(entryLengths: number[], mtu: number): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < entryLengths.length) {
    const len = entryLengths[i];
    const perPdu = Math.max(1, Math.floor((mtu - 2) / len));
    let n = 0;
    while (i < entryLengths.length && entryLengths[i] === len && n < perPdu) {
      i++;
      n++;
    }
    out.push(2 + n * len);
  }
  return out;
}

/**
 * Response sizes of primary service discovery (Read By Group Type). The last service's group ends at
 * 0xffff, so noble asks no further.
 */
export function serviceDiscoveryResponses(services: VirtualService[], mtu: number): number[] {
  if (services.length === 0) return [ATT.errorRsp];
  return packedResponses(services.map((s) => 4 + uuidBytes(s.uuid)), mtu);
}

/** Response sizes of characteristic discovery (Read By Type): entries, then the closing error. */
export function characteristicDiscoveryResponses(service: VirtualService, mtu: number): number[] {
  const entries = packedResponses(service.characteristics.map((c) => 5 + uuidBytes(c.uuid)), mtu);
  return [...(service.characteristics.length > 0 ? entries : []), ATT.errorRsp];
}
