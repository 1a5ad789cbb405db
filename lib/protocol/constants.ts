/**
 * Numbers of docs/PROTOCOL.md (protocol v2) and of the seed firmware's protocol (legacy), in one place.
 * UUIDs are lower-case hex without dashes, as lib/ble reports them.
 */

export const PROTO_VERSION = 2;

// §1 GATT table
export const DIS_SERVICE_UUID = '180a';
export const MANUFACTURER_NAME_UUID = '2a29';
export const MODEL_NUMBER_UUID = '2a24';
export const FIRMWARE_REVISION_UUID = '2a26';
export const OTA_SERVICE_UUID = '5c4e00016a8b4f0e9a3d32b1e07a0001';
export const CONTROL_CHAR_UUID = '5c4e00026a8b4f0e9a3d32b1e07a0001';
export const DATA_CHAR_UUID = '5c4e00036a8b4f0e9a3d32b1e07a0001';
export const STATUS_CHAR_UUID = '5c4e00046a8b4f0e9a3d32b1e07a0001';

/** The device must accept control values up to this length (long writes; a BEGIN with a manifest of 32 devices is 509). */
export const MAX_CONTROL_VALUE = 512;
/** ATT error for a Control value that is empty or longer than MAX_CONTROL_VALUE. */
export const ATT_INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0d;
/** `u32 offset` in front of every Data payload. */
export const DATA_HEADER_SIZE = 4;
/** ATT write/notify header: opcode + handle. */
export const ATT_HEADER_SIZE = 3;
/**
 * Data offsets with this bit set are manifest staging writes (revision 2.3, §3): `0x80000000 | manifest_offset`;
 * no transfer offset has it.
 */
export const STAGING_OFFSET_FLAG = 0x80000000;
/** Smallest Data payload the client accepts to work with (smaller: MTU_TOO_SMALL). */
export const MIN_CHUNK_SIZE = 16;

// §2 Control opcodes
export const Op = {
  CHALLENGE: 0x01,
  BEGIN: 0x02,
  END: 0x03,
  ABORT: 0x04,
  CONFIRM: 0x05,
  ROLLBACK: 0x06,
  REBOOT: 0x07,
  PROVISION: 0x08,
  /** Revision 2.2: the signed manifest alone, before BEGIN (§2.4; caps bit11); alone, 0x09 commits the bytes staged on Data (2.3, bit12). */
  MANIFEST: 0x09,
  DATA_ACK: 0xa0,
  DATA_NAK: 0xa1,
  SESSION_ABORTED: 0xa2,
  UNKNOWN_OPCODE_RESPONSE: 0xff,
} as const;
export type CommandOp = (typeof Op)['CHALLENGE' | 'BEGIN' | 'END' | 'ABORT' | 'CONFIRM' | 'ROLLBACK' | 'REBOOT' | 'PROVISION' | 'MANIFEST'];
/** Commands that carry only a `tag[16]`. */
export type TaggedOp = (typeof Op)['ABORT' | 'CONFIRM' | 'ROLLBACK' | 'REBOOT'];
export const RESPONSE_BIT = 0x80;
export const COMMAND_NAMES: Readonly<Record<number, string>> = {
  0x01: 'CHALLENGE',
  0x02: 'BEGIN',
  0x03: 'END',
  0x04: 'ABORT',
  0x05: 'CONFIRM',
  0x06: 'ROLLBACK',
  0x07: 'REBOOT',
  0x08: 'PROVISION',
  0x09: 'MANIFEST',
};

/**
 * Length of each command including the opcode byte. BEGIN: this exactly without a manifest; with flags
 * bit1 it is BEGIN_FIXED_LENGTH + the manifest's own `length` field (§2.1).
 */
export const COMMAND_LENGTH: Readonly<Record<CommandOp, number>> = {
  0x01: 1,
  0x02: 93,
  0x03: 2,
  0x04: 17,
  0x05: 17,
  0x06: 17,
  0x07: 17,
  0x08: 33,
  /** MANIFEST: 1 + the manifest's own `length` field (§2.4); this is the shortest (opcode + 8-byte head). */
  0x09: 9,
};
/** BEGIN without manifest; the manifest (flags bit1) starts at this offset. */
export const BEGIN_FIXED_LENGTH = 93;
/** Offset of the BEGIN tag; the tag covers begin[1..BEGIN_TAG_OFFSET) (image_size through base_sha256). */
export const BEGIN_TAG_OFFSET = 77;

