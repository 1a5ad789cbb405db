/* Test harness: one simulated device plus a scripted client that records every notification. */
#ifndef FW_TEST_HARNESS_H
#define FW_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ble_ota_codec.h"
#include "host_device.h"

#define NOTE_MAX 512

typedef struct {
    ble_ota_conn_t conn;
    uint8_t len;
    uint8_t data[BLE_OTA_NOTIFY_MAX];
} note_t;

typedef struct {
    host_device_t *dev;
    note_t notes[NOTE_MAX]; /* control notifications not yet consumed */
    unsigned note_count;
    unsigned status_notifications;
    size_t longest_control; /* longest Control notification the port was asked to send */
    unsigned reboots;
    char last_reboot[40];
    uint8_t nonce[16];
    bool has_key;
    uint8_t key[32];
} harness_t;

extern harness_t H;

/* Options with defaults: esp32c3, 512 KiB partitions, a synthetic running image v1.0.0. */
host_device_opts_t h_default_opts(void);
/** Start the device (memory-only storage unless opts->state_dir). Frees the previous one. */
bool h_start(host_device_opts_t *opts);
void h_stop(void);

void h_clear(void);
/** Pop the oldest control notification for conn; false when none. */
bool h_pop(ble_ota_conn_t conn, note_t *out);
/** Pop notifications until one whose first byte is op; false when none. */
bool h_find(ble_ota_conn_t conn, uint8_t op, note_t *out);
/** Error byte of the response to op (0xEE when there was none). */
uint8_t h_rsp_err(ble_ota_conn_t conn, uint8_t op);

int h_control(ble_ota_conn_t conn, const uint8_t *data, size_t len);
uint8_t h_challenge(ble_ota_conn_t conn);
/** Tagged command (tag from the fleet key when the harness has one and with_tag). Returns the err. */
uint8_t h_tagged(ble_ota_conn_t conn, uint8_t op, bool with_tag);

typedef struct {
    uint32_t image_size, transfer_size;
    uint8_t encoding, flags;
    uint16_t chunk;
    uint8_t sha256[32];
    uint8_t base_sha256[32];
    const uint8_t *manifest; /* appended after the 93 bytes (set flags bit1 yourself) */
    size_t manifest_len;
} begin_t;

begin_t h_begin_for(const uint8_t *image, size_t len, const uint8_t *transfer, size_t transfer_len, uint8_t encoding);
/** Sends BEGIN (CHALLENGE first when the device has a key and auth is set). Returns err; fills rsp. */
uint8_t h_begin(ble_ota_conn_t conn, const begin_t *b, bool auth, uint16_t *chunk, uint32_t *resume_offset);
/** Authenticated BEGIN of a raw transfer of the whole image. Returns err; fills chunk. */
uint8_t h_begin_image(ble_ota_conn_t conn, const uint8_t *image, size_t len, uint16_t *chunk);
void h_data(ble_ota_conn_t conn, uint32_t offset, const uint8_t *payload, size_t len);
/** Sends transfer[from..to) in chunks of chunk bytes; stops early on SESSION_ABORTED (returns its err). */
uint8_t h_send(ble_ota_conn_t conn, const uint8_t *transfer, uint32_t from, uint32_t to, uint16_t chunk);
/** END; returns the err of the END response (or 0xEE). */
uint8_t h_end(ble_ota_conn_t conn, uint8_t flags);
/** BEGIN + all data + END(reboot) + 400 ms; the error of whichever step failed (0 = installed). */
uint8_t h_update(const uint8_t *image, size_t len, bool deflate, uint8_t end_flags);
/** h_update(END with reboot) of a 70000-byte synthetic image of `version` (seed 4); the update's error. */
uint8_t h_install(const char *version, bool deflate);
/** The next DATA_NAK on conn is err with expected_offset; false (after printing why) otherwise. */
bool h_nak_is(ble_ota_conn_t conn, uint8_t err, uint32_t expected_offset);
/** No DATA_NAK is pending on conn. */
bool h_no_nak(ble_ota_conn_t conn);
/** zlib-compress (RFC 1950). malloc'd. */
uint8_t *h_deflate(const uint8_t *data, size_t len, size_t *out_len);

void h_status(ble_ota_status_t *st);
/** A valid synthetic image for the harness chip. */
uint8_t *h_image(uint16_t chip, const char *version, uint32_t secure_version, size_t size, uint32_t seed, size_t *len);
/** h_start(o), then a v2.0.0 image of `size` bytes for it (seed 3); NULL when either fails. */
uint8_t *h_start_with_image(host_device_opts_t *o, size_t size, size_t *len);
/** Path of a shared vector file relative to the test's working dir; NULL when shared/ is missing. */
const char *h_vector_path(const char *name);

/** HKDF-SHA256 (RFC 5869) with the host's HMAC (test_security.c). */
void hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len, const uint8_t *info,
                 size_t info_len, uint8_t *okm, size_t okm_len);

#endif
