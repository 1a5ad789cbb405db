/* The running app: description, OTA state, confirm / rollback, restart. */
#include <string.h>
#include "esp_app_desc.h"
#include "esp_image_format.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "hal/efuse_hal.h"
#include "nvs.h"
#include "sdkconfig.h"
#include "esp_port_priv.h"

static const char *TAG = "ble_ota_app";

static void copy_str(char *dst, size_t dst_size, const char *src, size_t src_size)
{
    size_t n = strnlen(src, src_size);
    if (n >= dst_size) {
        n = dst_size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* NVS blob "app_sha": the running app's identity (ELF SHA-256 from its descriptor + partition label)
 * and its partition hash. esp_partition_get_sha256 reads and hashes the whole image on every call
 * (bootloader_common_get_sha256_of_partition, bootloader_common.c:143-166): done once per installed app,
 * not on every boot or deep-sleep wake. */
typedef struct {
    uint8_t elf_sha256[32];
    char label[16];
    uint8_t partition_sha256[32];
} app_hash_cache_t;

static void running_hash(ble_ota_esp_port_state_t *st, const esp_app_desc_t *desc, const esp_partition_t *running,
                         uint8_t out[32])
{
    app_hash_cache_t cache;
    size_t len = sizeof(cache);
    if (st->nvs_open && nvs_get_blob(st->nvs, "app_sha", &cache, &len) == ESP_OK && len == sizeof(cache) &&
        memcmp(cache.elf_sha256, desc->app_elf_sha256, 32) == 0 &&
        strncmp(cache.label, running->label, sizeof(cache.label)) == 0) {
        memcpy(out, cache.partition_sha256, 32);
        return;
    }
    /* For an app partition this is the image hash from offset 0 through the checksum byte (the appended
     * SHA-256 when the image has one), not a hash of the whole partition. */
    if (esp_partition_get_sha256(running, out) != ESP_OK) {
        memset(out, 0, 32);
        return;
    }
    memcpy(cache.elf_sha256, desc->app_elf_sha256, 32);
    strncpy(cache.label, running->label, sizeof(cache.label));
    memcpy(cache.partition_sha256, out, 32);
    if (st->nvs_open && nvs_set_blob(st->nvs, "app_sha", &cache, sizeof(cache)) == ESP_OK) {
        nvs_commit(st->nvs);
    }
}

/* The base length of a delta patch: the running image's length as esp_image_verify counts it, header
 * through the checksum byte plus the appended SHA-256 when hash_appended, no signature block
 * (ESP-IDF v5.3.2 esp_image_format.c:297-312 esp_image_get_metadata: header, segments, checksum and appended
 * hash without verifying them; :507, :532 image_len through the segments; :864-866 + HASH_LEN). Reads the
 * segment headers only (no hashing). 0 (no delta) when it fails. */
static uint32_t running_image_len(const esp_partition_t *running)
{
    esp_partition_pos_t pos = {.offset = running->address, .size = running->size};
    esp_image_metadata_t md;
    if (esp_image_get_metadata(&pos, &md) != ESP_OK) {
        ESP_LOGW(TAG, "esp_image_get_metadata(running) failed: no delta updates");
        return 0;
    }
    return md.image_len;
}

static void app_info(void *ctx, ble_ota_app_info_t *out)
{
    ble_ota_esp_port_state_t *st = ctx;
    memset(out, 0, sizeof(*out));
    const esp_app_desc_t *desc = esp_app_get_description();
    copy_str(out->version, sizeof(out->version), desc->version, sizeof(desc->version));
    copy_str(out->project_name, sizeof(out->project_name), desc->project_name, sizeof(desc->project_name));
    copy_str(out->idf_version, sizeof(out->idf_version), desc->idf_ver, sizeof(desc->idf_ver));
    out->secure_version = desc->secure_version;
    out->chip_id = (uint16_t)CONFIG_IDF_FIRMWARE_CHIP_ID;
    out->reset_reason = (uint8_t)esp_reset_reason();
    /* what bootloader_common_check_chip_validity compares the image's min/max_chip_rev_full with
     * (bootloader_common_loader.c:94-114) */
    out->chip_rev_full = (uint16_t)efuse_hal_chip_revision();
    out->ignore_max_chip_rev = efuse_hal_get_disable_wafer_version_major();
    /* the identity per-device keys are derived from and manifests list (PROTOCOL.md §C device_id) */
    if (esp_read_mac(out->device_id, ESP_MAC_BASE) != ESP_OK) {
        memset(out->device_id, 0, sizeof(out->device_id));
    }
    const esp_partition_t *running = esp_ota_get_running_partition();
    if (running != NULL) {
        copy_str(out->partition_label, sizeof(out->partition_label), running->label, sizeof(running->label));
        running_hash(st, desc, running, out->running_sha256);
        out->running_image_len = running_image_len(running);
    }
}

static int app_state(void *ctx)
{
    esp_ota_img_states_t state;
    /* A factory app or an app flashed over serial has no otadata entry: report "undefined". */
    if (esp_ota_get_state_partition(esp_ota_get_running_partition(), &state) != ESP_OK) {
        return BLE_OTA_IMG_UNDEFINED;
    }
    switch (state) {
    case ESP_OTA_IMG_NEW: return BLE_OTA_IMG_NEW;
    case ESP_OTA_IMG_PENDING_VERIFY: return BLE_OTA_IMG_PENDING_VERIFY;
    case ESP_OTA_IMG_VALID: return BLE_OTA_IMG_VALID;
    case ESP_OTA_IMG_INVALID: return BLE_OTA_IMG_INVALID;
    case ESP_OTA_IMG_ABORTED: return BLE_OTA_IMG_ABORTED;
    default: return BLE_OTA_IMG_UNDEFINED;
    }
}

static int app_mark_valid(void *ctx)
{
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "mark valid failed: %s", esp_err_to_name(err));
        return -1;
    }
    return 0;
}

static bool app_rollback_possible(void *ctx)
{
    return esp_ota_check_rollback_is_possible();
}

static int app_rollback_and_reboot(void *ctx)
{
    /* Returns only on failure (no other valid app, or otadata write error). */
    esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
    ESP_LOGE(TAG, "rollback failed: %s", esp_err_to_name(err));
    return -1;
}

static void restart(void *ctx)
{
    esp_restart();
}

void ble_ota_esp_app_fill(ble_ota_port_t *port)
{
    port->app_info = app_info;
    port->app_state = app_state;
    port->app_mark_valid = app_mark_valid;
    port->app_rollback_possible = app_rollback_possible;
    port->app_rollback_and_reboot = app_rollback_and_reboot;
    port->restart = restart;
}
