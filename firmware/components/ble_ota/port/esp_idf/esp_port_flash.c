/*
 * OTA partition access for the core's writer context: esp_ota_begin/write/end/abort/set_boot with
 * erase-ahead.
 *
 * Why not esp_ota_begin(image_size): it erases the whole image range before returning — about 2.5 s for
 * 1 MiB even with 64 KiB block erases — and the client would see no ACK for that long.
 * Why not OTA_WITH_SEQUENTIAL_WRITES: esp_ota_write then erases 4 KiB sectors as the write position
 * crosses them (45 ms per 4 KiB, no block erases: 3x slower than 64 KiB erases).
 * So: esp_ota_begin() with the first erase unit only (that is the documented meaning of its image_size:
 * "erase this much"), then this file erases the rest itself, up to ble_ota_erase_end (the image's last
 * 64 KiB block whole when that is faster than its sectors), in 64 KiB blocks where aligned
 * (esp_partition_erase_range picks block erase for aligned 64 KiB ranges): what a write needs, before the
 * write; and, while the writer waits for data (ota_erase_ahead, one unit per call), up to erase_ahead
 * bytes in front of the write position. Erasing while idle takes no writer time from the data, and each
 * erase stalls the NimBLE host for the same time whenever it runs. It runs in the writer task, so the
 * NimBLE host keeps filling the core's ring buffer (the window) between erases.
 * Since the handle was not begun with OTA_WITH_SEQUENTIAL_WRITES, esp_ota_write never erases on its own.
 */
#include <string.h>
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_port_priv.h"

#define SECTOR 4096u
#define BLOCK 65536u

static const char *TAG = "ble_ota_flash";


static int ota_target(void *ctx, uint32_t *partition_size, char label[17])
{
    const esp_partition_t *p = esp_ota_get_next_update_partition(NULL);
    if (p == NULL) {
        return -1;
    }
    *partition_size = (uint32_t)p->size;
    strncpy(label, p->label, 16);
    label[16] = '\0';
    return 0;
}

/* Largest next erase unit starting at `from`: a 64 KiB block when aligned and wholly needed, else one
 * 4 KiB sector (so the frontier reaches block alignment as soon as possible). */
static uint32_t next_erase_len(uint32_t from, uint32_t end)
{
    if (from % BLOCK == 0 && end - from >= BLOCK) {
        return BLOCK;
    }
    return SECTOR;
}

/* Make [0, want) erased, never past erase_end. */
static esp_err_t erase_until(ble_ota_esp_port_state_t *st, uint32_t want)
{
    if (want > st->erase_end) {
        want = st->erase_end;
    }
    while (st->erased_to < want) {
        uint32_t len = next_erase_len(st->erased_to, st->erase_end);
        esp_err_t err = esp_partition_erase_range(st->target, st->erased_to, len);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "erase at 0x%" PRIx32 " failed: %s", st->erased_to, esp_err_to_name(err));
            return err;
        }
        st->erased_to += len;
    }
    return ESP_OK;
}

static void ota_abort(void *ctx)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (st->begun) {
        esp_ota_abort(st->handle);
        st->begun = false;
    }
}

static int ota_begin(void *ctx, uint32_t image_size)
{
    ble_ota_esp_port_state_t *st = ctx;
    ota_abort(ctx);
    st->target = esp_ota_get_next_update_partition(NULL);
    if (st->target == NULL || image_size == 0 || image_size > st->target->size) {
        return -1;
    }
    st->image_size = image_size;
    st->erase_end = ble_ota_erase_end(image_size, (uint32_t)st->target->size);
    /* Erase only the first unit now (see the file comment). */
    uint32_t first = next_erase_len(0, st->erase_end);
    esp_err_t err = esp_ota_begin(st->target, first, &st->handle);
    if (err != ESP_OK) {
        /* ESP_ERR_OTA_ROLLBACK_INVALID_STATE: the running app is still PENDING_VERIFY. The core refuses such
         * a BEGIN up front (INVALID_STATE), so this is only a guard. */
        ESP_LOGE(TAG, "esp_ota_begin(%s) failed: %s", st->target->label, esp_err_to_name(err));
        return -1;
    }
    st->begun = true;
    st->erased_to = first;
    st->written = 0;
    return 0;
}

static int ota_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    ble_ota_esp_port_state_t *st = ctx;
    /* esp_ota_write appends: the core's offsets must be sequential (they are; this guards the contract). */
    if (!st->begun || offset != st->written || (uint64_t)offset + len > st->image_size) {
        return -1;
    }
    /* Erase what this write needs (the idle erase-ahead has usually done it already). */
    uint32_t need = offset + (uint32_t)len;
    if (erase_until(st, need) != ESP_OK) {
        return -1;
    }
    esp_err_t err = esp_ota_write(st->handle, data, len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_write at %" PRIu32 " failed: %s", offset, esp_err_to_name(err));
        return -1;
    }
    st->written += (uint32_t)len;
    return 0;
}

