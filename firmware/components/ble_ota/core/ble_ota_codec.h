/*
 * Byte-level encoding of protocol v2 messages (docs/PROTOCOL.md §2, §3, §5, §8). Pure functions, no state:
 * the session code and the host tests (against docs/protocol-vectors.json) share them.
 */
#ifndef BLE_OTA_CODEC_H
#define BLE_OTA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLE_OTA_OP_CHALLENGE 0x01
#define BLE_OTA_OP_BEGIN 0x02
#define BLE_OTA_OP_END 0x03
#define BLE_OTA_OP_ABORT 0x04
#define BLE_OTA_OP_CONFIRM 0x05
#define BLE_OTA_OP_ROLLBACK 0x06
#define BLE_OTA_OP_REBOOT 0x07
#define BLE_OTA_OP_PROVISION 0x08
#define BLE_OTA_OP_MANIFEST 0x09   /* revision 2.2: the signed manifest alone, before BEGIN (§2.4) */
#define BLE_OTA_OP_RESPONSE_FLAG 0x80
#define BLE_OTA_OP_UNKNOWN_RSP 0xFF
#define BLE_OTA_OP_DATA_ACK 0xA0
#define BLE_OTA_OP_DATA_NAK 0xA1
#define BLE_OTA_OP_SESSION_ABORTED 0xA2

#define BLE_OTA_BEGIN_LEN 93        /* without a manifest; with one: 93 + manifest length (§B) */
#define BLE_OTA_BEGIN_MAC_OFFSET 1 /* the tag covers begin[1..76] (image_size..base_sha256) */
#define BLE_OTA_BEGIN_MAC_LEN 76
#define BLE_OTA_BEGIN_TAG_OFFSET 77
#define BLE_OTA_PROVISION_LEN 33   /* op + key[32] */
#define BLE_OTA_TAG_LEN 16
#define BLE_OTA_NONCE_LEN 16
#define BLE_OTA_TAGGED_CMD_LEN 17
#define BLE_OTA_END_LEN 2
#define BLE_OTA_DATA_HEADER_LEN 4
/* L2CAP (4) + ATT write command (3) + offset (4) around a Data chunk (PROTOCOL.md §2.2) */
#define BLE_OTA_DATA_FRAME_OVERHEAD 11
/* LL PDU payload before any data length update (Core spec: 27 octets) */
#define BLE_OTA_LL_DEFAULT_OCTETS 27
/* Every Control notification fits one notification at the default ATT MTU 23 (MTU - 3 = 20 bytes). */
#define BLE_OTA_NOTIFY_MAX 20
#define BLE_OTA_CHALLENGE_RSP_LEN 20 /* the longest: op, err, nonce[16], u16 caps */

#define BLE_OTA_ENCODING_RAW 0
#define BLE_OTA_ENCODING_DEFLATE 1
#define BLE_OTA_ENCODING_DELTA 2
#define BLE_OTA_BEGIN_FLAG_RESUME 0x01
#define BLE_OTA_BEGIN_FLAG_MANIFEST 0x02
#define BLE_OTA_END_FLAG_REBOOT 0x01

/* caps bits (§5) */
#define BLE_OTA_CAP_DEFLATE 0x0001
#define BLE_OTA_CAP_FLEET_KEY 0x0002
#define BLE_OTA_CAP_RESUME 0x0004
#define BLE_OTA_CAP_HOST_CONFIRM 0x0008
#define BLE_OTA_CAP_ANTI_DOWNGRADE 0x0010
#define BLE_OTA_CAP_SIGNED 0x0020
#define BLE_OTA_CAP_MANIFEST_REQUIRED 0x0040 /* >= 1 release key provisioned */
#define BLE_OTA_CAP_DELTA 0x0080             /* encoding 2 (not yet: always 0) */
#define BLE_OTA_CAP_PROVISION_WINDOW 0x0100  /* PROVISION accepted now */
#define BLE_OTA_CAP_UNAUTHENTICATED 0x0200   /* development opt-out: no key, no manifest needed */
#define BLE_OTA_CAP_NOT_PROVISIONED 0x0400   /* no session key, no release key, no opt-out */
#define BLE_OTA_CAP_MANIFEST_CMD 0x0800      /* MANIFEST (op 0x09) understood (revision 2.2) */
#define BLE_OTA_CAP_MANIFEST_STAGING 0x1000  /* manifest staged on Data, MANIFEST 0x09 alone commits (2.3) */

