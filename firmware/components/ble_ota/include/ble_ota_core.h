/*
 * ble_ota_core.h — the portable BLE OTA core (protocol v2, docs/PROTOCOL.md), as seen by the BLE binding.
 *
 * One device has one core (module-level state). The binding (NimBLE on ESP-IDF, the twin on the host)
 * forwards GAP/GATT events here; the core answers through the port (ble_ota_port.h). No ESP-IDF or NimBLE
 * types appear in this API.
 *
 * Lifecycle: ble_ota_core_config_default() -> adjust -> ble_ota_core_set_diagnostics() (optional) ->
 * ble_ota_core_init() (does the first-boot bookkeeping and runs the diagnostics hook on the first boot of
 * a new image) -> events -> ble_ota_core_deinit() (host only: simulated reboot).
 */
#ifndef BLE_OTA_CORE_H
#define BLE_OTA_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ble_ota_port.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BLE_OTA_PROTO_VERSION 2
#define BLE_OTA_STATUS_LEN 252      /**< Status characteristic value, format 2, PROTOCOL.md §5 */
#define BLE_OTA_MFG_DATA_LEN 11     /**< manufacturer specific data, company id first, PROTOCOL.md §8 */
#define BLE_OTA_CONTROL_MAX_LEN 512 /**< longest accepted Control value (long writes reassembled by the binding) */
#define BLE_OTA_MAX_CONNECTIONS 4   /**< connections tracked at once (more are answered BUSY) */

/** Error codes, PROTOCOL.md §9 (one enum for responses, NAKs and the update record). */
typedef enum {
    BLE_OTA_OK = 0,
    BLE_OTA_ERR_INVALID_STATE = 1,
    BLE_OTA_ERR_BUSY = 2,
    BLE_OTA_ERR_AUTH_REQUIRED = 3,
    BLE_OTA_ERR_AUTH_FAILED = 4,
    BLE_OTA_ERR_BAD_LENGTH = 5,
    BLE_OTA_ERR_UNKNOWN_OPCODE = 6,
    BLE_OTA_ERR_IMAGE_TOO_LARGE = 7,
    BLE_OTA_ERR_BAD_ENCODING = 8,
    BLE_OTA_ERR_NOT_APP_IMAGE = 9,
    BLE_OTA_ERR_WRONG_CHIP = 10,
    BLE_OTA_ERR_DOWNGRADE = 11,
    BLE_OTA_ERR_NO_SESSION = 12,
    BLE_OTA_ERR_OUT_OF_WINDOW = 13,
    BLE_OTA_ERR_DUPLICATE = 14,
    BLE_OTA_ERR_GAP = 15,
    BLE_OTA_ERR_EMPTY_WRITE = 16,
    BLE_OTA_ERR_OVERSIZED = 17,
    BLE_OTA_ERR_DECODE_FAILED = 18,
    BLE_OTA_ERR_SIZE_MISMATCH = 19,
    BLE_OTA_ERR_HASH_MISMATCH = 20,
    BLE_OTA_ERR_VALIDATION_FAILED = 21,
    BLE_OTA_ERR_FLASH_ERROR = 22,
    BLE_OTA_ERR_SET_BOOT_FAILED = 23,
    BLE_OTA_ERR_NOT_PENDING = 24,
    BLE_OTA_ERR_NO_ROLLBACK_IMAGE = 25,
    BLE_OTA_ERR_SESSION_TIMEOUT = 26,
    BLE_OTA_ERR_ABORTED = 27,
    BLE_OTA_ERR_BAD_PARAMETER = 28,
    BLE_OTA_ERR_DIAGNOSTICS_FAILED = 29,
    BLE_OTA_ERR_ROLLED_BACK = 30,
    BLE_OTA_ERR_WRONG_CHIP_REVISION = 31, /**< image min/max_chip_rev_full exclude this chip (with the header) */
    BLE_OTA_ERR_NO_MEMORY = 32,           /**< BEGIN refused: the session's buffers could not be reserved */
    BLE_OTA_ERR_NOT_PROVISIONED = 33,     /**< no session key, no release key, no opt-out */
    BLE_OTA_ERR_MANIFEST_REQUIRED = 34,   /**< release keys provisioned and BEGIN carries no manifest */
    BLE_OTA_ERR_MANIFEST_INVALID = 35,    /**< malformed manifest, unknown key_id or wrong signature */
    BLE_OTA_ERR_MANIFEST_MISMATCH = 36,   /**< manifest does not describe this image / chip / device */
    BLE_OTA_ERR_RELEASE_TOO_OLD = 37,     /**< manifest release below the device's release floor */
    BLE_OTA_ERR_BASE_MISMATCH = 38,       /**< delta base is not the running image */
    BLE_OTA_ERR_PATCH_INVALID = 39,       /**< malformed delta patch */
    BLE_OTA_ERR_INTERNAL = 0xFE,
} ble_ota_err_t;

