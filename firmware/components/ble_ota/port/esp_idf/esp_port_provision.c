/*
 * The physical action that opens the provisioning window (PROTOCOL.md §E): CONFIG_BLE_OTA_PROVISION_GPIO
 * held low while the device resets (read once, at init, with the internal pull-up). -1 disables it: then
 * keys come only from the factory (NVS) or the application (ble_ota_provision_device_key).
 */
#include <stdbool.h>
#include "sdkconfig.h"
#include "esp_port_priv.h"

#if CONFIG_BLE_OTA_PROVISION_GPIO >= 0
#include "driver/gpio.h"
#include "esp_rom_sys.h"

static bool provision_requested(void *ctx)
{
    const gpio_config_t io = {
        .pin_bit_mask = 1ULL << CONFIG_BLE_OTA_PROVISION_GPIO,
        .mode = GPIO_MODE_INPUT,
        .pull_up_en = GPIO_PULLUP_ENABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    if (gpio_config(&io) != ESP_OK) {
        return false;
    }
    esp_rom_delay_us(50); /* let the pull-up charge the line before sampling */
    bool held = gpio_get_level(CONFIG_BLE_OTA_PROVISION_GPIO) == 0;
    gpio_reset_pin(CONFIG_BLE_OTA_PROVISION_GPIO);
    return held;
}
#else
static bool provision_requested(void *ctx)
{
    return false;
}
#endif

void ble_ota_esp_provision_fill(ble_ota_port_t *port)
{
    port->provision_requested = provision_requested;
}
