/* Early checks on the start of a decoded image (PROTOCOL.md §4.1 step 3), before anything is written. */
#include "ble_ota_internal.h"

#define ESP_IMAGE_MAGIC 0xE9
#define ESP_APP_DESC_MAGIC 0xABCD5432u
#define ESP_IMAGE_HEADER_LEN 24
#define ESP_SEGMENT_HEADER_LEN 8
#define ESP_MAX_SEGMENTS 16

uint8_t ota_check_image_header(const uint8_t *hdr, uint16_t chip_id, uint32_t running_secure_version,
                               bool allow_downgrade)
{
    if (hdr[0] != ESP_IMAGE_MAGIC || hdr[1] == 0 || hdr[1] > ESP_MAX_SEGMENTS) return BLE_OTA_ERR_NOT_APP_IMAGE;
    if (ble_ota_get_u16(hdr + 12) != chip_id) return BLE_OTA_ERR_WRONG_CHIP;
    /* esp_app_desc_t opens the first segment's data. */
    const uint8_t *desc = hdr + ESP_IMAGE_HEADER_LEN + ESP_SEGMENT_HEADER_LEN;
    uint32_t first_segment_len = ble_ota_get_u32(hdr + ESP_IMAGE_HEADER_LEN + 4);
    if (first_segment_len < 256 || ble_ota_get_u32(desc) != ESP_APP_DESC_MAGIC) return BLE_OTA_ERR_NOT_APP_IMAGE;
    if (!allow_downgrade && ble_ota_get_u32(desc + 4) < running_secure_version) return BLE_OTA_ERR_DOWNGRADE;
    return BLE_OTA_OK;
}
