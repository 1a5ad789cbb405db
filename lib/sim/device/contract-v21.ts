/**
 * Wire facts of protocol v2.1 (docs/PROTOCOL.md: security, partition size) the device model needs and
 * the shared codec (lib/protocol) does not carry yet. The device decodes its Control values with these
 * itself, so it answers exactly as the firmware does whatever client talks to it.
 */

/** Longest Control value the device accepts (§2); longer or empty: ATT error 0x0D. */
export const MAX_CONTROL_VALUE = 512;
export const ATT_INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0d;

export const OP_PROVISION = 0x08;
/** PROVISION: op + key[32]. */
export const PROVISION_LENGTH = 33;
export const SESSION_KEY_SIZE = 32;

/** BEGIN without manifest: op, image_size, transfer_size, encoding, flags, chunk_size, sha256, base_sha256, tag. */
export const BEGIN_LENGTH = 93;
/** begin[1..77): the bytes the BEGIN tag covers (image_size through base_sha256). */
export const BEGIN_TAG_INPUT = [1, 77] as const;
export const BEGIN_TAG_OFFSET = 77;

export const BeginFlagsV21 = { RESUME: 0x01, MANIFEST: 0x02 } as const;
export const ENCODING_DELTA = 2;

/** §9 codes of v2.1. */
export const SecurityError = {
  NOT_PROVISIONED: 33,
  MANIFEST_REQUIRED: 34,
  MANIFEST_INVALID: 35,
  MANIFEST_MISMATCH: 36,
  RELEASE_TOO_OLD: 37,
  BASE_MISMATCH: 38,
  PATCH_INVALID: 39,
} as const;

/** §5 caps bits of v2.1 (bits 0..4 are lib/protocol Caps). */
export const CapsV21 = {
  SIGNED_IMAGES: 1 << 5,
  MANIFEST_REQUIRED: 1 << 6,
  DELTA: 1 << 7,
  PROVISIONING_OPEN: 1 << 8,
  UNAUTHENTICATED_ALLOWED: 1 << 9,
  NOT_PROVISIONED: 1 << 10,
} as const;

/** Status format 2 (§5): 252 bytes, the format-1 fields in bytes 0..231. */
export const STATUS_FORMAT_2 = 2;
export const STATUS_V2_SIZE = 252;
export const STATUS_V1_SIZE = 232;

export const RELEASE_KEY_SLOTS = 4;
export const RELEASE_KEY_SIZE = 65;
export const DEVICE_ID_SIZE = 6;

/** The device_id of a simulated device: the 6 bytes of its BLE address in the order written. */
export function deviceIdOf(address: string): Buffer {
  return Buffer.from(address.replace(/:/g, ''), 'hex');
}
