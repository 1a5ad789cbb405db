/* Shared state of the ESP-IDF port's files (one BLE OTA service per device, so one instance). */
#ifndef BLE_OTA_ESP_PORT_PRIV_H
#define BLE_OTA_ESP_PORT_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "nvs.h"
#include "ble_ota_port.h"

typedef struct {
    /* OTA target (writer context only) */
    const esp_partition_t *target;
    esp_ota_handle_t handle;
    bool begun;
    uint32_t image_size;
    uint32_t written;     /**< next image offset esp_ota_write will write */
    uint32_t erased_to;   /**< partition bytes [0, erased_to) are erased for this update */
    uint32_t erase_end;   /**< ble_ota_erase_end(image_size, partition size) */
    uint32_t erase_ahead; /**< Kconfig BLE_OTA_ERASE_AHEAD_BYTES */
    /* NVS */
    nvs_handle_t nvs;
    bool nvs_open;
} ble_ota_esp_port_state_t;

/* Fill the port table's function groups (each file owns one group). */
void ble_ota_esp_flash_fill(ble_ota_port_t *port);
void ble_ota_esp_app_fill(ble_ota_port_t *port);
void ble_ota_esp_kv_fill(ble_ota_port_t *port);
void ble_ota_esp_crypto_fill(ble_ota_port_t *port);
void ble_ota_esp_inflate_fill(ble_ota_port_t *port);
void ble_ota_esp_provision_fill(ble_ota_port_t *port);

#endif
