/*
 * ble_ota.h — add BLE firmware updates (protocol v2, docs/PROTOCOL.md) to an ESP-IDF app.
 *
 *   nvs_flash_init();                         // the app's own NVS set-up
 *   ble_ota_set_diagnostics(my_check, NULL);  // optional: first-boot self-test of a new image
 *   ble_ota_init(NULL);                       // settings from Kconfig; starts NimBLE and advertising
 *
 * Apps that already run NimBLE themselves use ble_ota_init_services() instead (see below).
 * The core API (ble_ota_core.h: config struct, error codes, status) is included for convenience.
 */
#ifndef BLE_OTA_H
#define BLE_OTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "ble_ota_core.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ble_gap_event;

/** Settings from Kconfig (menuconfig "BLE OTA (protocol v2)"), plus caps bit5 when the build verifies
 *  signed apps (CONFIG_SECURE_SIGNED_APPS_* / Secure Boot). */
void ble_ota_config_from_kconfig(ble_ota_config_t *cfg);

/** Register the first-boot diagnostics hook (call before ble_ota_init). The hook runs in its own task
 *  and counts as failed when it does not return within CONFIG_BLE_OTA_DIAGNOSTICS_TIMEOUT_MS. */
void ble_ota_set_diagnostics(ble_ota_diagnostics_fn fn, void *arg);

/**
 * Start the OTA service with NimBLE owned by this component: initialises the NimBLE port, registers
 * the GAP/GATT/Device Information/OTA services, starts the host task and advertises. cfg == NULL: Kconfig.
 * Needs nvs_flash_init() first. Runs the first-boot diagnostics and applies the confirm policy (auto +
 * failure: rolls back and reboots inside this call).
 */
esp_err_t ble_ota_init(const ble_ota_config_t *cfg);

/**
 * For apps that run NimBLE themselves: call after nimble_port_init() and before the host task starts
 * (nimble_port_freertos_init). Registers the Device Information and OTA services only. The app keeps
 * advertising (put ble_ota_core_build_mfg_data() into its scan response as manufacturer data if scanners
 * should see the OTA state) and forwards every GAP event of its connections to ble_ota_gap_event().
 */
esp_err_t ble_ota_init_services(const ble_ota_config_t *cfg);

/** GAP events (connect, disconnect, MTU, subscribe) for ble_ota_init_services() users. Returns 0. */
int ble_ota_gap_event(struct ble_gap_event *event, void *arg);

/** Store the 32-byte fleet key in NVS (namespace "ble_ota", key "fleet_key"). Takes effect at the next
 *  ble_ota_init() (call it before init, e.g. from a one-time provisioning step, or provision the key with
 *  an NVS partition image). Needs nvs_flash_init() first. */
esp_err_t ble_ota_provision_fleet_key(const uint8_t key[32]);

/** Store this device's own session key (NVS "device_key"; wins over fleet_key): the factory step for
 *  per-device keys, HKDF-SHA256(plant master key, "BLEOTA2-DEVICE-KEY", esp_read_mac(ESP_MAC_BASE)).
 *  Takes effect at the next ble_ota_init(). */
esp_err_t ble_ota_provision_device_key(const uint8_t key[32]);

/** Store release public key key_id (0..3; NVS "rel_key<id>", 65-byte uncompressed SEC1 point). NVS keys
 *  replace the built-in ones (CONFIG_BLE_OTA_RELEASE_KEYS_FILE). Takes effect at the next ble_ota_init(). */
esp_err_t ble_ota_provision_release_key(unsigned key_id, const uint8_t public_key[65]);

#ifdef __cplusplus
}
#endif
#endif /* BLE_OTA_H */
