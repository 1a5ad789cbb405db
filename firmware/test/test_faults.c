/* Issue 2 point 4: behaviour under faults and bad input, each a test. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

TEST(image_too_large_is_refused_before_any_erase)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    begin_t b = {.image_size = 512 * 1024 + 1, .transfer_size = 512 * 1024 + 1, .chunk = 508};
    CHECK_EQ(h_begin(1, &b, true, NULL, NULL), BLE_OTA_ERR_IMAGE_TOO_LARGE);
    CHECK_EQ(host_device_flash(H.dev)->erase_ops, 0);
    CHECK_EQ(host_device_flash(H.dev)->write_ops, 0);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_IDLE);
    h_stop();
}

static void expect_rejected_before_write(uint16_t chip, uint32_t secure_version, bool corrupt_magic,
                                         bool corrupt_desc, uint8_t expected, bool allow_downgrade)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.allow_downgrade = allow_downgrade;
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(chip, "3.0.0", secure_version, 100000, 5, &len);
    if (corrupt_magic) img[0] = 0xE8;
    if (corrupt_desc) img[32] ^= 0xFF;
    uint8_t err = h_update(img, len, false, 1);
    free(img);
    CHECK_EQ(err, expected);
    if (expected != 0) {
        CHECK_EQ(host_device_flash(H.dev)->erase_ops, 0);
        CHECK_EQ(host_device_flash(H.dev)->write_ops, 0);
        ble_ota_status_t st;
        h_status(&st);
        CHECK_EQ(st.last_result, expected);
        CHECK_EQ(st.session_state, 0);
        CHECK_EQ(host_device_running(H.dev), 0);
    }
    h_stop();
}

TEST(wrong_chip_is_refused_before_writing) { expect_rejected_before_write(0, 1, false, false, BLE_OTA_ERR_WRONG_CHIP, false); }
TEST(bad_magic_is_not_an_app_image) { expect_rejected_before_write(5, 1, true, false, BLE_OTA_ERR_NOT_APP_IMAGE, false); }
TEST(missing_app_descriptor_is_not_an_app_image) { expect_rejected_before_write(5, 1, false, true, BLE_OTA_ERR_NOT_APP_IMAGE, false); }
TEST(lower_secure_version_is_a_downgrade) { expect_rejected_before_write(5, 0, false, false, BLE_OTA_ERR_DOWNGRADE, false); }
TEST(lower_secure_version_allowed_by_config) { expect_rejected_before_write(5, 0, false, false, 0, true); }

TEST(sha256_mismatch_at_end_keeps_boot_partition)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    b.sha256[0] ^= 1; /* the client announces another digest */
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), BLE_OTA_ERR_HASH_MISMATCH);
    host_device_tick(H.dev, 1000);
    CHECK_EQ(H.reboots, 0);
    host_device_power_loss(H.dev);
    CHECK_EQ(host_device_running(H.dev), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_HASH_MISMATCH);
    CHECK(strcmp(st.app_version, "1.0.0") == 0);
    free(img);
    h_stop();
}

TEST(esp_ota_end_validation_failure_is_reported)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    img[len - 40] ^= 0x55; /* flips a code byte: checksum + appended SHA-256 no longer match */
    CHECK_EQ(h_update(img, len, false, 1), BLE_OTA_ERR_VALIDATION_FAILED);
    CHECK_EQ(host_device_running(H.dev), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_VALIDATION_FAILED);
    free(img);
    h_stop();
}

TEST(flash_error_aborts_session)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    host_device_flash(H.dev)->fail_writes = true;
    CHECK_EQ(h_update(img, len, false, 1), BLE_OTA_ERR_FLASH_ERROR);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_IDLE);
    free(img);
    h_stop();
}