/**
 * Success length of each response including op and err (error responses are always 2 bytes). Every
 * Control notification fits MAX_NOTIFICATION_AT_MIN_MTU: the protocol works at ATT MTU 23.
 */
export const RESPONSE_LENGTH: Readonly<Record<CommandOp, number>> = {
  0x01: 20,
  0x02: 16,
  0x03: 6,
  0x04: 2,
  0x05: 2,
  0x06: 2,
  0x07: 2,
  0x08: 2,
  0x09: 2,
};
/** The default (smallest) ATT MTU; a notification carries at most MTU - 3 value bytes. */
export const DEFAULT_ATT_MTU = 23;
export const MAX_NOTIFICATION_AT_MIN_MTU = DEFAULT_ATT_MTU - ATT_HEADER_SIZE;

export const TAG_SIZE = 16;
export const NONCE_SIZE = 16;
export const SHA256_SIZE = 32;
export const FLEET_KEY_SIZE = 32;
/** Session key (NVS `device_key`, or the legacy fleet key) and the plant master key: 32 bytes each (§7). */
export const SESSION_KEY_SIZE = 32;
/** Status `device_id`: the device's base MAC (§5). */
export const DEVICE_ID_SIZE = 6;

/** BEGIN `encoding` (§2.1): DELTA is a zlib stream of a patch (§13), only when caps bit7. */
export const Encoding = { RAW: 0, DEFLATE: 1, DELTA: 2 } as const;
/** BEGIN `flags`: bit0 resume, bit1 a manifest follows the fixed part. */
export const BeginFlags = { RESUME: 0x01, MANIFEST: 0x02 } as const;
export const EndFlags = { REBOOT: 0x01 } as const;

// §9 error codes
export const ErrorCode = {
  OK: 0,
  INVALID_STATE: 1,
  BUSY: 2,
  AUTH_REQUIRED: 3,
  AUTH_FAILED: 4,
  BAD_LENGTH: 5,
  UNKNOWN_OPCODE: 6,
  IMAGE_TOO_LARGE: 7,
  BAD_ENCODING: 8,
  NOT_APP_IMAGE: 9,
  WRONG_CHIP: 10,
  DOWNGRADE: 11,
  NO_SESSION: 12,
  OUT_OF_WINDOW: 13,
  DUPLICATE: 14,
  GAP: 15,
  EMPTY_WRITE: 16,
  OVERSIZED: 17,
  DECODE_FAILED: 18,
  SIZE_MISMATCH: 19,
  HASH_MISMATCH: 20,
  VALIDATION_FAILED: 21,
  FLASH_ERROR: 22,
  SET_BOOT_FAILED: 23,
  NOT_PENDING: 24,
  NO_ROLLBACK_IMAGE: 25,
  SESSION_TIMEOUT: 26,
  ABORTED: 27,
  BAD_PARAMETER: 28,
  DIAGNOSTICS_FAILED: 29,
  ROLLED_BACK: 30,
  WRONG_CHIP_REVISION: 31,
  NO_MEMORY: 32,
  NOT_PROVISIONED: 33,
  MANIFEST_REQUIRED: 34,
  MANIFEST_INVALID: 35,
  MANIFEST_MISMATCH: 36,
  RELEASE_TOO_OLD: 37,
  BASE_MISMATCH: 38,
  PATCH_INVALID: 39,
  INTERNAL: 0xfe,
} as const;
export type ErrorName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorName];

