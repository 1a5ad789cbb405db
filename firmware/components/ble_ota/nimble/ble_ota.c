/*
 * Public entry points (ble_ota.h): configuration from Kconfig, the diagnostics hook with a timeout,
 * fleet-key provisioning, and start-up of the port, the core and NimBLE.
 */
#include <stdio.h>
#include <string.h>
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "host/ble_hs.h"
#include "nimble/nimble_port.h"
#include "nimble/nimble_port_freertos.h"
#include "nvs.h"
#include "services/gap/ble_svc_gap.h"
#include "services/gatt/ble_svc_gatt.h"
#include "sdkconfig.h"
#include "ble_ota.h"
#include "ble_ota_port_esp_idf.h"
#include "ble_ota_nimble_priv.h"

static const char *TAG = "ble_ota";

/* A flash erase or program keeps the cache disabled for its whole duration unless flash auto suspend is on
 * (spi_flash_os_func_app.c:25 SPI_FLASH_CACHE_NO_DISABLE, :104-122 spi1_start -> cache_disable;
 * esp_flash_api.c:657-690 one start/end pair per sector or 64 KiB block). Code in flash cannot run then.
 * With CONFIG_BT_CTRL_RUN_IN_FLASH_ONLY the controller itself is in flash, and ESP-IDF warns that
 * "Bluetooth may not work properly during erasing flash" (bt/controller/esp32c3/Kconfig.in:516-525): every
 * 64 KiB block erase of an update (about 150 ms) would silence the link. */
#if defined(CONFIG_BT_CTRL_RUN_IN_FLASH_ONLY) && CONFIG_BT_CTRL_RUN_IN_FLASH_ONLY && !defined(CONFIG_SPI_FLASH_AUTO_SUSPEND)
#error "ble_ota: CONFIG_BT_CTRL_RUN_IN_FLASH_ONLY needs CONFIG_SPI_FLASH_AUTO_SUSPEND=y (the controller must run during flash erases)"
#endif

static ble_ota_port_t s_port;
static bool s_started;

#ifdef BLE_OTA_HAVE_EMBEDDED_RELEASE_KEYS
extern const uint8_t s_release_keys_start[] asm("_binary_ble_ota_release_keys_start");
extern const uint8_t s_release_keys_end[] asm("_binary_ble_ota_release_keys_end");
#endif

void ble_ota_config_from_kconfig(ble_ota_config_t *cfg)
{
    ble_ota_config_default(cfg);
    cfg->max_chunk = CONFIG_BLE_OTA_MAX_CHUNK;
    cfg->window = CONFIG_BLE_OTA_WINDOW_BYTES;
    cfg->ack_interval = CONFIG_BLE_OTA_ACK_INTERVAL_BYTES;
    cfg->resume_timeout_ms = CONFIG_BLE_OTA_RESUME_TIMEOUT_MS;
    cfg->reboot_delay_ms = CONFIG_BLE_OTA_REBOOT_DELAY_MS;
#if CONFIG_BLE_OTA_CONFIRM_POLICY_HOST
    cfg->policy = BLE_OTA_POLICY_HOST;
#else
    cfg->policy = BLE_OTA_POLICY_AUTO;
#endif
#if CONFIG_BLE_OTA_DEFLATE
    cfg->deflate = true;
#else
    cfg->deflate = false;
#endif
#if CONFIG_BLE_OTA_REQUIRE_FLEET_KEY
    cfg->require_fleet_key = true;
#else
    cfg->require_fleet_key = false;
#endif
#if CONFIG_BLE_OTA_ALLOW_DOWNGRADE
    cfg->allow_downgrade = true;
#else
    cfg->allow_downgrade = false;
#endif
    /* esp_ota_end verifies the app signature when the build has signed-app verification on update
     * (Secure Boot, or CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT). */
#if CONFIG_SECURE_SIGNED_ON_UPDATE
    cfg->signed_images = true;
#else
    cfg->signed_images = false;
#endif
#if CONFIG_BLE_OTA_INSECURE_ALLOW_UNAUTHENTICATED
    cfg->allow_unauthenticated = true;
#else
    cfg->allow_unauthenticated = false;
#endif
    cfg->provision_window_ms = (uint32_t)CONFIG_BLE_OTA_PROVISION_WINDOW_S * 1000u;
#ifdef BLE_OTA_HAVE_EMBEDDED_RELEASE_KEYS
    cfg->embedded_release_keys = s_release_keys_start;
    cfg->embedded_release_keys_len = (size_t)(s_release_keys_end - s_release_keys_start);
#endif
}

/* ---- diagnostics with a timeout: the app's hook runs in its own task ---- */

static ble_ota_diagnostics_fn s_diag_fn;
static void *s_diag_arg;
static SemaphoreHandle_t s_diag_done;
static bool s_diag_passed;
static char s_diag_msg[32];

static void diagnostics_task(void *arg)
{
    s_diag_passed = s_diag_fn(s_diag_arg, s_diag_msg, sizeof(s_diag_msg));
    xSemaphoreGive(s_diag_done);
    vTaskDelete(NULL);
}