TEST(disconnect_keeps_session_for_resume)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 150000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk;
    uint32_t resume = 1;
    CHECK_EQ(h_begin(1, &b, true, &chunk, &resume), 0);
    CHECK_EQ(resume, 0);
    CHECK_EQ(h_send(1, img, 0, 60000, chunk), 0);
    host_device_disconnect(H.dev, 1);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_SUSPENDED);
    host_device_tick(H.dev, 30000);
    host_device_connect(H.dev, 2, 185);
    CHECK_EQ(h_begin(2, &b, true, &chunk, &resume), 0);
    CHECK_EQ(chunk, 185 - 7);
    CHECK(resume > 0 && resume <= 60000);
    CHECK_EQ(h_send(2, img, resume, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(2, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}

TEST(kept_session_times_out_and_aborts_cleanly)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.resume_timeout_ms = 5000;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 150000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, img, 0, 30000, chunk), 0);
    host_device_disconnect(H.dev, 1);
    host_device_tick(H.dev, 4999);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_SUSPENDED);
    host_device_tick(H.dev, 2);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_IDLE);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_SESSION_TIMEOUT);
    /* a resume attempt now starts fresh at 0 */
    host_device_connect(H.dev, 1, 247);
    uint32_t resume = 99;
    CHECK_EQ(h_begin(1, &b, true, &chunk, &resume), 0);
    CHECK_EQ(resume, 0);
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 0), 0);
    free(img);
    h_stop();
}

TEST(second_client_is_busy)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    host_device_connect(H.dev, 2, 247);
    CHECK_EQ(h_begin(2, &b, true, NULL, NULL), BLE_OTA_ERR_BUSY);
    CHECK_EQ(h_tagged(2, BLE_OTA_OP_ABORT, true), BLE_OTA_ERR_BUSY);
    CHECK_EQ(h_end(2, 0), BLE_OTA_ERR_NO_SESSION);
    note_t n;
    h_clear();
    h_data(2, 0, img, 100);
    CHECK(h_find(2, BLE_OTA_OP_DATA_NAK, &n));
    CHECK_EQ(n.data[1], BLE_OTA_ERR_NO_SESSION);
    /* the first client is undisturbed */
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 0), 0);
    free(img);
    h_stop();
}

TEST(bad_data_writes_get_defined_naks)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint8_t raw[600] = {0};
    /* data before BEGIN */
    h_clear();
    h_data(1, 0, img, 100);
    CHECK(h_nak_is(1, BLE_OTA_ERR_NO_SESSION, 0));
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    CHECK_EQ(chunk, 240);
    CHECK_EQ(h_send(1, img, 0, 2400, chunk), 0);
    h_clear();
    /* zero-length and header-only writes */
    host_device_data(H.dev, 1, raw, 0, true);
    CHECK(h_nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 2400));
    host_device_data(H.dev, 1, raw, 4, true);
    CHECK(h_nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 2400));
    /* oversized */
    h_data(1, 2400, img + 2400, chunk + 1);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OVERSIZED, 2400));
    /* duplicate: one NAK until expected advances */
    h_data(1, 0, img, chunk);
    CHECK(h_nak_is(1, BLE_OTA_ERR_DUPLICATE, 2400));
    h_data(1, 240, img + 240, chunk);
    CHECK(h_no_nak(1));
    /* gap: one NAK per gap; later chunks past it are dropped silently, also one past the window */
    h_data(1, 2640, img + 2640, chunk);
    CHECK(h_nak_is(1, BLE_OTA_ERR_GAP, 2400));
    h_data(1, 2880, img + 2880, chunk);
    CHECK(h_no_nak(1));
    h_data(1, 2400 + 16384, img, chunk);
    CHECK(h_no_nak(1));
    /* the go-back from expected; then a chunk at expected that runs past transfer_size, every time */
    uint32_t last = (uint32_t)len - 100;
    CHECK_EQ(h_send(1, img, 2400, last, chunk), 0);
    h_clear();
    h_data(1, last, raw, 200);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OUT_OF_WINDOW, last));
    h_data(1, last, raw, 200);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OUT_OF_WINDOW, last));
    /* the right last chunk still completes the image */
    CHECK_EQ(h_send(1, img, last, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}

TEST(window_counts_only_bytes_taken_by_the_writer)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    uint8_t buf[4 + 240];
    uint32_t off = 0;
    /* the writer does not run: the ring fills up to the window, then OUT_OF_WINDOW */
    while (off + chunk <= 16384) {
        ble_ota_put_u32(buf, off);
        memcpy(buf + 4, img + off, chunk);
        host_device_data(H.dev, 1, buf, 4u + chunk, false);
        off += chunk;
    }
    note_t n;
    CHECK(!h_find(1, BLE_OTA_OP_DATA_ACK, &n));
    h_clear();
    ble_ota_put_u32(buf, off);
    memcpy(buf + 4, img + off, chunk);
    host_device_data(H.dev, 1, buf, 4u + chunk, false);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OUT_OF_WINDOW, off));
    host_device_run_writer(H.dev);
    CHECK(h_find(1, BLE_OTA_OP_DATA_ACK, &n));
    CHECK(ble_ota_get_u32(n.data + 1) >= 4096);
    CHECK_EQ(h_send(1, img, off, (uint32_t)len, chunk), 0);
    CHECK(h_find(1, BLE_OTA_OP_DATA_ACK, &n) || true);
    CHECK_EQ(h_end(1, 0), 0);
    free(img);
    h_stop();
}

