/*
 * ble_ota_port_esp_idf.h — the ESP-IDF implementation of ble_ota_port_t.
 *
 * It fills every function of the port table except notify (the NimBLE binding provides that), and runs
 * the two asynchronous contexts the core needs: a writer task (flash erase/write, inflate, hashing) and a
 * one-shot esp_timer. It does not know the core's API: the glue passes the two entry points in.
 */
#ifndef BLE_OTA_PORT_ESP_IDF_H
#define BLE_OTA_PORT_ESP_IDF_H

#include "esp_err.h"
#include "ble_ota_port.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    /** Called in the writer task after writer_kick() (the core's ble_ota_core_writer_run). */
    void (*writer_run)(void *arg);
    /** Called in the esp_timer task when the armed timer expires (the core's ble_ota_core_on_timer). */
    void (*timer_fired)(void *arg);
    void *arg;                  /**< handed to writer_run / timer_fired (the core instance) */
    uint32_t erase_ahead_bytes; /**< keep this much erased ahead of the write position */
    uint32_t writer_stack;      /**< writer task stack, bytes */
    unsigned writer_priority;   /**< writer task FreeRTOS priority */
} ble_ota_esp_port_config_t;

/** Opens NVS namespace "ble_ota", creates the lock, timer and writer task, and fills *port (notify stays
 *  NULL: set it before the core starts). nvs_flash_init() must have succeeded before. */
esp_err_t ble_ota_port_esp_idf_init(ble_ota_port_t *port, const ble_ota_esp_port_config_t *cfg);

/** The raw NVS store the port uses (namespace "ble_ota"), for provisioning outside the core. */
esp_err_t ble_ota_port_esp_idf_kv_set(const char *key, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* BLE_OTA_PORT_ESP_IDF_H */
