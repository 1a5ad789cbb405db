/* Field readiness: images installed by other installers, confirm only once BLE is up, flash work in the
 * writer context, chip revision with the header, reserved session memory, PDU-filling chunk sizes. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

#define ALL_PASSED (BLE_OTA_LAST_RECORD_VALID | BLE_OTA_LAST_INSTALLED | BLE_OTA_LAST_DIAG_RAN | BLE_OTA_LAST_DIAG_PASSED)

/* The seed firmware, a Wi-Fi OTA or esptool put an image in the other slot and set it to boot: no
 * record of ours names it. The auto policy still diagnoses and confirms it. */
TEST(image_from_another_installer_is_confirmed_with_auto_policy)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "2.0.0", 1, 70000, 7, &len);
    CHECK_EQ(host_device_install_other(H.dev, img, len), 0);
    free(img);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(strcmp(st.app_version, "2.0.0") == 0);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    CHECK_EQ(st.last_result, 0);
    CHECK_EQ(st.last_flags, ALL_PASSED | BLE_OTA_LAST_CONFIRMED | BLE_OTA_LAST_OTHER_INSTALLER);
    CHECK_EQ(st.boot_count, 1);
    /* and a reset keeps it (it was confirmed, not left pending) */
    host_device_power_loss(H.dev);
    CHECK_EQ(host_device_running(H.dev), 1);
    h_status(&st);
    CHECK_EQ(st.boot_count, 2);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    h_stop();
}

TEST(image_from_another_installer_waits_for_the_host_with_host_policy)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "2.1.0", 1, 70000, 7, &len);
    CHECK_EQ(host_device_install_other(H.dev, img, len), 0);
    free(img);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_PENDING_VERIFY);
    CHECK_EQ(st.last_flags, ALL_PASSED | BLE_OTA_LAST_OTHER_INSTALLER);
    host_device_connect(H.dev, 1, 247);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), 0);
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    CHECK(st.last_flags & BLE_OTA_LAST_CONFIRMED);
    h_stop();
}

/* Our own update, then NVS is erased before the new image's first boot: the record is gone, yet the
 * image is diagnosed and confirmed (reported as installed by another installer: nothing names it). */
TEST(nvs_erased_before_first_boot_still_confirms)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "2.2.0", 1, 70000, 8, &len);
    CHECK_EQ(h_update(img, len, false, 0), 0); /* END without reboot */
    free(img);
    host_device_erase_nvs(H.dev);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    CHECK_EQ(st.last_flags, ALL_PASSED | BLE_OTA_LAST_CONFIRMED | BLE_OTA_LAST_OTHER_INSTALLER);
    host_device_power_loss(H.dev);
    CHECK_EQ(host_device_running(H.dev), 1);
    h_stop();
}

/* The BLE stack is part of the diagnostics: a new image whose BLE never comes up is not confirmed, and
 * the next reset brings the previous image back. */
TEST(auto_policy_does_not_confirm_without_ble)
{
    /* install 2.3.0 (END without reboot), then start the same storage with a BLE stack that fails */
    char dir[] = "/tmp/fwtest-XXXXXX";
    CHECK(mkdtemp(dir));
    host_device_opts_t a = h_default_opts();
    a.state_dir = dir;
    CHECK(h_start(&a));
    size_t len;
    uint8_t *img = h_image(5, "2.3.0", 1, 70000, 9, &len);
    CHECK_EQ(h_update(img, len, false, 0), 0);
    free(img);
    h_stop();
    host_device_opts_t b = h_default_opts();
    b.state_dir = dir;
    b.ble_fails = true;
    CHECK(h_start(&b)); /* first boot of 2.3.0, diagnostics pass, BLE does not come up */
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_PENDING_VERIFY);
    CHECK_EQ(st.last_flags, ALL_PASSED);
    host_device_power_loss(H.dev);
    CHECK_EQ(host_device_running(H.dev), 0);
    h_status(&st);
    CHECK(strcmp(st.app_version, "1.0.0") == 0);
    CHECK(st.last_flags & BLE_OTA_LAST_ROLLED_BACK);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_ROLLED_BACK);
    h_stop();
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

/* CONFIRM and ROLLBACK are answered by the writer context, after the otadata work, not from the BLE
 * callback: before the writer runs there is no response and the image is still pending. */
TEST(confirm_and_rollback_run_in_the_writer)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("2.4.0", false), 0);
    host_flash_t *f = host_device_flash(H.dev);
    h_clear();
    uint8_t cmd[BLE_OTA_TAGGED_CMD_LEN] = {BLE_OTA_OP_CONFIRM};
    unsigned long ops = f->ops_total;
    CHECK_EQ(ble_ota_core_on_control_write(1, cmd, sizeof cmd), 0);
    CHECK_EQ(f->ops_total, ops); /* nothing written from the BLE side */
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_CONFIRM), 0xEE);
    CHECK_EQ(ble_ota_core_on_control_write(1, cmd, sizeof cmd), 0); /* a second one while busy */
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_CONFIRM), BLE_OTA_ERR_BUSY);
    host_device_run_writer(H.dev);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_CONFIRM), 0);
    CHECK(f->ops_total > ops);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    h_stop();

    CHECK(h_start(&o));
    CHECK_EQ(h_install("2.4.1", false), 0);
    h_clear();
    cmd[0] = BLE_OTA_OP_ROLLBACK;
    CHECK_EQ(ble_ota_core_on_control_write(1, cmd, sizeof cmd), 0);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_ROLLBACK), 0xEE);
    host_device_run_writer(H.dev);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_ROLLBACK), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 0);
    h_stop();
}

