/* Early checks on the start of a decoded image (PROTOCOL.md §4.1 step 3), before anything is written. */
#include <string.h>

#include "ble_ota_internal.h"

#define ESP_IMAGE_MAGIC 0xE9
#define ESP_APP_DESC_MAGIC 0xABCD5432u
#define ESP_IMAGE_HEADER_LEN 24
#define ESP_SEGMENT_HEADER_LEN 8
#define ESP_MAX_SEGMENTS 16

/* esp_image_header_t (esp_app_format.h): chip_id at 12, min_chip_rev_full at 15, max_chip_rev_full at 17.
 * ESP-IDF checks the revision in esp_image_verify (bootloader_common_check_chip_validity,
 * bootloader_common_loader.c:85-119), i.e. only at esp_ota_end, after the whole transfer: here it is
 * checked with the header, before anything is erased. max 0 or 0xFFFF means "not set". */
static bool chip_rev_fits(const uint8_t *hdr, const ble_ota_app_info_t *app)
{
    uint16_t min_rev = ble_ota_get_u16(hdr + 15), max_rev = ble_ota_get_u16(hdr + 17);
    if (min_rev > app->chip_rev_full) return false;
    bool max_set = max_rev != 0 && max_rev != 0xFFFF;
    return !(max_set && app->chip_rev_full > max_rev && !app->ignore_max_chip_rev);
}

/* A NUL-padded 32-byte app descriptor field equals the manifest's string. */
static bool field_equals(const uint8_t *field, const char *s)
{
    size_t n = strnlen(s, 32);
    if (memcmp(field, s, n) != 0) return false;
    for (size_t i = n; i < 32; i++)
        if (field[i] != 0) return false;
    return true;
}

uint8_t ota_check_image_header(const uint8_t *hdr, const ble_ota_app_info_t *app, bool allow_downgrade,
                               const manifest_expect_t *manifest)
{
    if (hdr[0] != ESP_IMAGE_MAGIC || hdr[1] == 0 || hdr[1] > ESP_MAX_SEGMENTS) return BLE_OTA_ERR_NOT_APP_IMAGE;
    if (ble_ota_get_u16(hdr + 12) != app->chip_id) return BLE_OTA_ERR_WRONG_CHIP;
    if (!chip_rev_fits(hdr, app)) return BLE_OTA_ERR_WRONG_CHIP_REVISION;
    /* esp_app_desc_t opens the first segment's data. */
    const uint8_t *desc = hdr + ESP_IMAGE_HEADER_LEN + ESP_SEGMENT_HEADER_LEN;
    uint32_t first_segment_len = ble_ota_get_u32(hdr + ESP_IMAGE_HEADER_LEN + 4);
    if (first_segment_len < 256 || ble_ota_get_u32(desc) != ESP_APP_DESC_MAGIC) return BLE_OTA_ERR_NOT_APP_IMAGE;
    if (!allow_downgrade && ble_ota_get_u32(desc + 4) < app->secure_version) return BLE_OTA_ERR_DOWNGRADE;
    /* esp_app_desc_t: secure_version at 4, version[32] at 16, project_name[32] at 48 (esp_app_desc.h) */
    if (manifest && manifest->present &&
        (ble_ota_get_u32(desc + 4) != manifest->secure_version || !field_equals(desc + 16, manifest->app_version) ||
         !field_equals(desc + 48, manifest->project_name)))
        return BLE_OTA_ERR_MANIFEST_MISMATCH;
    return BLE_OTA_OK;
}
