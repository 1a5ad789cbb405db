/* Core-internal state shared by the core's .c files (not part of the API). */
#ifndef BLE_OTA_INTERNAL_H
#define BLE_OTA_INTERNAL_H

#include "ble_ota_codec.h"
#include "ble_ota_core.h"
#include "ble_ota_patch.h"

/* Decoded bytes needed for the early checks: image header (24) + first segment header (8) + app
 * descriptor (256). PROTOCOL.md §4.1 step 3. */
#define BLE_OTA_HEADER_CHECK_LEN 288
#define BLE_OTA_WORK_LEN 1024 /* transfer bytes the writer takes out of the ring at a time */
#define BLE_OTA_OUTBOX_LEN 32
#define BLE_OTA_PATCH_OUT_LEN 512 /* new-image bytes the delta applier produces per call (base reads land here) */

/* Persisted update record (PROTOCOL.md §6). Each stage is written BEFORE the step it announces, so a
 * restart in the middle finds the stage and tells "interrupted" (flags bit6) from "not confirmed". */
typedef enum {
    REC_STAGE_DONE = 0,        /* nothing pending */
    REC_STAGE_IN_PROGRESS = 1, /* BEGIN accepted, END not reached */
    REC_STAGE_INSTALLED = 2,   /* image verified, boot switch next (flags bit5 once switched): waiting for
                                  the first boot of the new image in target_label */
    REC_STAGE_BOOTED = 3,      /* first-boot diagnostics done, image pending verify: a later boot
                                  elsewhere means rolled back */
    REC_STAGE_DIAGNOSING = 4,  /* first boot: diagnostics running */
    REC_STAGE_CONFIRMING = 5,  /* esp_ota_mark_app_valid_cancel_rollback running */
} rec_stage_t;
#define REC_STAGE_LAST REC_STAGE_CONFIRMING

typedef struct {
    bool valid;
    bool installed; /* flags bit5: the boot partition was switched to the image: boot_count counts */
    uint8_t result;
    uint8_t flags;  /* BLE_OTA_LAST_* without RECORD_VALID */
    uint8_t stage;
    uint16_t boot_count;
    uint8_t sha256[32];
    char message[33];
    char target_label[17];
    uint32_t release; /* manifest release of the image this record is about (0: none) */
} ota_record_t;

#define BLE_OTA_RECORD_BLOB_LEN 92
#define BLE_OTA_RECORD_V1_BLOB_LEN 88 /* before the release field: still read */
size_t ota_record_serialize(const ota_record_t *r, uint8_t out[BLE_OTA_RECORD_BLOB_LEN]);
bool ota_record_parse(const uint8_t *buf, size_t len, ota_record_t *r);

/** What a verified manifest promises about the image; checked again with the 288-byte header. */
typedef struct {
    bool present;
    /* BEGIN (or MANIFEST) checked everything but the signature (cheap checks only); the writer verifies
     * it: a staged manifest's at once, BEGIN's own as the session's first job; either way before the
     * session's first flash write (SESSION_ABORTED MANIFEST_INVALID). */
    bool verify_pending;
    bool signature_invalid; /* verified, and it did not verify (a staged manifest verified before BEGIN) */
    uint32_t verify_id;     /* which MANIFEST's verify this is (0: BEGIN's own manifest) */
    uint8_t key_id;
    uint8_t hash[32];      /* SHA-256 of the signed bytes */
    uint8_t signature[64];
    uint32_t release;
    uint32_t secure_version;
    char project_name[33];
    char app_version[33];
} manifest_expect_t;

/** A manifest sent alone with MANIFEST (op 0x09, PROTOCOL.md §2.4), waiting for its connection's BEGIN:
 *  what BEGIN must match, and the expectation the session then takes over. One slot for the device. */
typedef struct {
    bool present;
    ble_ota_conn_t conn;
    uint32_t image_size;
    uint8_t image_sha256[32];
    uint8_t base_sha256[32];
    manifest_expect_t expect;
} staged_manifest_t;

/** Manifest bytes staged on Data (offsets with bit31, revision 2.3, PROTOCOL.md §3) until this
 *  connection's MANIFEST `0x09` alone commits them. One buffer of the largest manifest for the device. */