/* One erase unit more, while the writer has no data: up to erase_ahead bytes in front of the write position. */
static int ota_erase_ahead(void *ctx)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (!st->begun || st->erased_to >= st->erase_end || st->erased_to - st->written >= st->erase_ahead) {
        return 0;
    }
    return erase_until(st, st->erased_to + next_erase_len(st->erased_to, st->erase_end)) == ESP_OK ? 1 : -1;
}

/* Ends the OTA handle. esp_ota_end validates the whole image (esp_image_verify, esp-idf v5.3.2
 * components/app_update/esp_ota_ops.c:319-362), and esp_ota_set_boot_partition, which ota_set_boot calls
 * next, validates it again in the same mode before it writes otadata (:437-444, image_validate :89-102):
 * a 1.4 MB image read twice at the read floor is 0.44 s of END. So when esp_ota_end would have nothing
 * to flush, the handle is closed with esp_ota_abort (:307-317: frees the handle, no flash access) and
 * the single validation is set_boot's. esp_ota_end only flushes the bytes esp_ota_write held back under
 * flash encryption (:336-345), the size % 16 tail (:214-243): none when the image size is a multiple of 16,
 * as esptool pads application images. */
static int ota_end(void *ctx)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (!st->begun) {
        return BLE_OTA_END_FLASH_ERROR;
    }
    st->begun = false;
    if (st->image_size % 16u == 0) {
        esp_ota_abort(st->handle);
        return BLE_OTA_END_OK;
    }
    /* esp_ota_end frees the handle whatever it returns; it runs esp_image_verify (segments, checksum,
     * appended SHA-256, and the signature with CONFIG_SECURE_SIGNED_APPS_* / Secure Boot V2). */
    esp_err_t err = esp_ota_end(st->handle);
    if (err == ESP_OK) {
        return BLE_OTA_END_OK;
    }
    ESP_LOGE(TAG, "esp_ota_end failed: %s", esp_err_to_name(err));
    /* ESP_ERR_INVALID_STATE: the buffered tail (flash encryption) could not be written. */
    return err == ESP_ERR_INVALID_STATE ? BLE_OTA_END_FLASH_ERROR : BLE_OTA_END_INVALID_IMAGE;
}

/* Delta base bytes: the running image, read in the writer task (esp_partition_read -> esp_flash_read,
 * v5.3.2 components/esp_partition/partition_target.c:26-38). Unencrypted flash reads run with the cache
 * disabled (esp_flash_api.c:888 start -> spi_flash_os_func_app.c:104-122 spi1_start -> cache_disable), in
 * chunks (esp_flash_api.c:871 MAX_READ_CHUNK): the NimBLE host is held for each chunk as for a program.
 * dst is the core's static buffer (DRAM: read directly, esp_flash_api.c:863-866). */
static int base_read(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    (void)ctx;
    const esp_partition_t *running = esp_ota_get_running_partition();
    if (running == NULL) {
        return -1;
    }
    esp_err_t err = esp_partition_read(running, offset, dst, len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_partition_read(running, %u, %u) failed: %s", (unsigned)offset, (unsigned)len,
                 esp_err_to_name(err));
        return -1;
    }
    return 0;
}

/* esp_ota_set_boot_partition: validates the image (ESP_ERR_OTA_VALIDATE_FAILED: BLE_OTA_END_INVALID_IMAGE),
 * then rewrites otadata (any other error: BLE_OTA_END_FLASH_ERROR). */
static int ota_set_boot(void *ctx)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (st->target == NULL) {
        return BLE_OTA_END_FLASH_ERROR;
    }
    esp_err_t err = esp_ota_set_boot_partition(st->target);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_set_boot_partition failed: %s", esp_err_to_name(err));
        return err == ESP_ERR_OTA_VALIDATE_FAILED ? BLE_OTA_END_INVALID_IMAGE : BLE_OTA_END_FLASH_ERROR;
    }
    return 0;
}

void ble_ota_esp_flash_fill(ble_ota_port_t *port)
{
    port->ota_target = ota_target;
    port->ota_begin = ota_begin;
    port->ota_write = ota_write;
    port->ota_erase_ahead = ota_erase_ahead;
    port->ota_end = ota_end;
    port->ota_abort = ota_abort;
    port->base_read = base_read;
    port->ota_set_boot = ota_set_boot;
}