static bool diagnostics_with_timeout(void *arg, char *msg, size_t msg_size)
{
    s_diag_done = xSemaphoreCreateBinary();
    if (s_diag_done == NULL ||
        xTaskCreate(diagnostics_task, "ble_ota_diag", CONFIG_BLE_OTA_DIAGNOSTICS_TASK_STACK, NULL, tskIDLE_PRIORITY + 2,
                    NULL) != pdPASS) {
        snprintf(msg, msg_size, "diagnostics: no memory");
        return false;
    }
    if (xSemaphoreTake(s_diag_done, pdMS_TO_TICKS(CONFIG_BLE_OTA_DIAGNOSTICS_TIMEOUT_MS)) != pdTRUE) {
        /* The hook task keeps running; its result is ignored. The semaphore stays allocated for it. */
        snprintf(msg, msg_size, "diagnostics timed out (%u ms)", (unsigned)CONFIG_BLE_OTA_DIAGNOSTICS_TIMEOUT_MS);
        return false;
    }
    vSemaphoreDelete(s_diag_done);
    snprintf(msg, msg_size, "%s", s_diag_msg);
    return s_diag_passed;
}

void ble_ota_set_diagnostics(ble_ota_diagnostics_fn fn, void *arg)
{
    s_diag_fn = fn;
    s_diag_arg = arg;
    ble_ota_core_set_diagnostics(fn != NULL ? diagnostics_with_timeout : NULL, NULL);
}

static esp_err_t store_blob(const char *name, const uint8_t *value, size_t len)
{
    if (value == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    nvs_handle_t h;
    esp_err_t err = nvs_open("ble_ota", NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_blob(h, name, value, len);
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}

esp_err_t ble_ota_provision_fleet_key(const uint8_t key[32])
{
    return store_blob("fleet_key", key, 32);
}

esp_err_t ble_ota_provision_device_key(const uint8_t key[32])
{
    return store_blob("device_key", key, 32);
}

esp_err_t ble_ota_provision_release_key(unsigned key_id, const uint8_t public_key[65])
{
    char name[] = "rel_key0";
    if (key_id > 3 || public_key == NULL || public_key[0] != 0x04) {
        return ESP_ERR_INVALID_ARG;
    }
    name[7] = (char)('0' + key_id);
    return store_blob(name, public_key, 65);
}

/* ---- start-up ---- */

static void core_writer_run(void *arg) { ble_ota_core_writer_run(); }
static void core_timer_fired(void *arg) { ble_ota_core_on_timer(); }

static esp_err_t start_core(const ble_ota_config_t *cfg)
{
    if (s_started) {
        return ESP_ERR_INVALID_STATE;
    }
    ble_ota_config_t kconfig;
    if (cfg == NULL) {
        ble_ota_config_from_kconfig(&kconfig);
        cfg = &kconfig;
    }
    const ble_ota_esp_port_config_t port_cfg = {
        .writer_run = core_writer_run,
        .timer_fired = core_timer_fired,
        .arg = NULL,
        .erase_ahead_bytes = CONFIG_BLE_OTA_ERASE_AHEAD_BYTES,
        .writer_stack = CONFIG_BLE_OTA_WRITER_TASK_STACK,
        .writer_priority = CONFIG_BLE_OTA_WRITER_TASK_PRIORITY,
    };
    esp_err_t err = ble_ota_port_esp_idf_init(&s_port, &port_cfg);
    if (err != ESP_OK) {
        return err;
    }
    s_port.notify = ble_ota_gatt_notify;
    /* Runs the first-boot diagnostics; with the auto policy a failure rolls back and reboots here, and a
     * pass is confirmed only once NimBLE advertises (ble_ota_core_on_ble_ready from the GAP code). */
    if (ble_ota_core_init(cfg, &s_port) != 0) {
        ESP_LOGE(TAG, "core init failed (memory or configuration)");
        return ESP_ERR_NO_MEM;
    }
    s_started = true;
    return ESP_OK;
}

static esp_err_t register_services(void)
{
    return ble_ota_gatt_register() == 0 ? ESP_OK : ESP_FAIL;
}

esp_err_t ble_ota_init_services(const ble_ota_config_t *cfg)
{
    esp_err_t err = start_core(cfg);
    if (err != ESP_OK) {
        return err;
    }
    ble_ota_gap_set_owner(false);
    return register_services();
}

static void on_sync(void)
{
    ble_ota_gap_on_sync();
}

static void on_reset(int reason)
{
    ESP_LOGW(TAG, "NimBLE host reset, reason %d", reason);
}

static void host_task(void *param)
{
    nimble_port_run(); /* returns only after nimble_port_stop() */
    nimble_port_freertos_deinit();
}

esp_err_t ble_ota_init(const ble_ota_config_t *cfg)
{
    esp_err_t err = start_core(cfg);
    if (err != ESP_OK) {
        return err;
    }
    err = nimble_port_init();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nimble_port_init failed: %s", esp_err_to_name(err));
        return err;
    }
    ble_hs_cfg.sync_cb = on_sync;
    ble_hs_cfg.reset_cb = on_reset;
    ble_svc_gap_init();
    ble_svc_gatt_init();
    ble_ota_gap_set_owner(true);
    err = register_services();
    if (err != ESP_OK) {
        return err;
    }
    nimble_port_freertos_init(host_task);
    return ESP_OK;
}