typedef struct {
    bool owned;           /* `owner` wrote manifest offset 0 last; NimBLE connection handles start at 0 */
    bool broken;          /* a fragment out of order or past the buffer dropped the bytes: the commit fails */
    ble_ota_conn_t owner;
    uint16_t len;
    uint8_t bytes[BLE_OTA_MANIFEST_MAX_LEN];
} manifest_staging_t;

/** Early image checks on the first 288 decoded bytes against the running app and, when present, the
 *  manifest (MANIFEST_MISMATCH); returns a ble_ota_err_t. */
uint8_t ota_check_image_header(const uint8_t *hdr, const ble_ota_app_info_t *app, bool allow_downgrade,
                               const manifest_expect_t *manifest);

/** BEGIN's cheap manifest checks (PROTOCOL.md §D order, all but the signature) with the lock held, on the
 *  manifest BEGIN carries or else on the one conn staged with MANIFEST; fills *expect, whose signature the
 *  writer verifies (ota_verify_manifest) unless a staged verify already did. ble_ota_err_t. */
uint8_t ota_check_manifest(ble_ota_conn_t conn, const ble_ota_begin_req_t *req, manifest_expect_t *expect);
/** MANIFEST (lock held): the checks that need no BEGIN, then stores it for conn and queues its verify on
 *  the writer. ble_ota_err_t (the response's err). */
uint8_t ota_stage_manifest(ble_ota_conn_t conn, const uint8_t *raw, size_t len);
/** Drop conn's staged manifest (any connection's with BLE_OTA_CONN_NONE); lock held. */
void ota_unstage_manifest(ble_ota_conn_t conn);
/** A staging write of conn (lock held): manifest bytes at manifest_offset. True when it broke staging:
 *  answer DATA_NAK BAD_LENGTH with *nak_offset (0x80000000 | the staged length before it). */
bool ota_staging_write(ble_ota_conn_t conn, uint32_t manifest_offset, const uint8_t *p, size_t len, uint32_t *nak_offset);
/** MANIFEST `0x09` alone (lock held): conn's staged bytes, consumed whatever the commit's result, else
 *  NULL (nothing staged by conn, or its staging broke). Valid until the lock is released. */
const uint8_t *ota_staging_take(ble_ota_conn_t conn, size_t *len);
/** Drop conn's staged bytes (its link dropped, or it sent MANIFEST or BEGIN); lock held. */
void ota_staging_drop(ble_ota_conn_t conn);
/** Writer context, lock NOT held: verify a staged manifest whose verify is pending (true when it did);
 *  the verdict goes to the staged slot and to a session that took the manifest over meanwhile. */
bool ota_verify_staged_manifest(void);
/** ECDSA verify of a manifest BEGIN accepted (writer context, lock NOT held). True when valid. */
bool ota_verify_manifest(const manifest_expect_t *expect);
/** The device takes delta transfers (caps bit7). */
bool ota_delta_supported(void);

typedef struct {
    bool used;
    ble_ota_conn_t conn;
    uint16_t mtu;
    uint16_t rx_octets;            /* LL data length the device receives (27 until updated) */
    bool nonce_valid;
    uint8_t nonce[BLE_OTA_NONCE_LEN];
} conn_slot_t;

typedef struct {
    ble_ota_conn_t conn;
    ble_ota_chr_t chr;
    uint8_t len;
    uint8_t data[BLE_OTA_NOTIFY_MAX];
} outbox_msg_t;

typedef enum { REBOOT_NONE = 0, REBOOT_RESTART, REBOOT_ROLLBACK } reboot_action_t;

/* BLE-side view of the session; guarded by the port lock. */
typedef struct {
    bool live;                     /* RECEIVING / SUSPENDED / FINISHING */
    ble_ota_session_state_t state;
    ble_ota_conn_t owner;          /* connection of a RECEIVING / FINISHING session, NONE when suspended */
    uint32_t gen;                  /* identifies the session; the writer re-initialises when it changes */
    ble_ota_begin_req_t req;
    uint16_t chunk;
    uint32_t expected;             /* next transfer offset needed */
    uint32_t acked;                /* transfer bytes the writer took out of the ring ([acked, expected) queued) */
    uint32_t last_ack_sent;
    bool dup_nak_sent;
    bool gap_nak_sent;
    uint32_t resume_deadline;
    uint8_t end_flags;
    manifest_expect_t manifest;    /* what BEGIN's manifest said about the image */
    uint8_t *ring;                 /* window bytes; transfer offset x lives at ring[x % window]; reserved
                                      at BEGIN, freed when the session ends */
    void *reserved_sha;            /* reserved at BEGIN; the writer adopts them (NULL then) */
    void *reserved_inflate;
} session_t;

