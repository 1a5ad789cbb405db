/*
 * ble_ota_port.h — what the portable BLE OTA core needs from its platform.
 *
 * The core (firmware/components/ble_ota/core) is plain C with no ESP-IDF or NimBLE include. Everything
 * platform-specific goes through one table of function pointers, ble_ota_port_t, filled in by a port:
 *   - ESP-IDF port (port/esp_idf): esp_ota_*, esp_partition_*, NVS, mbedTLS, ROM miniz tinfl, esp_timer,
 *     a writer task;
 *   - host port (firmware/host): simulated flash + NVS in files, zlib, its own SHA-256.
 *
 * Threading model (why the core is split in two halves):
 *   BLE side  — ble_ota_core_on_*() and ble_ota_core_read_status()/build_mfg_data() are called from the
 *               BLE host task (NimBLE access/GAP callbacks). They only parse, check and copy Data
 *               payloads into the core's ring buffer (its size is the window). They never touch flash.
 *   Writer    — ble_ota_core_writer_run() takes bytes out of the ring, inflates, hashes, checks the image
 *               header and calls the ota_* functions below (erase/write/end/set_boot are slow). The port
 *               calls it from a dedicated task after writer_kick() (ESP-IDF), or synchronously from its
 *               main loop (host). A DATA_ACK only covers bytes the writer has taken out of the ring, so
 *               the device never acknowledges bytes it could not queue for flash.
 *   Timer     — ble_ota_core_on_timer() after timer_arm() expires (esp_timer task / host virtual clock).
 * The core serialises these contexts with lock()/unlock() (not recursive). While holding the lock it
 * calls only now_ms, timer_arm, writer_kick, random, digest_* (BEGIN's manifest hash),
 * inflate_start/inflate_free (memory only: BEGIN reserves a session's buffers before it is accepted),
 * ota_target and log; these must not call
 * back into the core. Everything else (ota_*, app_*, kv_*, notify, restart) is called without the lock
 * and may block or take other locks. Flash and eFuse work (erase/write, esp_ota_end, set boot, confirm,
 * the rollback check, update record writes, the reboot) runs in the writer context only (and in
 * ble_ota_core_init, before the BLE stack starts), never in the BLE host task: on the chip an erase or
 * program stops the cache, and with it the NimBLE host task, for its whole duration. The BLE side calls
 * app_state() (a read of otadata) without the lock to see the OTA state fresh.
 *
 * Unless stated otherwise functions return 0 on success and a negative value on failure, and the core
 * maps failures to the protocol error codes (docs/PROTOCOL.md §9).
 */
#ifndef BLE_OTA_PORT_H
#define BLE_OTA_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Connection handle as given by the BLE stack (NimBLE conn_handle). */
typedef uint16_t ble_ota_conn_t;
/** "No connection" / "every subscribed connection" (status notifications). */
#define BLE_OTA_CONN_NONE ((ble_ota_conn_t)0xFFFF)

/** Characteristics the core notifies on. */
typedef enum {
    BLE_OTA_CHR_CONTROL = 0, /**< response/ACK/NAK to one connection (conn argument) */
    BLE_OTA_CHR_STATUS = 1,  /**< the 252-byte status; conn = BLE_OTA_CONN_NONE: every subscriber.
                                  Also the hint to refresh the advertisement (ble_ota_core_build_mfg_data). */
} ble_ota_chr_t;

/** OTA state of an app image; values equal ESP-IDF esp_ota_img_states_t order used by PROTOCOL.md §5. */
typedef enum {
    BLE_OTA_IMG_NEW = 0,
    BLE_OTA_IMG_PENDING_VERIFY = 1,
    BLE_OTA_IMG_VALID = 2,
    BLE_OTA_IMG_INVALID = 3,
    BLE_OTA_IMG_ABORTED = 4,
    BLE_OTA_IMG_UNDEFINED = 5,
} ble_ota_img_state_t;

/** Result of ota_end(): why the platform refused the image (mapped to VALIDATION_FAILED / FLASH_ERROR). */
typedef enum {
    BLE_OTA_END_OK = 0,
    BLE_OTA_END_INVALID_IMAGE = -1, /**< format, checksum, appended SHA-256 or signature wrong */
    BLE_OTA_END_FLASH_ERROR = -2,   /**< a pending write failed */
} ble_ota_end_result_t;

/** Facts about the running app, read once at init (esp_app_get_description, esp_ota_get_running_partition,
 *  esp_partition_get_sha256, esp_reset_reason). Strings are NUL-terminated. */
