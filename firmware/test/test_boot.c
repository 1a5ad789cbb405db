/* Confirm policies, diagnostics, rollback, boot counting and the update record across reboots. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

TEST(host_policy_waits_for_confirm)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("v1.2.3-rc1", false), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 1);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_PENDING_VERIFY);
    CHECK_EQ(st.last_flags, BLE_OTA_LAST_RECORD_VALID | BLE_OTA_LAST_INSTALLED | BLE_OTA_LAST_DIAG_RAN | BLE_OTA_LAST_DIAG_PASSED);
    CHECK_EQ(st.confirm_policy, 1);
    uint8_t mfg[11];
    ble_ota_core_build_mfg_data(mfg);
    CHECK_EQ(mfg[3], 0x41); /* pending verify + host policy */
    CHECK_EQ(mfg[8], 1);
    CHECK_EQ(mfg[10], 3);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), 0);
    h_status(&st);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    CHECK(st.last_flags & BLE_OTA_LAST_CONFIRMED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), BLE_OTA_ERR_NOT_PENDING);
    /* confirmed images survive reboots; boot_count counts them */
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, true), 0);
    host_device_tick(H.dev, 400);
    host_device_power_loss(H.dev);
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 1);
    CHECK_EQ(st.boot_count, 3);
    CHECK_EQ(st.reset_reason, 1);
    h_stop();
}

/* esp_ota_begin refuses while the running app is PENDING_VERIFY; the core says so at BEGIN (§4.4). */
TEST(begin_while_pending_verify_is_refused_until_confirm)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.2.0", false), 0);
    size_t len2;
    uint8_t *next = h_image(5, "1.3.0", 1, 70000, 5, &len2);
    CHECK_EQ(host_device_running(H.dev), 1);
    uint8_t before[BLE_OTA_STATUS_LEN], after[BLE_OTA_STATUS_LEN];
    ble_ota_core_read_status(before);
    CHECK_EQ(before[4], BLE_OTA_IMG_PENDING_VERIFY);
    host_flash_t *f = host_device_flash(H.dev);
    unsigned long ops = f->ops_total;
    unsigned erases = f->erase_ops, writes = f->write_ops;
    begin_t b = h_begin_for(next, len2, next, len2, 0);
    uint16_t chunk = 0;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), BLE_OTA_ERR_INVALID_STATE);
    h_clear();
    h_data(1, 0, next, 300);
    note_t n;
    CHECK(h_find(1, BLE_OTA_OP_DATA_NAK, &n));
    CHECK_EQ(n.data[1], BLE_OTA_ERR_NO_SESSION);
    /* nothing erased or written, no record "in progress": the Status is byte for byte the same */
    CHECK_EQ(f->ops_total, ops);
    CHECK_EQ(f->erase_ops, erases);
    CHECK_EQ(f->write_ops, writes);
    ble_ota_core_read_status(after);
    CHECK(memcmp(before, after, sizeof before) == 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), 0);
    CHECK_EQ(h_update(next, len2, true, 1), 0);
    free(next);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 0);
    CHECK(strcmp(st.app_version, "1.3.0") == 0);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_PENDING_VERIFY);
    h_stop();
}

/* The host port's esp_ota_begin behaves like ESP-IDF's with rollback enabled. */
TEST(host_port_ota_begin_refuses_while_pending_verify)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "1.2.0", 1, 70000, 4, &len);
    CHECK_EQ(h_update(img, len, false, 1), 0);
    const ble_ota_port_t *port = host_device_port(H.dev);
    CHECK_EQ(port->app_state(port->ctx), BLE_OTA_IMG_PENDING_VERIFY);
    CHECK(port->ota_begin(port->ctx, (uint32_t)len) != 0);
    CHECK(port->ota_write(port->ctx, 0, img, 288) != 0); /* no handle was opened */
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), 0);
    CHECK_EQ(port->ota_begin(port->ctx, (uint32_t)len), 0);
    CHECK_EQ(port->ota_write(port->ctx, 0, img, 288), 0);
    port->ota_abort(port->ctx);
    free(img);
    h_stop();
}

TEST(host_policy_reboot_without_confirm_rolls_back)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.3.0", true), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    host_device_power_loss(H.dev);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 0);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_ROLLED_BACK);
    CHECK(st.last_flags & BLE_OTA_LAST_ROLLED_BACK);
    uint8_t mfg[11];
    ble_ota_core_build_mfg_data(mfg);
    CHECK(mfg[3] & 0x08);
    h_stop();
}

TEST(host_policy_rollback_command)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.4.0", false), 0);
    unsigned reboots = H.reboots;
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ROLLBACK, true), 0);
    CHECK_EQ(H.reboots, reboots);
    host_device_tick(H.dev, 400);
    CHECK_EQ(H.reboots, reboots + 1);
    CHECK_EQ(host_device_running(H.dev), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_ROLLED_BACK);
    CHECK(st.last_flags & BLE_OTA_LAST_ROLLED_BACK);
    CHECK(strcmp(st.app_version, "1.0.0") == 0);
    h_stop();
}

TEST(auto_policy_failed_diagnostics_roll_back)
{
    host_device_opts_t o = h_default_opts();
    o.diagnostics_fail = true;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.5.0", false), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 0);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_DIAGNOSTICS_FAILED);
    CHECK_EQ(st.last_flags, BLE_OTA_LAST_RECORD_VALID | BLE_OTA_LAST_INSTALLED | BLE_OTA_LAST_DIAG_RAN | BLE_OTA_LAST_ROLLED_BACK);
    CHECK(strcmp(st.last_message, "simulated diagnostics failure") == 0);
    uint8_t mfg[11];
    ble_ota_core_build_mfg_data(mfg);
    CHECK_EQ(mfg[3], 0x02 | 0x08 | 0x10);
    h_stop();
}

TEST(rollback_without_previous_image_is_refused)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.6.0", false), 0);
    /* wreck the previous image */
    host_flash_t *f = host_device_flash(H.dev);
    memset(host_flash_partition(f, 0), 0, 64);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ROLLBACK, true), BLE_OTA_ERR_NO_ROLLBACK_IMAGE);
    h_stop();
}

TEST(status_is_notified_on_session_changes)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    unsigned before = H.status_notifications;
    size_t len;
    uint8_t *img = h_image(5, "1.7.0", 1, 70000, 4, &len);
    uint16_t chunk;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    CHECK(H.status_notifications > before);
    ble_ota_status_t st;
    CHECK_EQ(h_send(1, img, 0, 8192, chunk), 0);
    h_status(&st);
    CHECK_EQ(st.session_state, 1);
    CHECK_EQ(st.session_offset, 8192);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_INTERNAL);
    free(img);
    h_stop();
}

TEST(state_dir_persists_across_restarts)
{
    char dir[] = "/tmp/fwtest-XXXXXX";
    CHECK(mkdtemp(dir));
    host_device_opts_t o = h_default_opts();
    o.state_dir = dir;
    CHECK(h_start(&o));
    CHECK_EQ(h_install("1.8.0", true), 0);
    h_stop();
    host_device_opts_t o2 = h_default_opts();
    o2.state_dir = dir;
    CHECK(h_start(&o2));
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(host_device_running(H.dev), 1);
    CHECK(strcmp(st.app_version, "1.8.0") == 0);
    CHECK_EQ(st.last_result, 0);
    h_stop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}
