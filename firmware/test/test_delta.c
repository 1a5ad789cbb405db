/*
 * Delta updates (encoding 2, PROTOCOL.md §13) end to end on the host port: a patch against the running image
 * installs the same bytes a full update writes; a wrong base is refused at BEGIN with nothing erased; every
 * malformed patch leaves the old image booting; a transfer resumed in the middle of the patch continues the
 * applier's state.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sha256.h"
#include "test.h"

#define RECORD_OUT 4096 /* new-image bytes per record of the test generator */

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *q = realloc(b->bytes, cap);
        if (!q) return;
        b->bytes = q;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, p, n);
    b->len += n;
}

static void put_uvarint(buf_t *b, uint32_t v)
{
    uint8_t one;
    while (v >= 0x80) {
        one = (uint8_t)(v | 0x80);
        put(b, &one, 1);
        v >>= 7;
    }
    one = (uint8_t)v;
    put(b, &one, 1);
}

static void put_svarint(buf_t *b, int32_t v) { put_uvarint(b, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }

/* Records of up to RECORD_OUT bytes: the part the base covers as diff bytes (new - base at the same offset),
 * the rest as extra bytes, seek 0. Unchanged bytes give zero diff bytes, which deflate well. */
static buf_t make_patch(const uint8_t *base, size_t base_len, const uint8_t *img, size_t len)
{
    buf_t b = {0};
    for (size_t j = 0; j < len;) {
        size_t n = len - j < RECORD_OUT ? len - j : RECORD_OUT;
        size_t diff = j < base_len ? (base_len - j < n ? base_len - j : n) : 0;
        put_uvarint(&b, (uint32_t)diff);
        for (size_t k = 0; k < diff; k++) {
            uint8_t d = (uint8_t)(img[j + k] - base[j + k]);
            put(&b, &d, 1);
        }
        put_uvarint(&b, (uint32_t)(n - diff));
        put(&b, img + j + diff, n - diff);
        put_svarint(&b, 0);
        j += n;
    }
    return b;
}

typedef struct {
    host_device_opts_t o;
    uint8_t *img;
    size_t len;
    uint8_t running_sha[32];
} delta_case_t;

/* Device running the harness's v1.0.0 image; the new image is v2.0.0 of new_size bytes (same generator seed:
 * related to the base). */
static bool start(delta_case_t *c, size_t new_size)
{
    c->o = h_default_opts();
    if (!h_start(&c->o)) return false;
    c->img = h_image(5, "2.0.0", 1, new_size, 1, &c->len);
    ble_ota_status_t st;
    h_status(&st);
    memcpy(c->running_sha, st.running_sha256, 32);
    return c->img && (ble_ota_core_caps() & BLE_OTA_CAP_DELTA);
}

static begin_t delta_begin(const delta_case_t *c, const uint8_t *transfer, size_t tlen)
{
    begin_t b = h_begin_for(c->img, c->len, transfer, tlen, BLE_OTA_ENCODING_DELTA);
    memcpy(b.base_sha256, c->running_sha, 32);
    return b;
}

static unsigned slot_work(void)
{
    host_flash_t *f = host_device_flash(H.dev);
    return (unsigned)(f->erase_ops + f->write_ops);
}

/* BEGIN, every byte, END with reboot; the first error (0: installed). */
static uint8_t send_delta(const delta_case_t *c, const uint8_t *patch, size_t plen)
{
    size_t tlen;
    uint8_t *z = h_deflate(patch, plen, &tlen);
    if (!z) return 0xEE;
    begin_t b = delta_begin(c, z, tlen);
    uint16_t chunk = 0;
    h_clear();
    uint8_t err = h_begin(1, &b, true, &chunk, NULL);
    if (!err) err = h_send(1, z, 0, (uint32_t)tlen, chunk);
    if (!err) err = h_end(1, 1);
    free(z);
    if (!err) host_device_tick(H.dev, 400);
    return err;
}

TEST(delta_update_installs_the_bytes_of_a_full_update)
{
    delta_case_t c;
    CHECK(start(&c, 64000));
    buf_t p = make_patch(c.o.running_image, c.o.running_image_len, c.img, c.len);
    CHECK(p.bytes);
    CHECK_EQ(send_delta(&c, p.bytes, p.len), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    size_t slot_bytes = (c.len + 4095) / 4096 * 4096; /* what the update erased and wrote */
    uint8_t *after_delta = malloc(slot_bytes);
    CHECK(after_delta);
    memcpy(after_delta, host_flash_partition(host_device_flash(H.dev), 1), slot_bytes);
    CHECK(memcmp(after_delta, c.img, c.len) == 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(strcmp(st.app_version, "2.0.0") == 0);

    /* the same image as a full (deflate) update on a fresh device: the same slot bytes */
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    CHECK_EQ(h_update(c.img, c.len, true, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    CHECK(memcmp(after_delta, host_flash_partition(host_device_flash(H.dev), 1), slot_bytes) == 0);
    free(after_delta);
    free(p.bytes);
    free(c.img);
    h_stop();
}

TEST(delta_base_mismatch_is_refused_before_anything_is_erased)
{
    delta_case_t c;
    CHECK(start(&c, 64000));
    ble_ota_status_t before, after;
    h_status(&before);
    buf_t p = make_patch(c.o.running_image, c.o.running_image_len, c.img, c.len);
    size_t tlen;
    uint8_t *z = h_deflate(p.bytes, p.len, &tlen);
    CHECK(z);
    begin_t b = delta_begin(&c, z, tlen);
    b.base_sha256[5] ^= 0x40; /* a patch for another build */
    CHECK_EQ(h_begin(1, &b, true, NULL, NULL), BLE_OTA_ERR_BASE_MISMATCH);
    /* a base digest with a full transfer is a bad parameter */
    begin_t full = h_begin_for(c.img, c.len, c.img, c.len, 0);
    memcpy(full.base_sha256, c.running_sha, 32);
    CHECK_EQ(h_begin(1, &full, true, NULL, NULL), BLE_OTA_ERR_BAD_PARAMETER);
    host_device_run_writer(H.dev);
    CHECK_EQ(slot_work(), 0);
    h_status(&after);
    CHECK_EQ(after.last_result, before.last_result);
    CHECK_EQ(after.session_state, BLE_OTA_SESSION_IDLE);
    free(z);
    free(p.bytes);
    free(c.img);
    h_stop();
}

/* Each malformed patch: the error the contract names, the boot partition unchanged (the old image boots
 * after a power cycle). */
TEST(delta_bad_patches_leave_the_old_image_booting)
{
    delta_case_t c;
    CHECK(start(&c, 64000));
    uint32_t base_len = (uint32_t)c.o.running_image_len;
    buf_t good = make_patch(c.o.running_image, base_len, c.img, c.len);
    CHECK(good.bytes);
    for (int which = 0; which < 5; which++) {
        buf_t bad = {0};
        uint8_t want = BLE_OTA_ERR_PATCH_INVALID;
        if (which == 0) { /* seek to 10 bytes before the base end, then read 20 */
            put_uvarint(&bad, 0);
            put_uvarint(&bad, 0);
            put_svarint(&bad, (int32_t)base_len - 10);
            put_uvarint(&bad, 20);
            for (int i = 0; i < 20; i++) put(&bad, (const uint8_t *)"\0", 1);
        } else if (which == 1) { /* extra part longer than the image */
            put_uvarint(&bad, 0);
            put_uvarint(&bad, (uint32_t)c.len + 1);
            put(&bad, c.img, 64);
        } else if (which == 2) { /* a varint of 6 bytes */
            static const uint8_t overlong[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
            put(&bad, overlong, sizeof overlong);
        } else if (which == 3) { /* the whole patch, then one more byte */
            put(&bad, good.bytes, good.len);
            put(&bad, (const uint8_t *)"\0", 1);
        } else { /* cut inside the last record: END finds the image short */
            put(&bad, good.bytes, good.len - 100);
            want = BLE_OTA_ERR_SIZE_MISMATCH;
        }
        CHECK(bad.bytes);
        uint8_t err = send_delta(&c, bad.bytes, bad.len);
        if (err != want) fprintf(stderr, "    bad patch %d\n", which);
        CHECK_EQ(err, want);
        ble_ota_status_t st;
        h_status(&st);
        CHECK_EQ(st.last_result, want);
        CHECK_EQ(st.session_state, BLE_OTA_SESSION_IDLE);
        host_device_power_loss(H.dev);
        host_device_connect(H.dev, 1, 247);
        CHECK_EQ(host_device_running(H.dev), 0);
        free(bad.bytes);
    }
    /* and the good patch still installs */
    CHECK_EQ(send_delta(&c, good.bytes, good.len), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(good.bytes);
    free(c.img);
    h_stop();
}

/* The link drops in the middle of the patch; the resumed transfer continues the applier (its state is kept
 * with the session) and the result is the new image. */
TEST(delta_resume_in_the_middle_of_the_patch)
{
    delta_case_t c;
    CHECK(start(&c, 96000)); /* 32 KB beyond the base as extra bytes: a transfer of a few ACK intervals */
    buf_t p = make_patch(c.o.running_image, c.o.running_image_len, c.img, c.len);
    size_t tlen;
    uint8_t *z = h_deflate(p.bytes, p.len, &tlen);
    CHECK(z && tlen > 8192);
    begin_t b = delta_begin(&c, z, tlen);
    uint16_t chunk = 0;
    uint32_t resume = 1;
    CHECK_EQ(h_begin(1, &b, true, &chunk, &resume), 0);
    CHECK_EQ(resume, 0);
    CHECK_EQ(h_send(1, z, 0, (uint32_t)(tlen / 2), chunk), 0);
    host_device_disconnect(H.dev, 1);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_SUSPENDED);
    host_device_tick(H.dev, 1000);
    host_device_connect(H.dev, 2, 247);
    CHECK_EQ(h_begin(2, &b, true, &chunk, &resume), 0);
    CHECK(resume > 0 && resume <= tlen / 2);
    CHECK_EQ(h_send(2, z, resume, (uint32_t)tlen, chunk), 0);
    CHECK_EQ(h_end(2, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    CHECK(memcmp(host_flash_partition(host_device_flash(H.dev), 1), c.img, c.len) == 0);
    free(z);
    free(p.bytes);
    free(c.img);
    h_stop();
}