/** ATT error the binding returns for a Control write the core refuses at ATT level. */
#define BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN 0x0D

typedef enum {
    BLE_OTA_POLICY_AUTO = 0, /**< first-boot diagnostics decide: pass -> valid, fail -> rollback + reboot */
    BLE_OTA_POLICY_HOST = 1, /**< stays PENDING_VERIFY until CONFIRM / ROLLBACK from the host */
} ble_ota_confirm_policy_t;

/** Session states as reported in Status (PROTOCOL.md §4/§5). */
typedef enum {
    BLE_OTA_SESSION_IDLE = 0,
    BLE_OTA_SESSION_RECEIVING = 1,
    BLE_OTA_SESSION_SUSPENDED = 2,
    BLE_OTA_SESSION_FINISHING = 3,
} ble_ota_session_state_t;

/** Settings; the ESP-IDF binding fills them from Kconfig (names in comments). */
typedef struct {
    uint16_t max_chunk;           /**< CONFIG_BLE_OTA_MAX_CHUNK (491): largest Data payload */
    uint32_t window;              /**< CONFIG_BLE_OTA_WINDOW_BYTES (16384): ring buffer size = window */
    uint32_t ack_interval;        /**< CONFIG_BLE_OTA_ACK_INTERVAL_BYTES (4096) */
    uint32_t resume_timeout_ms;   /**< CONFIG_BLE_OTA_RESUME_TIMEOUT_MS (60000); 0 = abort on disconnect */
    uint32_t reboot_delay_ms;     /**< CONFIG_BLE_OTA_REBOOT_DELAY_MS (300) */
    ble_ota_confirm_policy_t policy; /**< CONFIG_BLE_OTA_CONFIRM_POLICY_* */
    bool deflate;                 /**< CONFIG_BLE_OTA_DEFLATE */
    bool require_fleet_key;       /**< CONFIG_BLE_OTA_REQUIRE_FLEET_KEY: refuse BEGIN until a key exists */
    bool allow_downgrade;         /**< CONFIG_BLE_OTA_ALLOW_DOWNGRADE */
    bool signed_images;           /**< caps bit5: CONFIG_SECURE_SIGNED_ON_UPDATE (signed apps / secure boot) */
    bool allow_unauthenticated;   /**< CONFIG_BLE_OTA_INSECURE_ALLOW_UNAUTHENTICATED: without any key, accept
                                       updates and commands from anyone (development only; caps bit9) */
    uint32_t provision_window_ms; /**< CONFIG_BLE_OTA_PROVISION_WINDOW_S * 1000: how long PROVISION is accepted
                                       after a boot where port->provision_requested() said yes */
    /** Release public keys built into the firmware (CONFIG_BLE_OTA_RELEASE_KEYS_FILE: n x 65 bytes,
     *  key_id = index), used when NVS holds no rel_key0..3. Must outlive the core. */
    const uint8_t *embedded_release_keys;
    size_t embedded_release_keys_len;
} ble_ota_config_t;

/** Defaults of PROTOCOL.md §10 (auto policy, deflate on, no key required, no downgrade). */
void ble_ota_config_default(ble_ota_config_t *cfg);

/**
 * First-boot diagnostics hook: runs once, inside ble_ota_core_init(), on the first boot of a newly
 * installed image (the running image is PENDING_VERIFY, whoever installed it). Return true when the app works. Write a short human-readable result into msg
 * (NUL-terminated, at most msg_size bytes including the NUL; it lands in Status last.message).
 * Without a hook, diagnostics count as passed ("no diagnostics hook").
 */
typedef bool (*ble_ota_diagnostics_fn)(void *arg, char *msg, size_t msg_size);

/** Register the hook; call before ble_ota_core_init(). */
void ble_ota_core_set_diagnostics(ble_ota_diagnostics_fn fn, void *arg);

