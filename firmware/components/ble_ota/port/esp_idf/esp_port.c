/*
 * ESP-IDF port: assembles ble_ota_port_t and runs the core's asynchronous contexts.
 *   lock      — a FreeRTOS mutex (BLE host task, writer task and esp_timer task share the core);
 *   writer    — a task that sleeps until writer_kick() and then runs the core's writer (flash work never
 *               runs in a NimBLE callback);
 *   timer     — one esp_timer (resume timeout, delayed reboot).
 */
#include <string.h>
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "nvs.h"
#include "ble_ota_port_esp_idf.h"
#include "esp_port_priv.h"

static const char *TAG = "ble_ota_port";

static ble_ota_esp_port_state_t s_state;
static ble_ota_esp_port_config_t s_cfg;
static SemaphoreHandle_t s_lock;
static StaticSemaphore_t s_lock_buf;
static TaskHandle_t s_writer;
static esp_timer_handle_t s_timer;

static void lock(void *ctx) { xSemaphoreTake(s_lock, portMAX_DELAY); }
static void unlock(void *ctx) { xSemaphoreGive(s_lock); }

static void writer_kick(void *ctx)
{
    /* Only a notification: the caller holds the core lock, the work happens in the writer task. */
    xTaskNotifyGive(s_writer);
}

static void writer_task(void *arg)
{
    for (;;) {
        ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
        s_cfg.writer_run(s_cfg.arg);
    }
}

static void timer_cb(void *arg)
{
    s_cfg.timer_fired(s_cfg.arg);
}

static void timer_arm(void *ctx, uint32_t delay_ms)
{
    esp_timer_stop(s_timer); /* ESP_ERR_INVALID_STATE when not running: fine */
    if (delay_ms > 0) {
        esp_timer_start_once(s_timer, (uint64_t)delay_ms * 1000u);
    }
}

static uint32_t now_ms(void *ctx)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

static void log_line(void *ctx, const char *msg)
{
    ESP_LOGI(TAG, "%s", msg);
}

esp_err_t ble_ota_port_esp_idf_kv_set(const char *key, const void *buf, size_t len)
{
    if (!s_state.nvs_open) {
        return ESP_ERR_INVALID_STATE;
    }
    esp_err_t err = nvs_set_blob(s_state.nvs, key, buf, len);
    return err == ESP_OK ? nvs_commit(s_state.nvs) : err;
}

esp_err_t ble_ota_port_esp_idf_init(ble_ota_port_t *port, const ble_ota_esp_port_config_t *cfg)
{
    if (port == NULL || cfg == NULL || cfg->writer_run == NULL || cfg->timer_fired == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (s_lock != NULL) {
        return ESP_ERR_INVALID_STATE; /* one BLE OTA service per device */
    }
    s_cfg = *cfg;
    memset(&s_state, 0, sizeof(s_state));
    s_state.erase_ahead = cfg->erase_ahead_bytes;

    esp_err_t err = nvs_open("ble_ota", NVS_READWRITE, &s_state.nvs);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nvs_open(ble_ota) failed: %s (call nvs_flash_init() first)", esp_err_to_name(err));
        return err;
    }
    s_state.nvs_open = true;

    s_lock = xSemaphoreCreateMutexStatic(&s_lock_buf);
    const esp_timer_create_args_t targs = {
        .callback = timer_cb,
        .dispatch_method = ESP_TIMER_TASK,
        .name = "ble_ota",
    };
    err = esp_timer_create(&targs, &s_timer);
    if (err != ESP_OK) {
        return err;
    }
    if (xTaskCreate(writer_task, "ble_ota_wr", cfg->writer_stack, NULL, cfg->writer_priority, &s_writer) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }

    memset(port, 0, sizeof(*port));
    port->ctx = &s_state;
    port->lock = lock;
    port->unlock = unlock;
    port->writer_kick = writer_kick;
    port->now_ms = now_ms;
    port->timer_arm = timer_arm;
    port->log = log_line;
    ble_ota_esp_flash_fill(port);
    ble_ota_esp_app_fill(port);
    ble_ota_esp_kv_fill(port);
    ble_ota_esp_crypto_fill(port);
    ble_ota_esp_inflate_fill(port);
    ble_ota_esp_provision_fill(port);
    return ESP_OK;
}