typedef struct {
    char version[33];
    char project_name[33];
    char idf_version[33];
    uint32_t secure_version;
    uint16_t chip_id;            /**< ESP image chip id: esp32 0, s2 2, c3 5, s3 9, c2 12, c6 13, h2 16, p4 18 */
    uint8_t running_sha256[32];  /**< esp_partition_get_sha256 of the running app partition */
    char partition_label[17];    /**< e.g. "ota_0" */
    uint8_t reset_reason;        /**< esp_reset_reason_t value */
    uint16_t chip_rev_full;      /**< efuse_hal_chip_revision(): major * 100 + minor */
    bool ignore_max_chip_rev;    /**< efuse_hal_get_disable_wafer_version_major(): max_chip_rev_full not enforced */
    uint8_t device_id[6];        /**< esp_read_mac(ESP_MAC_BASE): identity for per-device keys and allow-lists */
    uint32_t running_image_len;  /**< length of the running image as esp_image_verify reports it (header through
                                      the checksum, plus the appended SHA-256 when hash_appended): the base
                                      of a delta patch (0: unknown, no delta) */
} ble_ota_app_info_t;

/** esp_reset_reason_t ESP_RST_DEEPSLEEP: a wake from deep sleep is not counted as a boot. */
#define BLE_OTA_RESET_DEEPSLEEP 8

/** Inflate step result. */
typedef enum {
    BLE_OTA_INFLATE_MORE = 0,  /**< call again (more input needed, or more output pending) */
    BLE_OTA_INFLATE_DONE = 1,  /**< the zlib stream ended (adler32 checked); all output has been returned */
    BLE_OTA_INFLATE_ERROR = -1 /**< corrupt stream */
} ble_ota_inflate_result_t;

