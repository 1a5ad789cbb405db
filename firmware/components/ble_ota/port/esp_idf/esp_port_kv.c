/* Persistent key/value for the core (update record, fleet key, boot count): NVS namespace "ble_ota". */
#include <stdlib.h>
#include <string.h>
#include "esp_log.h"
#include "nvs.h"
#include "esp_port_priv.h"

static const char *TAG = "ble_ota_nvs";

static int kv_get(void *ctx, const char *key, void *buf, size_t *len)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (!st->nvs_open) {
        return -1;
    }
    size_t stored = 0;
    /* Ask for the size first: nvs_get_blob fails outright when the buffer is too small. */
    if (nvs_get_blob(st->nvs, key, NULL, &stored) != ESP_OK) {
        return -1;
    }
    if (stored <= *len) {
        *len = stored;
        return nvs_get_blob(st->nvs, key, buf, len) == ESP_OK ? 0 : -1;
    }
    /* Stored value longer than the buffer: return its first *len bytes and its full size. */
    uint8_t *tmp = malloc(stored);
    if (tmp == NULL) {
        return -1;
    }
    size_t got = stored;
    int rc = nvs_get_blob(st->nvs, key, tmp, &got) == ESP_OK ? 0 : -1;
    if (rc == 0) {
        memcpy(buf, tmp, *len);
        *len = stored;
    }
    free(tmp);
    return rc;
}

static int kv_set(void *ctx, const char *key, const void *buf, size_t len)
{
    ble_ota_esp_port_state_t *st = ctx;
    if (!st->nvs_open) {
        return -1;
    }
    esp_err_t err = nvs_set_blob(st->nvs, key, buf, len);
    if (err == ESP_OK) {
        err = nvs_commit(st->nvs);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "writing %s failed: %s", key, esp_err_to_name(err));
        return -1;
    }
    return 0;
}

void ble_ota_esp_kv_fill(ble_ota_port_t *port)
{
    port->kv_get = kv_get;
    port->kv_set = kv_set;
}