/* The app confirms itself (esp_ota_mark_app_valid_cancel_rollback): BEGIN is accepted at once, without
 * a reboot, because the state is read fresh. */
TEST(state_read_fresh_after_the_app_confirms_itself)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("2.5.0", false), 0);
    const ble_ota_port_t *p = host_device_port(H.dev);
    CHECK_EQ(p->app_mark_valid(p->ctx), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    size_t len;
    uint8_t *img = h_image(5, "2.6.0", 1, 70000, 10, &len);
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, true), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), BLE_OTA_ERR_NOT_PENDING);
    free(img);
    h_stop();
}

static uint8_t *image_with_revs(uint16_t min_rev, uint16_t max_rev, size_t *len)
{
    app_image_spec_t spec = {.chip_id = 5, .version = "3.0.0", .secure_version = 1, .size = 70000, .seed = 12,
                             .min_chip_rev_full = min_rev, .max_chip_rev_full = max_rev};
    return app_image_build(&spec, len);
}

/* ESP-IDF would refuse the image only in esp_ota_end, after the whole transfer; the core refuses it with
 * the header, before anything is erased. */
TEST(chip_revision_is_checked_with_the_header)
{
    host_device_opts_t o = h_default_opts();
    o.chip_rev = 4; /* v0.4 */
    CHECK(h_start(&o));
    host_flash_t *f = host_device_flash(H.dev);
    static const uint16_t bad[][2] = {{5, 0}, {100, 199}, {0, 3}};
    for (unsigned i = 0; i < 3; i++) {
        size_t len;
        uint8_t *img = image_with_revs(bad[i][0], bad[i][1], &len);
        unsigned erases = f->erase_ops, writes = f->write_ops;
        uint16_t chunk;
        h_clear();
        CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
        CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), BLE_OTA_ERR_WRONG_CHIP_REVISION);
        CHECK_EQ(f->erase_ops, erases);
        CHECK_EQ(f->write_ops, writes);
        ble_ota_status_t st;
        h_status(&st);
        CHECK_EQ(st.last_result, BLE_OTA_ERR_WRONG_CHIP_REVISION);
        free(img);
    }
    static const uint16_t good[][2] = {{0, 0}, {4, 4}, {3, 0xFFFF}, {0, 99}};
    for (unsigned i = 0; i < 4; i++) {
        size_t len;
        uint8_t *img = image_with_revs(good[i][0], good[i][1], &len);
        CHECK_EQ(h_update(img, len, false, 0), 0);
        free(img);
    }
    h_stop();
}

static bool s_fail_inflate;
static void *(*s_real_inflate_start)(void *ctx);
static void *failing_inflate_start(void *ctx) { return s_fail_inflate ? NULL : s_real_inflate_start(ctx); }

/* The inflater (43.8 KB on the chip) is reserved before BEGIN is accepted: short of memory, BEGIN gets
 * NO_MEMORY, nothing is erased and the record is untouched; a raw transfer needs no inflater. */
TEST(begin_reserves_memory_first)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    ble_ota_port_t *p = (ble_ota_port_t *)host_device_port(H.dev);
    s_real_inflate_start = p->inflate_start;
    p->inflate_start = failing_inflate_start;
    s_fail_inflate = true;
    host_flash_t *f = host_device_flash(H.dev);
    size_t len;
    uint8_t *img = h_image(5, "3.1.0", 1, 70000, 13, &len);
    uint8_t before[BLE_OTA_STATUS_LEN], after[BLE_OTA_STATUS_LEN];
    ble_ota_core_read_status(before);
    unsigned long ops = f->ops_total;
    CHECK_EQ(h_update(img, len, true, 0), BLE_OTA_ERR_NO_MEMORY);
    CHECK_EQ(f->ops_total, ops);
    ble_ota_core_read_status(after);
    CHECK(memcmp(before, after, sizeof before) == 0);
    CHECK_EQ(h_update(img, len, false, 0), 0);
    s_fail_inflate = false;
    CHECK_EQ(h_update(img, len, true, 0), 0);
    p->inflate_start = s_real_inflate_start;
    free(img);
    h_stop();
}

static uint16_t chunk_for(uint16_t mtu, uint16_t dl, uint16_t client_chunk)
{
    host_device_connect(H.dev, 2, mtu);
    ble_ota_core_on_data_len(2, dl);
    size_t len;
    uint8_t *img = h_image(5, "3.2.0", 1, 20000, 14, &len);
    begin_t b = h_begin_for(img, len, img, len, 0);
    b.chunk = client_chunk;
    uint16_t chunk = 0;
    h_begin(2, &b, true, &chunk, NULL);
    h_tagged(2, BLE_OTA_OP_ABORT, true);
    host_device_disconnect(H.dev, 2);
    free(img);
    return chunk;
}

/* A Data write = 4 (L2CAP) + 3 (ATT) + 4 (offset) + chunk bytes fills whole LL PDUs (PROTOCOL.md §2.2). */
TEST(chunk_size_fills_whole_ll_pdus)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    CHECK_EQ(chunk_for(256, 251, 512), 240); /* noble's MTU with DLE: one PDU, not 249 in two */
    CHECK_EQ(chunk_for(517, 251, 512), 491); /* two PDUs */
    CHECK_EQ(chunk_for(256, 27, 512), 232);  /* nine 27-octet PDUs */
    CHECK_EQ(chunk_for(247, 251, 512), 240); /* MTU - 7 fits one PDU */
    CHECK_EQ(chunk_for(23, 27, 512), 16);    /* default MTU and data length */
    CHECK_EQ(chunk_for(517, 251, 300), 240); /* the client's limit, rounded down to whole PDUs */
    h_stop();
}
