/*
 * Example app for the ble_ota component: one init call, plus a first-boot diagnostics hook that proves
 * the new image can do its job before it is marked valid (auto policy) or offered for confirmation
 * (host policy). Replace the checks with your product's own (sensor answers, network joins, ...).
 */
#include <stdio.h>
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "ble_ota.h"

#define MIN_FREE_HEAP_BYTES (40 * 1024)
#define HEARTBEAT_PERIOD_MS 100
#define HEARTBEATS_REQUIRED 5

static const char *TAG = "app";
static volatile uint32_t s_heartbeats;

/* Stands in for the application's real work; diagnostics check that it runs. */
static void app_task(void *arg)
{
    for (;;) {
        s_heartbeats++;
        vTaskDelay(pdMS_TO_TICKS(HEARTBEAT_PERIOD_MS));
    }
}

/* Runs once, on the first boot of a newly installed image (in its own task, with a Kconfig timeout). */
static bool diagnostics(void *arg, char *msg, size_t msg_size)
{
    size_t free_heap = heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
    if (free_heap < MIN_FREE_HEAP_BYTES) {
        snprintf(msg, msg_size, "heap %u < %u", (unsigned)free_heap, (unsigned)MIN_FREE_HEAP_BYTES);
        return false;
    }
    uint32_t start = s_heartbeats;
    vTaskDelay(pdMS_TO_TICKS(HEARTBEAT_PERIOD_MS * (HEARTBEATS_REQUIRED + 2)));
    uint32_t beats = s_heartbeats - start;
    if (beats < HEARTBEATS_REQUIRED) {
        snprintf(msg, msg_size, "app task stalled (%u beats)", (unsigned)beats);
        return false;
    }
    snprintf(msg, msg_size, "ok heap=%u beats=%u", (unsigned)free_heap, (unsigned)beats);
    return true;
}

static void init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        /* Only when the NVS layout is unusable; note that this also erases a provisioned fleet key. */
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
}

void app_main(void)
{
    init_nvs();
    /* The app task starts first so that the diagnostics can watch it. */
    xTaskCreate(app_task, "app", 2048, NULL, 5, NULL);

    ble_ota_set_diagnostics(diagnostics, NULL);
    esp_err_t err = ble_ota_init(NULL); /* settings from menuconfig -> BLE OTA */
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "BLE OTA not started: %s", esp_err_to_name(err));
        return;
    }
    ESP_LOGI(TAG, "BLE OTA ready (uptime %lld ms)", (long long)(esp_timer_get_time() / 1000));
}