/** One sentence per device error code, for people reading an error message. */
export const ERROR_SENTENCES: Readonly<Record<ErrorName, string>> = {
  OK: 'Success.',
  INVALID_STATE: 'The device cannot do this now (for example END before every byte arrived, or BEGIN while it is finishing).',
  BUSY: 'Another connection holds the update session on this device.',
  AUTH_REQUIRED: 'The device needs a session-key proof and no fresh challenge was fetched for this command.',
  AUTH_FAILED: 'The device rejected the authentication tag: the session key (device key or fleet key) is wrong or missing.',
  BAD_LENGTH: 'The device got a message of the wrong length for its opcode.',
  UNKNOWN_OPCODE: 'The device does not know this command.',
  IMAGE_TOO_LARGE: 'The image is larger than the device\'s OTA partition.',
  BAD_ENCODING: 'The device does not support this transfer encoding, or the transfer size does not fit it.',
  NOT_APP_IMAGE: 'The device found that the data is not an ESP application image.',
  WRONG_CHIP: 'The image was built for a different chip than the device has.',
  DOWNGRADE: 'The image\'s secure_version is lower than the running app\'s, and the device refuses downgrades.',
  NO_SESSION: 'The device has no update session (it was never begun, or it was aborted or expired).',
  OUT_OF_WINDOW: 'The device dropped data beyond its receive window or past the announced transfer size.',
  DUPLICATE: 'The device already had this data.',
  GAP: 'The device missed a chunk and asks for a resend from its expected offset.',
  EMPTY_WRITE: 'The device got a data write without payload.',
  OVERSIZED: 'The device got a data payload larger than the agreed chunk size.',
  DECODE_FAILED: 'The compressed stream is corrupt or decodes to more bytes than the image size.',
  SIZE_MISMATCH: 'The decoded image size differs from the announced image size.',
  HASH_MISMATCH: 'The SHA-256 of the received image differs from the announced one; nothing was activated.',
  VALIDATION_FAILED: 'The device rejected the image at the end (format, checksum or signature invalid).',
  FLASH_ERROR: 'Erasing or writing the device\'s flash failed.',
  SET_BOOT_FAILED: 'The device could not set the new boot partition.',
  NOT_PENDING: 'The running image is not waiting for confirmation, so it cannot be confirmed or rolled back.',
  NO_ROLLBACK_IMAGE: 'The device has no valid previous image to roll back to.',
  SESSION_TIMEOUT: 'The kept update session expired before the client came back.',
  ABORTED: 'The update session was aborted by the client.',
  BAD_PARAMETER: 'The device rejected a parameter (chunk size 0, unknown flag bits or image size 0).',
  DIAGNOSTICS_FAILED: 'The new image failed its first-boot diagnostics.',
  ROLLED_BACK: 'The new image was rolled back to the previous one.',
  WRONG_CHIP_REVISION: 'The image does not support this device\'s chip revision (its min/max_chip_rev_full exclude it); nothing was written.',
  NO_MEMORY: 'The device could not reserve the memory an update session needs; nothing was erased.',
  NOT_PROVISIONED: 'The device has no session key and no release key, so it refuses updates and commands: provision it first.',
  MANIFEST_REQUIRED: 'The device only accepts updates with a signed manifest, and none was sent; nothing was erased.',
  MANIFEST_INVALID: 'The device rejected the manifest (format, length, unknown key_id or wrong signature); nothing was erased.',
  MANIFEST_MISMATCH: 'The manifest does not match the image, the chip or this device (or the image\'s version, project or secure_version differ from it); nothing was written.',
  RELEASE_TOO_OLD: 'The manifest\'s release is older than the device\'s release floor; nothing was erased.',
  BASE_MISMATCH: 'The delta patch was made for another base image than the one the device runs; nothing was erased.',
  PATCH_INVALID: 'The delta patch is malformed (it reads outside the base image, produces more than the image size, or a record is corrupt).',
  INTERNAL: 'The device hit an unexpected internal failure, or an update was interrupted while in progress.',
};

const ERROR_NAME_BY_CODE: ReadonlyMap<number, ErrorName> = new Map(
  (Object.keys(ErrorCode) as ErrorName[]).map((name) => [ErrorCode[name], name]),
);

/** The §9 name of a code, or `UNKNOWN_0x..` for a code this client does not know. */
export function errorName(code: number): string {
  return ERROR_NAME_BY_CODE.get(code) ?? `UNKNOWN_0x${code.toString(16).padStart(2, '0')}`;
}

export function isKnownErrorCode(code: number): boolean {
  return ERROR_NAME_BY_CODE.has(code);
}

/** The human sentence for a device error code. */
export function errorSentence(code: number): string {
  const name = ERROR_NAME_BY_CODE.get(code);
  return name ? ERROR_SENTENCES[name] : `The device reported an error code this client does not know (${code}).`;
}

/** OtaError code for a device-reported error: `DEVICE_<NAME>`. */
export function deviceErrorCode(code: number): string {
  return `DEVICE_${errorName(code)}`;
}