static host_device_opts_t keyed_opts(void)
{
    host_device_opts_t o = h_default_opts();
    o.has_fleet_key = true;
    for (int i = 0; i < 32; i++) o.fleet_key[i] = (uint8_t)(0xA0 + i);
    return o;
}

TEST(fleet_key_proof_is_required)
{
    host_device_opts_t o = keyed_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_FLEET_KEY);
    begin_t b = h_begin_for(img, len, img, len, 0);
    /* no CHALLENGE, zero tag */
    CHECK_EQ(h_begin(1, &b, false, NULL, NULL), BLE_OTA_ERR_AUTH_REQUIRED);
    /* CHALLENGE, wrong tag (nonce then spent) */
    CHECK_EQ(h_challenge(1), 0);
    CHECK_EQ(h_begin(1, &b, false, NULL, NULL), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(h_begin(1, &b, false, NULL, NULL), BLE_OTA_ERR_AUTH_REQUIRED);
    /* a wrong key */
    uint8_t good[32];
    memcpy(good, H.key, 32);
    H.key[0] ^= 1;
    CHECK_EQ(h_begin(1, &b, true, NULL, NULL), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, true), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, false), BLE_OTA_ERR_AUTH_REQUIRED);
    CHECK_EQ(host_device_flash(H.dev)->erase_ops, 0);
    memcpy(H.key, good, 32);
    CHECK_EQ(h_update(img, len, true, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}

TEST(required_fleet_key_without_provisioning_refuses_begin)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.require_fleet_key = true;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    CHECK_EQ(h_begin(1, &b, true, NULL, NULL), BLE_OTA_ERR_AUTH_FAILED);
    free(img);
    h_stop();
}