/* Data offsets with bit31 are manifest staging writes (revision 2.3): 0x80000000 | manifest_offset. */
#define BLE_OTA_STAGING_OFFSET_FLAG 0x80000000u
/* MANIFEST 0x09 alone: commit the bytes this connection staged on Data. */
#define BLE_OTA_MANIFEST_COMMIT_LEN 1

/* Signed update manifest "BOM1" (§D) */
#define BLE_OTA_MANIFEST_MAGIC "BOM1"
#define BLE_OTA_MANIFEST_FORMAT 1
#define BLE_OTA_MANIFEST_FIXED_LEN 160  /* bytes before the device ids */
#define BLE_OTA_MANIFEST_SIG_LEN 64     /* r || s, big-endian */
#define BLE_OTA_MANIFEST_MIN_LEN (BLE_OTA_MANIFEST_FIXED_LEN + BLE_OTA_MANIFEST_SIG_LEN)
#define BLE_OTA_MANIFEST_MAX_DEVICES 32
#define BLE_OTA_MANIFEST_MAX_LEN (BLE_OTA_MANIFEST_MIN_LEN + 6 * BLE_OTA_MANIFEST_MAX_DEVICES)
#define BLE_OTA_MAX_RELEASE_KEYS 4
#define BLE_OTA_RELEASE_KEY_LEN 65      /* uncompressed SEC1 point 0x04 || X || Y */
#define BLE_OTA_DEVICE_ID_LEN 6

/* last.flags bits (§5) */
#define BLE_OTA_LAST_ROLLED_BACK 0x01
#define BLE_OTA_LAST_DIAG_RAN 0x02
#define BLE_OTA_LAST_DIAG_PASSED 0x04
#define BLE_OTA_LAST_CONFIRMED 0x08
#define BLE_OTA_LAST_RECORD_VALID 0x10
#define BLE_OTA_LAST_INSTALLED 0x20       /* END succeeded and the boot partition was switched */
#define BLE_OTA_LAST_INTERRUPTED 0x40     /* restarted between writing a record and completing its step */
#define BLE_OTA_LAST_OTHER_INSTALLER 0x80 /* the running image was installed by another installer */

#define BLE_OTA_COMPANY_ID 0x02E5
#define BLE_OTA_ADV_MARKER 0xB2

typedef struct {
    uint32_t image_size;
    uint32_t transfer_size;
    uint8_t encoding;
    uint8_t flags;
    uint16_t chunk_size;
    uint8_t sha256[32];
    uint8_t base_sha256[32];
    uint8_t tag[16];
    /* flags bit1: the manifest bytes follow the 93 fixed ones (points into the decoded buffer) */
    const uint8_t *manifest;
    uint16_t manifest_len;
} ble_ota_begin_req_t;

/** Decoded manifest (§D); device_ids and signature point into the buffer it was decoded from. */
typedef struct {
    uint8_t key_id;
    uint16_t length;
    uint8_t image_sha256[32];
    uint32_t image_size;
    uint8_t base_sha256[32];
    uint32_t release;
    uint32_t secure_version;
    uint16_t chip_id;
    uint16_t device_count;
    char project_name[33];
    char app_version[33];
    uint32_t not_after;
    const uint8_t *device_ids;
    const uint8_t *signature;
} ble_ota_manifest_t;

/** Status characteristic fields (§5). Strings NUL-terminated here, NUL-padded on the wire. */
typedef struct {
    uint8_t format;
    uint8_t proto_version;
    uint16_t caps;
    uint8_t ota_state;
    uint8_t confirm_policy;
    uint8_t session_state;
    uint8_t reset_reason;
    uint16_t boot_count;
    uint16_t chip_id;
    uint32_t secure_version;
    uint32_t session_offset;
    char running_partition[17];
    char app_version[33];
    char project_name[33];
    char idf_version[33];
    uint8_t running_sha256[32];
    uint8_t last_result;
    uint8_t last_flags;
    uint8_t last_sha256[32];
    char last_message[33];
    /* format 2 */
    uint32_t update_partition_size;
    uint32_t release_floor;
    uint8_t device_id[6];
    uint8_t release_key_ids;
} ble_ota_status_t;