// §5 caps bits (CHALLENGE response and Status)
export const Caps = {
  DEFLATE: 1 << 0,
  /** A session key (device key, or the legacy fleet key) is provisioned: BEGIN and tagged commands need a tag. */
  SESSION_KEY_REQUIRED: 1 << 1,
  /** The earlier name of bit1 (same value). */
  FLEET_KEY_REQUIRED: 1 << 1,
  RESUME: 1 << 2,
  HOST_CONFIRM: 1 << 3,
  ANTI_DOWNGRADE: 1 << 4,
  SIGNED_IMAGES: 1 << 5,
  /** At least one release key is provisioned: BEGIN needs a signed manifest (§12). */
  MANIFEST_REQUIRED: 1 << 6,
  /** Encoding 2 (delta patch, §13) supported. */
  DELTA: 1 << 7,
  /** The provisioning window is open: PROVISION is accepted. */
  PROVISIONING_WINDOW: 1 << 8,
  /** Development build that allows unauthenticated updates (opt-out of secure by default). */
  UNAUTHENTICATED_ALLOWED: 1 << 9,
  /** No session key and no release key (and not bit9): BEGIN and tagged commands get NOT_PROVISIONED. */
  NOT_PROVISIONED: 1 << 10,
  /** Revision 2.2: the MANIFEST command (op 0x09) is understood (§2.4). */
  MANIFEST_COMMAND: 1 << 11,
  /**
   * Revision 2.3: the manifest may be staged on Data (offsets with bit31 set) and committed with an
   * empty MANIFEST (§2.4, §3); a device with this bit also has bit11.
   */
  MANIFEST_STAGING: 1 << 12,
} as const;

/** The caps bits by name (§5); `fleetKeyRequired` is the earlier name of `sessionKeyRequired`. */
export interface Capabilities {
  deflate: boolean;
  sessionKeyRequired: boolean;
  fleetKeyRequired: boolean;
  resume: boolean;
  hostConfirm: boolean;
  antiDowngrade: boolean;
  signedImages: boolean;
  manifestRequired: boolean;
  delta: boolean;
  provisioningWindow: boolean;
  unauthenticatedAllowed: boolean;
  notProvisioned: boolean;
  manifestCommand: boolean;
  manifestStaging: boolean;
}

export function decodeCaps(caps: number): Capabilities {
  const bit = (mask: number) => (caps & mask) !== 0;
  return {
    deflate: bit(Caps.DEFLATE),
    sessionKeyRequired: bit(Caps.SESSION_KEY_REQUIRED),
    fleetKeyRequired: bit(Caps.SESSION_KEY_REQUIRED),
    resume: bit(Caps.RESUME),
    hostConfirm: bit(Caps.HOST_CONFIRM),
    antiDowngrade: bit(Caps.ANTI_DOWNGRADE),
    signedImages: bit(Caps.SIGNED_IMAGES),
    manifestRequired: bit(Caps.MANIFEST_REQUIRED),
    delta: bit(Caps.DELTA),
    provisioningWindow: bit(Caps.PROVISIONING_WINDOW),
    unauthenticatedAllowed: bit(Caps.UNAUTHENTICATED_ALLOWED),
    notProvisioned: bit(Caps.NOT_PROVISIONED),
    manifestCommand: bit(Caps.MANIFEST_COMMAND),
    manifestStaging: bit(Caps.MANIFEST_STAGING),
  };
}

/** §5 `last.flags` bits. */
export const LastFlags = {
  ROLLED_BACK: 1 << 0,
  DIAGNOSTICS_RAN: 1 << 1,
  DIAGNOSTICS_PASSED: 1 << 2,
  CONFIRMED: 1 << 3,
  RECORD_VALID: 1 << 4,
  /** END succeeded and the boot partition was switched to the image. */
  INSTALLED: 1 << 5,
  /** The device restarted between writing a record and completing the step it records. */
  INTERRUPTED: 1 << 6,
  /** The running image was installed by another installer (seed, Wi-Fi OTA, NVS erased). */
  OTHER_INSTALLER: 1 << 7,
} as const;

/** §5 `last.result` when no update was recorded. */
export const LAST_RESULT_NONE = 0xff;

/** The Status format this protocol revision writes (§5), and its size. */
export const STATUS_FORMAT = 2;
export const STATUS_SIZE = 252;
/** Format 1 (232 bytes, without the fields from update_partition_size on); clients still decode it. */
export const STATUS_FORMAT_1 = 1;
export const STATUS_FORMAT_1_SIZE = 232;
/** Size of each Status format by format number. */
export const STATUS_SIZE_BY_FORMAT: Readonly<Record<number, number>> = { 1: STATUS_FORMAT_1_SIZE, 2: STATUS_SIZE };

