/* The real ESP-IDF images of ../shared/vectors through the full session, raw and deflate. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "esp_image.h"
#include "harness.h"
#include "sha256.h"
#include "test.h"

typedef struct {
    const char *file;
    uint16_t chip;
    uint8_t expected; /* protocol error of the update, 0 = installs */
} vector_case_t;

static const vector_case_t CASES[] = {
    {"esp32-hello_world.bin", 0, 0},
    {"esp32c3-hello_world.bin", 5, 0},
    {"esp32s3-hello_world.bin", 9, 0},
    {"esp32s2-blink.bin", 2, 0},
    {"esp32-hello_world-signed_v1.bin", 0, 0},
    /* 128 bytes: too short for the headers + app descriptor, SESSION_ABORTED before any flash write */
    {"bad-sha256-mismatch.bin", 0, BLE_OTA_ERR_NOT_APP_IMAGE},
    /* a bootloader: right chip, but no app descriptor */
    {"bad-esp32c3-bootloader.bin", 5, BLE_OTA_ERR_NOT_APP_IMAGE},
};

static void run_case(const vector_case_t *c, bool deflate)
{
    const char *path = h_vector_path(c->file);
    if (!path) fprintf(stderr, "    missing shared vector %s (expected ../shared/vectors beside the repo)\n", c->file);
    CHECK(path != NULL);
    size_t len;
    uint8_t *img = read_file(path, &len);
    CHECK(img);
    host_device_opts_t o = h_default_opts();
    size_t rlen;
    uint8_t *running = h_image(c->chip, "0.9.0", 0, 50000, 2, &rlen);
    o.chip_id = c->chip;
    o.running_image = running;
    o.running_image_len = rlen;
    o.partition_size = 1024 * 1024;
    bool started = h_start(&o);
    uint8_t err = started ? h_update(img, len, deflate, 1) : 0xEE;
    ble_ota_status_t st;
    h_status(&st);
    int running_index = started ? host_device_running(H.dev) : -1;
    unsigned writes = started ? host_device_flash(H.dev)->write_ops : 99;
    h_stop();
    free(running);
    esp_image_info_t info;
    esp_image_verify(img, len, -1, false, &info);
    uint8_t appended[32];
    memcpy(appended, img + info.body_len, 32);
    free(img);
    CHECK(started);
    if (err != c->expected) fprintf(stderr, "    %s (%s): got %u, expected %u\n", c->file, deflate ? "deflate" : "raw", err, c->expected);
    CHECK_EQ(err, c->expected);
    if (c->expected == 0) {
        CHECK_EQ(running_index, 1);
        CHECK_EQ(st.last_result, 0);
        CHECK_EQ(st.chip_id, c->chip);
        CHECK(memcmp(st.running_sha256, appended, 32) == 0); /* hash_appended: equals the appended hash */
    } else {
        CHECK_EQ(running_index, 0);
        CHECK_EQ(writes, 0);
    }
}

TEST(real_images_raw)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int before = test_current_failed;
        run_case(&CASES[i], false);
        if (test_current_failed && !before) return;
    }
}

TEST(real_images_deflate)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        run_case(&CASES[i], true);
        if (test_current_failed) return;
    }
}

TEST(real_image_for_another_chip_is_wrong_chip)
{
    const char *path = h_vector_path("esp32s3-hello_world.bin");
    CHECK(path);
    size_t len;
    uint8_t *img = read_file(path, &len);
    CHECK(img);
    host_device_opts_t o = h_default_opts(); /* esp32c3 device */
    o.partition_size = 1024 * 1024;
    CHECK(h_start(&o));
    uint8_t err = h_update(img, len, true, 1);
    unsigned erases = host_device_flash(H.dev)->erase_ops;
    free(img);
    h_stop();
    CHECK_EQ(err, BLE_OTA_ERR_WRONG_CHIP);
    CHECK_EQ(erases, 0);
}

/* The host port's esp_ota_end validation itself, on the vectors (independent of the session). */
TEST(esp_image_verify_matches_reference_parser)
{
    static const struct {
        const char *file;
        esp_image_result_t want;
        size_t body_len;
    } cases[] = {
        {"esp32-hello_world.bin", ESP_IMAGE_OK, 175856 - 32},
        {"esp32-hello_world-signed_v1.bin", ESP_IMAGE_OK, 196528 - 32},
        {"bad-sha256-mismatch.bin", ESP_IMAGE_BAD_SHA256, 128 - 32},
        {"bad-esp32c3-bootloader.bin", ESP_IMAGE_NO_APP_DESC, 19856 - 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = h_vector_path(cases[i].file);
        CHECK(path);
        size_t len;
        uint8_t *img = read_file(path, &len);
        CHECK(img);
        esp_image_info_t info;
        esp_image_result_t r = esp_image_verify(img, len, -1, true, &info);
        free(img);
        CHECK_EQ(r, cases[i].want);
        CHECK_EQ(info.body_len, cases[i].body_len);
    }
}