/**
 * Start the core: copies cfg and keeps the port pointer (it must outlive the core), loads the fleet key
 * and the update record, counts the boot, and on the first boot of a new image (running image
 * PENDING_VERIFY) runs the diagnostics and applies the confirm policy: auto + fail records the failure
 * and calls port->app_rollback_and_reboot; auto + pass waits for ble_ota_core_on_ble_ready() and then
 * confirms from the writer context. Returns 0, or -1 when out of memory / bad config.
 */
int ble_ota_core_init(const ble_ota_config_t *cfg, const ble_ota_port_t *port);

/** Free everything (RAM state is gone, as on a reboot). Used by the host port and tests. */
void ble_ota_core_deinit(void);

/* ---- BLE side (BLE host task) ---- */

/** A central connected (mtu = current ATT MTU, 23 before the exchange). */
void ble_ota_core_on_connect(ble_ota_conn_t conn, uint16_t mtu);
/** The ATT MTU of conn changed. */
void ble_ota_core_on_mtu(ble_ota_conn_t conn, uint16_t mtu);
/** The LL data length of conn changed: rx_octets = the largest LL PDU payload the device receives
 *  (27 until the first data length update). chunk_size fills whole PDUs of it (PROTOCOL.md §2.2).
 *  conn = BLE_OTA_CONN_NONE: the only connection (ignored when there are several). */
void ble_ota_core_on_data_len(ble_ota_conn_t conn, uint16_t rx_octets);
/**
 * The BLE stack is up and the device advertises (or a central connected): the BLE part of the
 * first-boot diagnostics passed. With the auto policy the image is confirmed only after this (from the
 * writer context); a device whose BLE never comes up is not confirmed and rolls back at the next reset.
 */
void ble_ota_core_on_ble_ready(void);
/** The link dropped: a receiving session of conn is kept (SUSPENDED) for resume_timeout_ms. */
void ble_ota_core_on_disconnect(ble_ota_conn_t conn);

/**
 * A write with response to Control (a long write already reassembled). Returns 0 (ATT success: the
 * command's result follows as a Control notification) or an ATT error code to return instead
 * (BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN for an empty value or one longer than BLE_OTA_CONTROL_MAX_LEN).
 */
int ble_ota_core_on_control_write(ble_ota_conn_t conn, const uint8_t *data, size_t len);

/** A write without response to Data: u32 offset + payload. Answers with DATA_ACK / DATA_NAK notifications. */
void ble_ota_core_on_data_write(ble_ota_conn_t conn, const uint8_t *data, size_t len);

/** Fill the Status value (PROTOCOL.md §5, format 2). Returns BLE_OTA_STATUS_LEN. */
size_t ble_ota_core_read_status(uint8_t buf[BLE_OTA_STATUS_LEN]);

/** Fill the manufacturer specific data of the scan response (PROTOCOL.md §8, company id 0x02E5 first).
 *  Returns BLE_OTA_MFG_DATA_LEN. Refresh the advertisement when a Status notification is sent. */
size_t ble_ota_core_build_mfg_data(uint8_t buf[BLE_OTA_MFG_DATA_LEN]);

/** Running app facts for Device Information (model = chip name, firmware revision = version). */
const ble_ota_app_info_t *ble_ota_core_app_info(void);

/** Chip name for an ESP image chip id ("esp32c3"), "unknown" otherwise. */
const char *ble_ota_chip_name(uint16_t chip_id);

/* ---- writer context ---- */

/** Take queued Data out of the ring buffer, inflate, hash, check the header, write flash; finish END;
 *  carry out CONFIRM / ROLLBACK / the auto confirm / a due reboot and persist the update record (all
 *  flash work of the core). Runs until there is nothing left to do. Call after port->writer_kick(). */
void ble_ota_core_writer_run(void);

/** true when the writer has work (host ports use it to drain synchronously). */
bool ble_ota_core_writer_pending(void);

/* ---- timer context ---- */

/** The one-shot timer armed with port->timer_arm() expired (resume timeout, delayed reboot). */
void ble_ota_core_on_timer(void);

/* ---- introspection (tests, logs) ---- */
ble_ota_session_state_t ble_ota_core_session_state(void);
/** caps bits of PROTOCOL.md §5. */
uint16_t ble_ota_core_caps(void);

#ifdef __cplusplus
}
#endif
#endif /* BLE_OTA_CORE_H */