typedef struct ble_ota_port {
    void *ctx; /**< passed back as the first argument of every function */

    /* ---- serialisation between BLE, writer and timer contexts (may be no-ops on a single thread) ---- */
    void (*lock)(void *ctx);
    void (*unlock)(void *ctx);

    /* ---- writer context ---- */
    /** Bytes were queued for the writer: make ble_ota_core_writer_run() run soon, in the writer context.
     *  Must NOT call it from inside writer_kick (the caller holds the core lock). Give a semaphore / set a flag. */
    void (*writer_kick)(void *ctx);

    /* ---- OTA partition (esp_ota_* semantics). Called from the writer context only, except
     *      ota_target() which is also called on the BLE side (BEGIN: cheap, no flash access). ---- */
    /** Next update partition (esp_ota_get_next_update_partition): its size and label. */
    int (*ota_target)(void *ctx, uint32_t *partition_size, char label[17]);
    /** esp_ota_begin on the target for an image of image_size bytes. Called only after the image header
     *  passed the core's early checks, so nothing is erased for a rejected image. May erase lazily. */
    int (*ota_begin)(void *ctx, uint32_t image_size);
    /** Write len decoded image bytes at image offset (offsets are sequential from 0; the port erases what
     *  the write needs first). Blocking is fine here. */
    int (*ota_write)(void *ctx, uint32_t offset, const uint8_t *data, size_t len);
    /** Optional (NULL: none). The writer has nothing else to do during a transfer: erase one more unit ahead
     *  of the write position. Returns 1 when it erased (the core looks at its ring, then asks again), 0
     *  when nothing is left to erase ahead (or not now), negative on a flash error (the write that needs
     *  the range will fail then). */
    int (*ota_erase_ahead)(void *ctx);
    /** esp_ota_end: flush, then validate the whole image (magic, segments, checksum, appended SHA-256,
     *  chip id, signature when enabled). Returns a ble_ota_end_result_t. Ends the OTA handle either way.
     *  A port with nothing to flush may close the handle without validating (esp_ota_abort): ota_set_boot
     *  validates the same way before it switches. */
    int (*ota_end)(void *ctx);
    /** Optional (NULL: no delta updates, caps bit7 clear). Read len (>= 1) bytes of the running image at
     *  offset into dst (offset + len <= app_info.running_image_len): the base of a delta patch
     *  (esp_partition_read of the running partition). Writer context, lock not held. */
    int (*base_read)(void *ctx, uint32_t offset, uint8_t *dst, size_t len);
    /** esp_ota_abort: drop the handle of a begun update (no-op when none). */
    void (*ota_abort)(void *ctx);
    /** esp_ota_set_boot_partition(target): validates the image (BLE_OTA_END_INVALID_IMAGE when it does not),
     *  then switches (other failures: any other non-zero). The new image then boots as NEW -> PENDING_VERIFY. */
    int (*ota_set_boot)(void *ctx);

    /* ---- running app ---- */
    void (*app_info)(void *ctx, ble_ota_app_info_t *out);
    /** esp_ota_get_state_partition(running). Returns a ble_ota_img_state_t. */
    int (*app_state)(void *ctx);
    /** esp_ota_mark_app_valid_cancel_rollback. */
    int (*app_mark_valid)(void *ctx);
    /** true when another valid app exists to roll back to (esp_ota_check_rollback_is_possible). */
    bool (*app_rollback_possible)(void *ctx);
    /** esp_ota_mark_app_invalid_rollback_and_reboot. On the device it does not return on success; a
     *  port that simulates the reboot (host) returns 0 and reboots after the current core call returns.
     *  The core does nothing more after a 0 return. */
    int (*app_rollback_and_reboot)(void *ctx);
    /** esp_restart(). Same return convention as app_rollback_and_reboot. */
    void (*restart)(void *ctx);

    /* ---- persistent key/value (NVS namespace "ble_ota"). Keys used: "record" (update record, core's
     *      own serialisation, < 128 bytes), "device_key" (32 bytes, per-device session key: factory or
     *      PROVISION), "fleet_key" (32 bytes, legacy shared key, read when device_key is absent),
     *      "rel_key0".."rel_key3" (65-byte release public keys), "rel_floor" (u32 little-endian). ---- */
    /** Read up to *len bytes; sets *len to the stored size. Returns -1 when the key does not exist. */
    int (*kv_get)(void *ctx, const char *key, void *buf, size_t *len);
    /** Store and commit. */
    int (*kv_set)(void *ctx, const char *key, const void *buf, size_t len);

    /* ---- crypto ---- */
    /** Cryptographically strong random bytes (esp_fill_random). */
    void (*random)(void *ctx, uint8_t *buf, size_t len);
    /** Start a SHA-256 (key == NULL) or HMAC-SHA256 (key != NULL) computation. Returns a handle or NULL. */
    void *(*digest_start)(void *ctx, const uint8_t *key, size_t key_len);
    void (*digest_update)(void *ctx, void *handle, const uint8_t *data, size_t len);
    /** Write the 32-byte result to out (out == NULL: discard) and free the handle. */
    void (*digest_finish)(void *ctx, void *handle, uint8_t out[32]);
    /** ECDSA P-256 verify: pubkey = uncompressed SEC1 point (65 bytes), hash = SHA-256 of the signed
     *  bytes, sig = r || s (32 bytes each, big-endian). Returns 0 when the signature is valid. Memory
     *  and CPU only (no flash): the core calls it in the writer context, lock not held, as a session's
     *  first job (tens to ~134 ms on chips without ECC hardware: never on the BLE side). */
    int (*ecdsa_p256_verify)(void *ctx, const uint8_t pubkey[65], const uint8_t hash[32], const uint8_t sig[64]);

    /* ---- inflate (zlib stream, RFC 1950; tinfl-like streaming) ---- */
    /** New decoder (32 KiB dictionary). NULL when out of memory. */
    void *(*inflate_start)(void *ctx);
    /** Feed up to in_len input bytes; *consumed = input bytes used. The decoder returns output it produced
     *  by pointing *out at its own buffer (valid until the next call) with *out_len bytes. The core calls
     *  again, with the remaining input or with in_len 0, until the call consumes nothing and produces
     *  nothing, or returns DONE/ERROR. Returns a ble_ota_inflate_result_t. */
    int (*inflate_step)(void *ctx, void *handle, const uint8_t *in, size_t in_len, size_t *consumed,
                        const uint8_t **out, size_t *out_len);
    void (*inflate_free)(void *ctx, void *handle);

    /* ---- time ---- */
    /** Monotonic milliseconds. */
    uint32_t (*now_ms)(void *ctx);
    /** One-shot timer: call ble_ota_core_on_timer() after delay_ms; re-arming replaces the previous
     *  deadline; delay_ms == 0 cancels. */
    void (*timer_arm)(void *ctx, uint32_t delay_ms);

    /* ---- BLE ---- */
    /** Send a notification. Control: to conn only (ignore when not subscribed or gone); at most 20 bytes,
     *  so it fits ATT MTU 23. Status: every subscriber (conn = BLE_OTA_CONN_NONE), the whole value; send
     *  each link its first ATT MTU - 3 bytes (clients read Status). Called without the core lock held. */
    void (*notify)(void *ctx, ble_ota_conn_t conn, ble_ota_chr_t chr, const uint8_t *data, size_t len);

    /* ---- provisioning (may be NULL: never) ---- */
    /** The documented physical action was done at this boot (ESP: CONFIG_BLE_OTA_PROVISION_GPIO held low at
     *  reset). Read once by ble_ota_core_init: PROVISION is then accepted for cfg.provision_window_ms. */
    bool (*provision_requested)(void *ctx);

    /* ---- optional diagnostics text (may be NULL) ---- */
    void (*log)(void *ctx, const char *msg);
} ble_ota_port_t;

/** Where a port's erasing for an image of image_size bytes ends: the image rounded up to a 4 KiB sector,
 *  or to the 64 KiB block when the image needs 4 or more sectors of its last block (one block erase,
 *  ~150 ms typical, is then faster than the sectors, ~45 ms each) and that block lies inside the
 *  partition. The bytes past the image belong to no image (esp_ota_begin with OTA_SIZE_UNKNOWN erases the
 *  whole slot). Both ports erase up to here (ESP-IDF port and the host twin). */
uint32_t ble_ota_erase_end(uint32_t image_size, uint32_t partition_size);

#ifdef __cplusplus
}
#endif
#endif /* BLE_OTA_PORT_H */
