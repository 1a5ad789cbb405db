/* Internal interface between the NimBLE binding's files. */
#ifndef BLE_OTA_NIMBLE_PRIV_H
#define BLE_OTA_NIMBLE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include "host/ble_gap.h"
#include "ble_ota_port.h"

/** GATT (ble_ota_gatt.c) */
int ble_ota_gatt_register(void);
void ble_ota_gatt_notify(void *ctx, ble_ota_conn_t conn, ble_ota_chr_t chr, const uint8_t *data, size_t len);
void ble_ota_gatt_on_subscribe(const struct ble_gap_event *event);
void ble_ota_gatt_forget_conn(uint16_t conn_handle);
extern const ble_uuid128_t ble_ota_svc_uuid;

/** GAP (ble_ota_gap.c) */
void ble_ota_gap_set_owner(bool component_advertises);
void ble_ota_gap_on_sync(void);
/** Rebuild the scan response from the core's state (safe from any task: runs in the host task). */
void ble_ota_gap_request_adv_refresh(void);

#endif
