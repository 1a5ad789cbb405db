/**
 * Session-key authentication tags (docs/PROTOCOL.md §7): truncated HMAC-SHA256 over a domain label, the
 * CHALLENGE nonce and the command's content, so a tag cannot be replayed for another nonce or command.
 * The session key is the device's own key (derived from a plant master key: lib/security deriveDeviceKey)
 * or the legacy fleet key shared by many devices.
 */
import { createHmac, timingSafeEqual } from 'crypto';
import { OtaError } from '../errors';
import { FLEET_KEY_SIZE, NONCE_SIZE, TAG_SIZE, TaggedOp } from './constants';
import { beginTagInput } from './codec';

const BEGIN_LABEL = Buffer.from('BLEOTA2-BEGIN', 'ascii');
const COMMAND_LABEL = Buffer.from('BLEOTA2-CMD', 'ascii');

/** All-zero tag sent to devices without a fleet key. */
export const ZERO_TAG: Buffer = Buffer.alloc(TAG_SIZE);

function checkKeyAndNonce(key: Buffer, nonce: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== FLEET_KEY_SIZE) {
    throw new OtaError('BAD_FLEET_KEY', `The fleet key must be ${FLEET_KEY_SIZE} bytes (64 hex digits).`);
  }
  if (!Buffer.isBuffer(nonce) || nonce.length !== NONCE_SIZE) throw new OtaError('BAD_PARAMETER', `The nonce must be ${NONCE_SIZE} bytes.`);
}

function truncatedHmac(key: Buffer, parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest().subarray(0, TAG_SIZE);
}

/** Tag of a BEGIN request (the whole request; the tag covers bytes 1..76, not the tag nor the manifest). */
export function beginTag(key: Buffer, nonce: Buffer, beginRequest: Buffer): Buffer {
  checkKeyAndNonce(key, nonce);
  return truncatedHmac(key, [BEGIN_LABEL, nonce, beginTagInput(beginRequest)]);
}

/** Tag of ABORT / CONFIRM / ROLLBACK / REBOOT. */
export function commandTag(key: Buffer, nonce: Buffer, op: TaggedOp): Buffer {
  checkKeyAndNonce(key, nonce);
  return truncatedHmac(key, [COMMAND_LABEL, nonce, Buffer.from([op])]);
}

/** Constant-time comparison for the device side. */
export function tagsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === TAG_SIZE && b.length === TAG_SIZE && timingSafeEqual(a, b);
}

/** Parses a fleet key given as 64 hex digits or a 32-byte Buffer; anything else → BAD_FLEET_KEY. */
export function parseFleetKey(key: string | Buffer): Buffer {
  if (Buffer.isBuffer(key)) {
    if (key.length === FLEET_KEY_SIZE) return key;
  } else if (typeof key === 'string' && /^[0-9a-fA-F]{64}$/.test(key.trim())) {
    return Buffer.from(key.trim(), 'hex');
  }
  throw new OtaError('BAD_FLEET_KEY', `The fleet key must be ${FLEET_KEY_SIZE} bytes (64 hex digits).`);
}
