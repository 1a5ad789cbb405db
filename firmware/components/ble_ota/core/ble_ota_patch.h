/*
 * Streaming applier of a delta patch (encoding 2, docs/PROTOCOL.md "Delta patch"). Portable: no ESP-IDF or
 * NimBLE include, no allocation, no pointer into caller buffers kept between calls.
 *
 * Patch = records until image_size bytes are produced:
 *   uvarint diff_len, diff[diff_len], uvarint extra_len, extra[extra_len], svarint seek
 * Diff byte i gives (base[pos + i] + diff[i]) mod 256, then pos += diff_len; extra bytes are copied; then
 * pos += seek (pos starts at 0). uvarint = unsigned LEB128, at most 5 bytes, value < 2^32; svarint = zigzag
 * of a 32-bit signed value carried in a uvarint. The patch must end right after the seek of the record that
 * completes image_size: a further byte is invalid.
 *
 * What we share with detools' "sequential" patch (github:eerimoq/detools, the format Espressif's
 * esp_delta_ota applies): the bsdiff triple laid out as one stream of records diff size, diff data,
 * extra size, extra data, adjustment (c/detools.c:1266-1310), diff bytes added mod 256 to the base
 * bytes (c/detools.c:1250), the base position moved by the signed adjustment after each record
 * (c/detools.c:1303), a size that would pass the output end refused (c/detools.c:1084) and the end
 * reached when the output is complete after an adjustment (c/detools.c:1305).
 * What differs: no detools header (patch type / compression nibble, to_size, data-format "dfpatch" size;
 * c/detools.c:1095-1190): the new image's size and SHA-256 and the base's SHA-256 travel in the
 * authenticated BEGIN instead of esp_delta_ota's 64-byte header (magic + base SHA-256,
 * esp_delta_ota/examples/https_delta_ota/tools/esp_delta_ota_patch_gen.py:22-29 in
 * github:espressif/idf-extra-components); sizes are LEB128 (detools packs a sign bit in the first byte:
 * detools/common.py:120-142) with zigzag for the seek; the compression is one zlib stream around the whole
 * patch (the device's inflater) instead of heatshrink/LZMA inside it; every base read is checked against
 * the base image's length (esp_delta_ota only moves an offset and reads the partition:
 * esp_delta_ota/src/esp_delta_ota.c:57-86), trailing bytes are refused, and the state can be kept across
 * a resumed transfer because it is plain values.
 *
 * Use:
 *   ble_ota_patch_init(&st, base_len, image_size);
 *   for each inflated chunk: loop ble_ota_patch_feed(...) until the chunk is consumed, writing the
 *   produced bytes each time (result OK: the output buffer was full, call again with the rest).
 *   At the end of the transfer: ble_ota_patch_finished(&st), else the patch ended early (SIZE_MISMATCH).
 * Base bytes are read straight into the caller's output buffer and the diff added in place, so the applier
 * needs no buffer of its own: RAM = sizeof(ble_ota_patch_t).
 */
#ifndef BLE_OTA_PATCH_H
#define BLE_OTA_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    BLE_OTA_PATCH_OK = 0,       /* the output buffer is full: write it, call again with the unconsumed input */
    BLE_OTA_PATCH_MORE,         /* every input byte consumed, the image is not complete yet */
    BLE_OTA_PATCH_DONE,         /* image_size bytes produced and the last record ended; no input may follow */
    BLE_OTA_PATCH_INVALID,      /* malformed patch (protocol PATCH_INVALID); see reason; sticky */
    BLE_OTA_PATCH_READ_FAILED,  /* the base read callback failed (a flash error, not the patch's fault); sticky */
} ble_ota_patch_result_t;

typedef enum {
    BLE_OTA_PATCH_REASON_NONE = 0,
    BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE, /* a diff part reads a base byte outside [0, base_len) */
    BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE, /* a diff or extra part would produce more than image_size */
    BLE_OTA_PATCH_REASON_VARINT_TOO_LONG,   /* a varint's fifth byte has the continuation bit */
    BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE,  /* a varint's value is 2^32 or more (also any svarint beyond int32) */
    BLE_OTA_PATCH_REASON_TRAILING_BYTES,    /* patch bytes after the record that completed the image */
    BLE_OTA_PATCH_REASON_POSITION_OVERFLOW, /* |pos| beyond 2^62: needs > 2^31 seeks of 2^31, cannot occur in a real transfer */
} ble_ota_patch_reason_t;

/* Reads len (>= 1) base bytes at offset into dst; offset + len <= base_len is guaranteed. 0 = success. */
typedef int (*ble_ota_patch_read_fn)(void *ctx, uint32_t offset, uint8_t *dst, size_t len);

/* Plain values only: copying or keeping it across a resumed transfer is enough to continue. */
typedef struct {
    int64_t pos;            /* base position; may leave [0, base_len) between reads */
    uint64_t patch_offset;  /* patch bytes consumed so far (for logs: where a malformed patch failed) */
    uint32_t base_len;
    uint32_t image_size;
    uint32_t produced;      /* new-image bytes produced so far */
    uint32_t remaining;     /* bytes left in the current diff or extra part */
    uint32_t varint;        /* value of the varint being read */
    uint8_t varint_bytes;   /* bytes of it read so far */
    uint8_t phase;          /* ble_ota_patch.c: which field comes next */
    uint8_t result;         /* ble_ota_patch_result_t once DONE or failed */
    uint8_t reason;         /* ble_ota_patch_reason_t */
} ble_ota_patch_t;

void ble_ota_patch_init(ble_ota_patch_t *st, uint32_t base_len, uint32_t image_size);

/*
 * Consumes patch bytes in[0..in_len) and writes new-image bytes to out[0..out_cap). *consumed and *produced
 * say how many (also on failure: the bytes before the malformed field). Any split of the patch into calls
 * gives the same output and the same result. out_cap 0 with a diff or extra part pending returns OK with no
 * progress.
 */
ble_ota_patch_result_t ble_ota_patch_feed(ble_ota_patch_t *st, const uint8_t *in, size_t in_len, size_t *consumed,
                                          uint8_t *out, size_t out_cap, size_t *produced,
                                          ble_ota_patch_read_fn read_base, void *ctx);

/* True once the record completing image_size has ended (its seek read): the patch is whole. */
bool ble_ota_patch_finished(const ble_ota_patch_t *st);

ble_ota_patch_reason_t ble_ota_patch_reason(const ble_ota_patch_t *st);
const char *ble_ota_patch_reason_str(ble_ota_patch_reason_t reason);

#endif
