/* ESP application image checks as esp_image_verify does them (header, segment walk, checksum, appended
 * SHA-256, chip id, app descriptor). Used by the host port's esp_ota_end / bootloader and by the tests. */
#ifndef HOST_ESP_IMAGE_H
#define HOST_ESP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ESP_IMAGE_OK = 0,
    ESP_IMAGE_TRUNCATED,
    ESP_IMAGE_BAD_MAGIC,
    ESP_IMAGE_BAD_SEGMENTS,
    ESP_IMAGE_BAD_CHECKSUM,
    ESP_IMAGE_BAD_SHA256,
    ESP_IMAGE_WRONG_CHIP,
    ESP_IMAGE_NO_APP_DESC,
} esp_image_result_t;

typedef struct {
    uint16_t chip_id;
    uint16_t min_chip_rev_full, max_chip_rev_full;
    uint8_t segment_count;
    bool hash_appended;
    size_t body_len;  /* offset 0 through the checksum byte */
    size_t total_len; /* body_len + 32 when hash_appended */
    bool has_app_desc;
    uint32_t secure_version;
    char version[33];
    char project_name[33];
    char idf_version[33];
    uint8_t elf_sha256[32]; /* esp_app_desc_t.app_elf_sha256 */
} esp_image_info_t;

/** Verify buf[0..len) as an app image for chip_id (chip_id < 0: any chip; require_app_desc: as OTA does). */
esp_image_result_t esp_image_verify(const uint8_t *buf, size_t len, int chip_id, bool require_app_desc,
                                    esp_image_info_t *info);
const char *esp_image_result_name(esp_image_result_t r);
/** bootloader_common_check_chip_validity (bootloader_common_loader.c:94-114): min <= rev, and rev <= max
 *  when max is set (not 0 / 0xFFFF). esp_image_verify fails on it (esp_image_format.c:335). */
bool esp_image_chip_rev_ok(const esp_image_info_t *info, uint16_t chip_rev_full);
/** A Secure Boot V2 signature block follows the verified image where esp_image_format.c looks for it
 *  (v5.3.2 :957-981): at the image end (appended hash included) rounded up to 4096, first byte
 *  ETS_SECURE_BOOT_V2_SIGNATURE_MAGIC 0xE7 (esp_rom .../rom/secure_boot.h:66). Presence only: the host
 *  has no secure boot key digest to check the RSA/ECDSA signature against. */
bool esp_image_has_signature_block(const uint8_t *buf, size_t len, const esp_image_info_t *info);

#endif
