/* Basic happy paths: raw and deflate updates of a synthetic image, then the first boot. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

TEST(update_raw_installs_and_boots_new_image)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "1.1.0", 1, 120000, 7, &len);
    CHECK_EQ(host_device_running(H.dev), 0);
    uint8_t err = h_update(img, len, false, 1);
    CHECK_EQ(err, 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(strcmp(st.app_version, "1.1.0") == 0);
    CHECK_EQ(st.ota_state, BLE_OTA_IMG_VALID);
    CHECK_EQ(st.last_result, 0);
    CHECK_EQ(st.boot_count, 1);
    free(img);
    h_stop();
}

TEST(update_deflate_installs_and_boots_new_image)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "1.2.0", 1, 200000, 9, &len);
    CHECK_EQ(h_update(img, len, true, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(strcmp(st.app_version, "1.2.0") == 0);
    free(img);
    h_stop();
}