TEST(begin_parameter_errors)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.deflate = false;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    begin_t x = b;
    x.chunk = 0;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_PARAMETER);
    x = b;
    x.flags = 0x84;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_PARAMETER);
    x = b;
    x.base_sha256[0] = 1; /* a delta base with a raw transfer */
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_PARAMETER);
    x = b;
    x.flags |= BLE_OTA_BEGIN_FLAG_MANIFEST; /* manifest announced, none follows */
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_LENGTH);
    x = b;
    x.encoding = BLE_OTA_ENCODING_DELTA; /* not supported by this build (caps bit7 0) */
    x.base_sha256[0] = 1;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_ENCODING);
    x = b;
    x.image_size = x.transfer_size = 0;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_PARAMETER);
    x = b;
    x.transfer_size--;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_ENCODING);
    x = b;
    x.encoding = 1; /* deflate disabled */
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_ENCODING);
    x = b;
    x.encoding = 7;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_ENCODING);
    x = b;
    x.image_size = x.transfer_size = 0;
    x.encoding = 1;
    x.image_size = 1000;
    CHECK_EQ(h_begin(1, &x, true, NULL, NULL), BLE_OTA_ERR_BAD_ENCODING); /* deflate with transfer_size 0 */
    uint8_t short_begin[10] = {BLE_OTA_OP_BEGIN};
    h_control(1, short_begin, sizeof short_begin);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_BEGIN), BLE_OTA_ERR_BAD_LENGTH);
    uint8_t long_challenge[2] = {BLE_OTA_OP_CHALLENGE, 0};
    h_control(1, long_challenge, 2);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_CHALLENGE), BLE_OTA_ERR_BAD_LENGTH);
    uint8_t big[BLE_OTA_CONTROL_MAX_LEN + 1] = {BLE_OTA_OP_CHALLENGE};
    CHECK_EQ(h_control(1, big, sizeof big), BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN);
    CHECK_EQ(h_control(1, big, 0), BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN);
    CHECK_EQ(h_end(1, 1), BLE_OTA_ERR_NO_SESSION);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, true), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), BLE_OTA_ERR_NOT_PENDING);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ROLLBACK, true), BLE_OTA_ERR_NOT_PENDING);
    CHECK_EQ(host_device_flash(H.dev)->erase_ops, 0);
    free(img);
    h_stop();
}

TEST(end_before_all_bytes_is_invalid_state_and_abort_works)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    CHECK_EQ(h_send(1, img, 0, 5000, chunk), 0);
    CHECK_EQ(h_end(1, 1), BLE_OTA_ERR_INVALID_STATE);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, true), 0);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_IDLE);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_ABORTED);
    CHECK_EQ(host_device_running(H.dev), 0);
    free(img);
    h_stop();
}

TEST(corrupt_deflate_stream_aborts_with_decode_failed)
{
    host_device_opts_t o = h_default_opts();
    size_t len, zlen;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint8_t *z = h_deflate(img, len, &zlen);
    for (size_t i = 600; i < 700; i++) z[i] ^= 0xA5;
    begin_t b = h_begin_for(img, len, z, zlen, 1);
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, z, 0, (uint32_t)zlen, chunk), BLE_OTA_ERR_DECODE_FAILED);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_IDLE);
    free(z);
    free(img);
    h_stop();
}

TEST(deflate_announcing_wrong_image_size_fails)
{
    host_device_opts_t o = h_default_opts();
    size_t len, zlen;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint8_t *z = h_deflate(img, len, &zlen);
    begin_t b = h_begin_for(img, len, z, zlen, 1);
    b.image_size = (uint32_t)len + 100; /* decodes to fewer bytes than announced */
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, z, 0, (uint32_t)zlen, chunk), 0);
    CHECK_EQ(h_end(1, 1), BLE_OTA_ERR_SIZE_MISMATCH);
    b.image_size = (uint32_t)len - 100; /* decodes to more */
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, z, 0, (uint32_t)zlen, chunk), BLE_OTA_ERR_DECODE_FAILED);
    free(z);
    free(img);
    h_stop();
}

/* Power is cut after n flash/NVS operations of an update, for every n up to the whole update; the
 * device must always boot a valid image: the old one, or the new one only once the boot partition was set. */
static unsigned long ops_of_full_update(const uint8_t *img, size_t len, int deflate)
{
    host_device_opts_t o = h_default_opts();
    if (!h_start(&o)) return 0;
    unsigned long before = host_device_flash(H.dev)->ops_total;
    h_update(img, len, deflate, 1);
    unsigned long ops = host_device_flash(H.dev)->ops_total - before;
    h_stop();
    return ops;
}