#define BLE_OTA_STATUS_FORMAT 2
#define BLE_OTA_STATUS_V1_LEN 232
#define BLE_OTA_STATUS_V2_LEN 252

/** Advertisement manufacturer data fields (§8). */
typedef struct {
    uint8_t flags;
    uint8_t sha_prefix[4];
    uint8_t version[3];
} ble_ota_adv_t;

/* little-endian helpers */
uint16_t ble_ota_get_u16(const uint8_t *p);
uint32_t ble_ota_get_u32(const uint8_t *p);
void ble_ota_put_u16(uint8_t *p, uint16_t v);
void ble_ota_put_u32(uint8_t *p, uint32_t v);

/** Decode a BEGIN command (op included). False (BAD_LENGTH) unless len is 93 without flags bit1, or
 *  93 + the manifest's own length field (>= 8 bytes of manifest) with bit1. */
bool ble_ota_decode_begin(const uint8_t *buf, size_t len, ble_ota_begin_req_t *out);
/** The manifest length rule (PROTOCOL.md §2.4): at least 8 bytes and exactly its own length field. */
bool ble_ota_check_manifest_len(const uint8_t *manifest, size_t len);
/** MANIFEST (op 0x09): true when len is 1 + the manifest's own length field (>= 8 bytes of manifest);
 *  *manifest / *manifest_len then point into buf. */
bool ble_ota_decode_manifest_cmd(const uint8_t *buf, size_t len, const uint8_t **manifest, uint16_t *manifest_len);
/** Encodes the 93 fixed bytes (a manifest, if any, is appended by the caller). */
size_t ble_ota_encode_begin(const ble_ota_begin_req_t *req, uint8_t out[BLE_OTA_BEGIN_LEN]);
/** Decode the manifest structure: magic, format, length == len, device_count <= 32. No signature check. */
bool ble_ota_decode_manifest(const uint8_t *buf, size_t len, ble_ota_manifest_t *out);
/** Bytes the signature covers: [0, 160 + 6n). */
size_t ble_ota_manifest_signed_len(const ble_ota_manifest_t *m);

/* Responses / notifications; each returns the encoded length. On err != 0 the fields are left out. */
size_t ble_ota_encode_challenge_rsp(uint8_t err, const uint8_t nonce[16], uint16_t caps, uint8_t *out);
size_t ble_ota_encode_begin_rsp(uint8_t err, uint16_t chunk, uint32_t window, uint32_t ack_interval,
                                uint32_t resume_offset, uint8_t *out);
size_t ble_ota_encode_end_rsp(uint8_t err, uint32_t image_size, uint8_t *out);
/** ABORT/CONFIRM/ROLLBACK/REBOOT responses (and any error-only response): op|0x80, err. */
size_t ble_ota_encode_simple_rsp(uint8_t op, uint8_t err, uint8_t *out);
size_t ble_ota_encode_unknown_rsp(uint8_t op, uint8_t *out);
size_t ble_ota_encode_data_ack(uint32_t next_offset, uint8_t *out);
size_t ble_ota_encode_data_nak(uint8_t err, uint32_t expected, uint8_t *out);
size_t ble_ota_encode_session_aborted(uint8_t err, uint8_t *out);

/** Format 2, 252 bytes (§C). */
size_t ble_ota_encode_status(const ble_ota_status_t *st, uint8_t out[252]);
/** Accepts format 1 (232 bytes, new fields zero) and format 2 (252 bytes). */
bool ble_ota_decode_status(const uint8_t *buf, size_t len, ble_ota_status_t *st);

size_t ble_ota_encode_mfg(const ble_ota_adv_t *adv, uint8_t out[11]);
/** "v1.2.3", "1.2.3-rc1" -> {1,2,3}; anything else (also a number > 254) -> {0xFF,0xFF,0xFF}, false. */
bool ble_ota_parse_version(const char *version, uint8_t out[3]);

#endif
