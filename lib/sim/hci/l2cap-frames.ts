/**
 * L2CAP basic frames on an LE-U link (Core Spec Vol 3 Part A §3.1): u16 length (of the payload, LE),
 * u16 channel id (LE), payload. The fixed channels an LE peripheral answers on: ATT 0x0004, LE
 * signaling 0x0005, SMP 0x0006 (nimble/host/include/host/ble_l2cap.h:61-67).
 */

export const L2CAP_HEADER_SIZE = 4;

export const Cid = {
  ATT: 0x0004,
  LE_SIGNALING: 0x0005,
  SMP: 0x0006,
  /** NimBLE drops frames to this CID without a reject (ble_l2cap_priv.h:55, ble_l2cap.c:379). */
  BLACK_HOLE: 0xffff,
} as const;

export interface L2capFrame {
  cid: number;
  payload: Buffer;
}

/** A whole basic frame around payload. */
export function l2capFrame(cid: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(L2CAP_HEADER_SIZE + payload.length);
  frame.writeUInt16LE(payload.length, 0);
  frame.writeUInt16LE(cid, 2);
  payload.copy(frame, L2CAP_HEADER_SIZE);
  return frame;
}

/** The frame's channel and payload; null when the length field does not match the bytes given. */
export function parseL2capFrame(frame: Buffer): L2capFrame | null {
  if (frame.length < L2CAP_HEADER_SIZE) return null;
  const length = frame.readUInt16LE(0);
  if (length !== frame.length - L2CAP_HEADER_SIZE) return null;
  return { cid: frame.readUInt16LE(2), payload: frame.subarray(L2CAP_HEADER_SIZE) };
}