/* Writer-context state; only ble_ota_core_writer_run touches it. */
typedef struct {
    bool active;
    uint32_t gen;
    ble_ota_begin_req_t req;
    manifest_expect_t manifest;
    void *sha;
    void *inflate;
    bool inflate_done;
    ble_ota_patch_t patch;         /* encoding 2: applier state between the inflater and the writes (kept on resume) */
    bool ota_open;
    bool header_done;
    uint32_t decoded;
    uint8_t header[BLE_OTA_HEADER_CHECK_LEN];
    uint8_t work[BLE_OTA_WORK_LEN];
    uint8_t patch_out[BLE_OTA_PATCH_OUT_LEN];
} writer_t;

typedef struct {
    bool initialised;
    ble_ota_config_t cfg;
    const ble_ota_port_t *port;
    ble_ota_app_info_t app;
    uint8_t ota_state;
    bool has_key;                  /* session key: NVS device_key, else the legacy fleet_key */
    uint8_t key[32];
    uint8_t release_keys[BLE_OTA_MAX_RELEASE_KEYS][BLE_OTA_RELEASE_KEY_LEN];
    uint8_t release_key_mask;      /* bit i: release_keys[i] holds a key */
    uint32_t release_floor;        /* NVS rel_floor */
    bool provision_open;           /* the physical action was done at this boot */
    uint32_t provision_until;      /* now_ms deadline of the provisioning window */
    uint8_t provision_key[32];     /* PROVISION accepted, stored by the writer */
    ota_record_t rec;
    bool rec_dirty;
    conn_slot_t conns[BLE_OTA_MAX_CONNECTIONS];
    session_t s;
    uint32_t gen_counter;
    staged_manifest_t staged;      /* MANIFEST sent before BEGIN (§2.4) */
    manifest_staging_t staging;    /* its bytes staged on Data before the MANIFEST commit (§3) */
    uint32_t manifest_counter;     /* verify_id of the next staged manifest */
    writer_t w;
    reboot_action_t reboot;
    uint32_t reboot_deadline;
    bool reboot_due;               /* the reboot delay passed: the writer persists the record, then reboots */
    uint8_t pending_cmd;           /* CONFIRM / ROLLBACK accepted on the BLE side, carried out by the writer */
    ble_ota_conn_t pending_conn;
    bool confirm_after_ble;        /* auto policy, diagnostics passed: confirm once BLE is up */
    bool ble_ready;
    bool auto_confirm_due;
    outbox_msg_t outbox[BLE_OTA_OUTBOX_LEN];
    unsigned outbox_count;
    uint8_t last_status[BLE_OTA_STATUS_LEN];
    bool status_sent;
} ota_core_t;

extern ota_core_t g_ota;

/* helpers (ble_ota_core.c) */
void ota_lock(void);
void ota_unlock(void);
void ota_log(const char *msg);
/** Queue a Control notification (lock held); sent by ota_flush() after unlocking. */
void ota_emit(ble_ota_conn_t conn, const uint8_t *data, size_t len);
/** Send queued notifications and a Status notification when the status changed (lock NOT held). */
void ota_flush(void);
/** Recompute and arm the one-shot timer (lock held). */
void ota_rearm_timer(void);
/** End a live session from the BLE/timer side with a record result (lock held). */
void ota_session_end(uint8_t result, const char *message);
/** Free what BEGIN reserved and the writer has not adopted, and the ring (lock held). */
void ota_session_release(void);
void ota_record_set(uint8_t result, const char *message);
conn_slot_t *ota_conn_find(ble_ota_conn_t conn);
/** Persist the record when it changed (lock NOT held; writer context or init). */
void ota_persist_record(void);
void ota_build_status(ble_ota_status_t *st);
/** The provisioning window is open now (lock held). */
bool ota_provision_window_open(void);
/** A confirmed image: release_floor = max(release_floor, its manifest release); persisted (lock NOT held). */
void ota_raise_release_floor(uint32_t release);

#endif