// §12 signed update manifest
export const MANIFEST_MAGIC = 'BOM1';
export const MANIFEST_FORMAT = 1;
/** Bytes before the device list; the signature follows the list. */
export const MANIFEST_HEADER_SIZE = 160;
export const MANIFEST_SIGNATURE_SIZE = 64;
/** Length of a manifest without devices (header + signature); each device adds DEVICE_ID_SIZE. */
export const MANIFEST_MIN_SIZE = MANIFEST_HEADER_SIZE + MANIFEST_SIGNATURE_SIZE;
export const MANIFEST_MAX_DEVICES = 32;
/** The largest manifest (224 + 6 * 32 = 416 bytes): the size of the device's staging buffer (§3). */
export const MANIFEST_MAX_SIZE = MANIFEST_MIN_SIZE + DEVICE_ID_SIZE * MANIFEST_MAX_DEVICES;
/** Release public keys: key_id 0..3, uncompressed SEC1 P-256 points. */
export const RELEASE_KEY_SLOTS = 4;
export const RELEASE_PUBLIC_KEY_SIZE = 65;

/** §5 ota_state values, indexed by code. */
/** ota_state of an image (esp_ota_img_states_t) as the library names it. */
export type OtaState = 'new' | 'pending-verify' | 'valid' | 'invalid' | 'aborted' | 'undefined';

export const OTA_STATE_NAMES: readonly OtaState[] = ['new', 'pending-verify', 'valid', 'invalid', 'aborted', 'undefined'];
export const OtaStateCode = { NEW: 0, PENDING_VERIFY: 1, VALID: 2, INVALID: 3, ABORTED: 4, UNDEFINED: 5 } as const;

export type ConfirmPolicy = 'auto' | 'host';
export const CONFIRM_POLICY_NAMES: readonly ConfirmPolicy[] = ['auto', 'host'];

export type SessionState = 'idle' | 'receiving' | 'suspended' | 'finishing';
export const SESSION_STATE_NAMES: readonly SessionState[] = ['idle', 'receiving', 'suspended', 'finishing'];
export const SessionStateCode = { IDLE: 0, RECEIVING: 1, SUSPENDED: 2, FINISHING: 3 } as const;

/** ESP image header chip ids (§5 chip_id): one table, kept with the image format. */
export { CHIP_IDS, chipNameFromId } from '../image/chips';

// §8 advertising
export const ESPRESSIF_COMPANY_ID = 0x02e5;
export const ADV_MARKER_V2 = 0xb2;
export const MANUFACTURER_DATA_SIZE = 11;
export const AdvFlags = {
  OTA_STATE_MASK: 0x07,
  ROLLED_BACK: 1 << 3,
  DIAGNOSTICS_FAILED: 1 << 4,
  SESSION_ACTIVE: 1 << 5,
  HOST_POLICY: 1 << 6,
  /** Session key required (caps bit1). */
  SESSION_KEY_REQUIRED: 1 << 7,
  /** The earlier name of bit7 (same value). */
  FLEET_KEY_REQUIRED: 1 << 7,
} as const;

// §10 device defaults
export const DeviceDefaults = {
  CHUNK_MAX: 508,
  WINDOW: 16384,
  ACK_INTERVAL: 4096,
  RESUME_TIMEOUT_MS: 60000,
} as const;

// §4.6 / shared/seed/seed-protocol.md: the seed firmware (legacy)
/** The seed's source comment says …-244a…, the registered UUID is …-144a…: match both. */
export const LEGACY_SERVICE_UUIDS: readonly string[] = ['d6f1d96d594c4c53b1c6144a1dfde6d8', 'd6f1d96d594c4c53b1c6244a1dfde6d8'];
export const LEGACY_CONTROL_UUID = '7ad671aa21c046a4b722270e3ae3d830';
export const LEGACY_DATA_UUID = '234088881f404cd89b89ca8d45f8a5b0';
export const LegacyOp = {
  NOP: 0x00,
  REQUEST: 0x01,
  REQUEST_ACK: 0x02,
  REQUEST_NAK: 0x03,
  DONE: 0x04,
  DONE_ACK: 0x05,
  DONE_NAK: 0x06,
} as const;
/** The seed's data buffer: larger packets fail every write. */
export const LEGACY_MAX_PACKET = 512;
/** The seed restarts this long after DONE_ACK. */
export const LEGACY_RESTART_DELAY_MS = 500;
