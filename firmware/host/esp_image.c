/* ESP image verification for the host port; facts from ../shared/vectors/SOURCES.md. */
#include "esp_image.h"

#include <string.h>

#include "sha256.h"

static uint32_t u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void field(char *dst, const uint8_t *src, size_t n)
{
    size_t l = strnlen((const char *)src, n);
    memcpy(dst, src, l);
    dst[l] = '\0';
}

esp_image_result_t esp_image_verify(const uint8_t *buf, size_t len, int chip_id, bool require_app_desc,
                                    esp_image_info_t *info)
{
    esp_image_info_t tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    if (len < 24) return ESP_IMAGE_TRUNCATED;
    if (buf[0] != 0xE9) return ESP_IMAGE_BAD_MAGIC;
    info->segment_count = buf[1];
    info->chip_id = (uint16_t)(buf[12] | (buf[13] << 8));
    info->min_chip_rev_full = (uint16_t)(buf[15] | (buf[16] << 8));
    info->max_chip_rev_full = (uint16_t)(buf[17] | (buf[18] << 8));
    info->hash_appended = buf[23] == 1;
    if (info->segment_count == 0 || info->segment_count > 16) return ESP_IMAGE_BAD_SEGMENTS;
    size_t pos = 24;
    uint8_t checksum = 0xEF;
    for (unsigned i = 0; i < info->segment_count; i++) {
        if (pos + 8 > len) return ESP_IMAGE_TRUNCATED;
        uint32_t data_len = u32le(buf + pos + 4);
        if (data_len % 4 != 0) return ESP_IMAGE_BAD_SEGMENTS;
        if (data_len > len - pos - 8) return ESP_IMAGE_TRUNCATED;
        const uint8_t *data = buf + pos + 8;
        if (i == 0 && data_len >= 256 && u32le(data) == 0xABCD5432u) {
            info->has_app_desc = true;
            info->secure_version = u32le(data + 4);
            field(info->version, data + 16, 32);
            field(info->project_name, data + 48, 32);
            field(info->idf_version, data + 112, 32);
            memcpy(info->elf_sha256, data + 144, 32);
        }
        for (uint32_t j = 0; j < data_len; j++) checksum ^= data[j];
        pos += 8 + data_len;
    }
    size_t checksum_at = pos + (15 - pos % 16);
    if (checksum_at >= len) return ESP_IMAGE_TRUNCATED;
    info->body_len = checksum_at + 1;
    info->total_len = info->body_len + (info->hash_appended ? 32 : 0);
    if (buf[checksum_at] != checksum) return ESP_IMAGE_BAD_CHECKSUM;
    if (info->hash_appended) {
        uint8_t digest[32];
        if (info->total_len > len) return ESP_IMAGE_TRUNCATED;
        sha256(buf, info->body_len, digest);
        if (memcmp(digest, buf + info->body_len, 32) != 0) return ESP_IMAGE_BAD_SHA256;
    }
    if (chip_id >= 0 && info->chip_id != chip_id) return ESP_IMAGE_WRONG_CHIP;
    if (require_app_desc && !info->has_app_desc) return ESP_IMAGE_NO_APP_DESC;
    return ESP_IMAGE_OK;
}

bool esp_image_chip_rev_ok(const esp_image_info_t *info, uint16_t chip_rev_full)
{
    bool max_set = info->max_chip_rev_full != 0 && info->max_chip_rev_full != 0xFFFF;
    return info->min_chip_rev_full <= chip_rev_full && !(max_set && chip_rev_full > info->max_chip_rev_full);
}

const char *esp_image_result_name(esp_image_result_t r)
{
    static const char *names[] = {"ok", "truncated", "bad magic", "bad segments", "bad checksum",
                                  "bad appended sha256", "wrong chip", "no app descriptor"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

bool esp_image_has_signature_block(const uint8_t *buf, size_t len, const esp_image_info_t *info)
{
    size_t sig_at = (info->total_len + 4095) / 4096 * 4096;
    return sig_at < len && buf[sig_at] == 0xE7;
}
