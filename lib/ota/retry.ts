/**
 * Reconnect policy of a flash: bounded attempts, exponential backoff on the central's clock (so the
 * virtual clock models it), and which failures are worth another attempt.
 */
import { OtaError } from '../errors';

export interface BackoffPolicy {
  baseMs: number;
  factor: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, factor: 2, maxMs: 8000 };

/** Delay before attempt `attempt` (2, 3, ...): base, base*factor, ... capped. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  return Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.max(0, attempt - 2));
}

/** Link trouble is retried; anything the device or the image said no to is final. */
const RETRYABLE = new Set([
  'DISCONNECTED',
  'CONNECT_TIMEOUT',
  'CONNECT_FAILED',
  'GATT_TIMEOUT',
  'DEVICE_NOT_FOUND',
  'RESPONSE_TIMEOUT',
  'ACK_TIMEOUT',
  'TIMEOUT',
  'DISCONNECT_TIMEOUT',
  'SESSION_TIMEOUT',
  'DEVICE_BUSY',
  'BUSY',
  // Bytes damaged on air (a corruption the link layer's CRC missed): the host made the digest and the
  // zlib stream from the file it checked, so the device refusing them means the transfer, not the image,
  // was bad; the device kept its old image (PROTOCOL.md §4.1). A malformed notification likewise.
  'DEVICE_HASH_MISMATCH',
  'DEVICE_DECODE_FAILED',
  'PROTOCOL_MALFORMED',
]);

export function isRetryable(err: unknown): boolean {
  if (!(err instanceof OtaError)) return false;
  if (err.details && err.details.retryable === true) return true;
  return RETRYABLE.has(err.code) || /TIMEOUT$/.test(err.code);
}
