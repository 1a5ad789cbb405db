/**
 * Times one transfer on the simulated radio from the central's GATT traffic, per the benchmark's
 * definition (issue 3 point 7, "the modeled transfer time"): v2 from the first write of the update request
 * to the END response — BEGIN, or MANIFEST when the client sends the manifest ahead of BEGIN (PROTOCOL.md
 * §2.4; then the CHALLENGE that follows it counts as transfer time, not setup); the seed protocol from the
 * packet-size write to DONE_ACK. What comes before (advertising wait, connect, discovery, Status read, and
 * CHALLENGE when it precedes the request) is the connection setup, reported apart.
 */
import { CONTROL_CHAR_UUID, LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LegacyOp, Op, RESPONSE_BIT } from '../protocol/constants';
import type { GattTrafficEvent, SimRadio } from '../sim/radio';

export interface TransferTiming {
  /** Clock ms of the transfer's first write (MANIFEST or BEGIN / packet size); null: never started. */
  startedAt: number | null;
  /** Clock ms of the END response / DONE_ACK; null: never finished. */
  endedAt: number | null;
  /** The same two instants in wall-clock ms (performance.now()). */
  wallStartedAt: number | null;
  wallEndedAt: number | null;
}

export function timeTransfers(radio: SimRadio): TransferTiming {
  const t: TransferTiming = { startedAt: null, endedAt: null, wallStartedAt: null, wallEndedAt: null };
  radio.onGattTraffic = (e: GattTrafficEvent) => {
    if (t.startedAt === null && e.kind === 'write' && isTransferStart(e)) {
      t.startedAt = e.at;
      t.wallStartedAt = performance.now();
    } else if (t.startedAt !== null && e.kind === 'notification' && isTransferEnd(e)) {
      t.endedAt = e.at;
      t.wallEndedAt = performance.now();
    }
  };
  return t;
}

function isTransferStart(e: GattTrafficEvent): boolean {
  if (e.characteristic === CONTROL_CHAR_UUID) return e.data[0] === Op.BEGIN || e.data[0] === Op.MANIFEST;
  // The seed protocol's first write to Data is the packet size (2 bytes, little-endian).
  return e.characteristic === LEGACY_DATA_UUID && e.data.length === 2;
}

function isTransferEnd(e: GattTrafficEvent): boolean {
  if (e.characteristic === CONTROL_CHAR_UUID) return e.data[0] === (Op.END | RESPONSE_BIT) && e.data[1] === 0;
  return e.characteristic === LEGACY_CONTROL_UUID && e.data[0] === LegacyOp.DONE_ACK;
}