TEST(power_loss_at_many_points_keeps_a_bootable_image)
{
    size_t len;
    uint8_t *img = h_image(5, "4.0.0", 1, 60000, 11, &len);
    CHECK(img);
    unsigned cuts = 0, new_booted = 0, old_booted = 0;
    for (int deflate = 0; deflate < 2; deflate++) {
        unsigned long total = ops_of_full_update(img, len, deflate);
        CHECK(total > 20);
        for (unsigned long n = 0; n <= total; n += (n + 12 < total ? 3 : 1)) {
            host_device_opts_t o = h_default_opts();
            CHECK(h_start(&o));
            host_device_cut_power_after(H.dev, (long)n);
            h_update(img, len, deflate, 1);
            if (strcmp(H.last_reboot, "power_loss") == 0) cuts++;
            ble_ota_status_t st;
            h_status(&st);
            int running = host_device_running(H.dev);
            CHECK(running == 0 || running == 1);
            CHECK(strcmp(st.app_version, running == 0 ? "1.0.0" : "4.0.0") == 0);
            CHECK_EQ(st.session_state, 0);
            if (running == 0) {
                old_booted++;
                /* after the cut a fresh update still works */
                host_device_connect(H.dev, 1, 247);
                CHECK_EQ(h_update(img, len, deflate, 1), 0);
                CHECK_EQ(host_device_running(H.dev), 1);
            } else {
                new_booted++;
            }
            h_stop();
        }
    }
    free(img);
    CHECK(cuts > 40);
    CHECK(new_booted > 0);
    CHECK(old_booted > 40);
}

TEST(acks_land_on_interval_steps_and_at_the_end)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 50001, &len);
    CHECK(img);
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    uint32_t expect_next = 4096, acks = 0;
    for (uint32_t off = 0; off < len; off += chunk) {
        uint32_t n = (uint32_t)len - off < chunk ? (uint32_t)len - off : chunk;
        h_data(1, off, img + off, n);
        note_t note;
        while (h_find(1, BLE_OTA_OP_DATA_ACK, &note)) {
            uint32_t next = ble_ota_get_u32(note.data + 1);
            if (expect_next > len) expect_next = (uint32_t)len;
            CHECK_EQ(next, expect_next);
            expect_next += 4096;
            acks++;
        }
    }
    CHECK_EQ(acks, (len + 4095) / 4096);
    CHECK_EQ(h_end(1, 0), 0);
    free(img);
    h_stop();
}

TEST(set_boot_failure_is_reported_and_old_image_kept)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    host_device_flash(H.dev)->fail_otadata = true;
    uint8_t err = h_update(img, len, false, 1);
    host_device_flash(H.dev)->fail_otadata = false;
    free(img);
    CHECK_EQ(err, BLE_OTA_ERR_SET_BOOT_FAILED);
    host_device_power_loss(H.dev);
    CHECK_EQ(host_device_running(H.dev), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_SET_BOOT_FAILED);
    h_stop();
}

TEST(late_data_while_finishing_is_duplicate_not_no_session)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    /* END queued for the writer but not run yet: the session is FINISHING */
    uint8_t end[2] = {BLE_OTA_OP_END, 0};
    CHECK_EQ(ble_ota_core_on_control_write(1, end, 2), 0);
    CHECK_EQ(ble_ota_core_session_state(), BLE_OTA_SESSION_FINISHING);
    uint8_t buf[4 + 16];
    ble_ota_put_u32(buf, 0);
    memcpy(buf + 4, img, 16);
    h_clear();
    host_device_data(H.dev, 1, buf, sizeof buf, false);
    note_t n;
    CHECK(h_find(1, BLE_OTA_OP_DATA_NAK, &n));
    CHECK_EQ(n.data[1], BLE_OTA_ERR_DUPLICATE);
    CHECK_EQ(h_begin(1, &b, true, NULL, NULL), BLE_OTA_ERR_INVALID_STATE);
    host_device_run_writer(H.dev);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_END), 0);
    free(img);
    h_stop();
}
