/*
 * GAP: advertising per PROTOCOL.md §8 (Flags + Complete Local Name in the advertisement; 128-bit OTA
 * service UUID + manufacturer data in the scan response, refreshed when the status changes), and the
 * connection events the core needs (connect, MTU, disconnect, subscribe). On connect the device starts an
 * ATT MTU exchange and asks for 251-octet LL PDUs, the 2M PHY where available and a short connection
 * interval: the central decides, but most accept, and each multiplies write-without-response throughput.
 */
#include <stdio.h>
#include <string.h>
#include "esp_log.h"
#include "host/ble_hs.h"
#include "host/util/util.h"
#include "nimble/nimble_port.h"
#include "services/gap/ble_svc_gap.h"
#include "sdkconfig.h"
#include "ble_ota.h"
#include "ble_ota_nimble_priv.h"

static const char *TAG = "ble_ota_gap";

#define NAME_MAX_LEN 26 /* PROTOCOL.md §8: the name must leave room for the flags in 31 bytes */
#define LL_MAX_TX_OCTETS 251
#define LL_MAX_TX_TIME 2120 /* us for 251 octets at 1M PHY */

static bool s_advertises;   /* false when the app owns advertising (ble_ota_init_services) */
static bool s_synced;
static uint8_t s_own_addr_type;
static char s_name[NAME_MAX_LEN + 1];
static struct ble_npl_event s_refresh_ev;
static bool s_refresh_ev_ready;

static int gap_event(struct ble_gap_event *event, void *arg);

static void set_scan_response(void)
{
    uint8_t mfg[BLE_OTA_MFG_DATA_LEN];
    struct ble_hs_adv_fields rsp = { 0 };
    rsp.uuids128 = &ble_ota_svc_uuid;
    rsp.num_uuids128 = 1;
    rsp.uuids128_is_complete = 1;
    rsp.mfg_data = mfg;
    rsp.mfg_data_len = (uint8_t)ble_ota_core_build_mfg_data(mfg);
    int rc = ble_gap_adv_rsp_set_fields(&rsp);
    if (rc != 0) {
        ESP_LOGW(TAG, "scan response not set: %d", rc);
    }
}

static void start_advertising(void)
{
    if (!s_advertises || !s_synced || ble_gap_adv_active()) {
        return;
    }
    struct ble_hs_adv_fields adv = { 0 };
    adv.flags = BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP;
    adv.name = (const uint8_t *)s_name;
    adv.name_len = (uint8_t)strlen(s_name);
    adv.name_is_complete = 1;
    int rc = ble_gap_adv_set_fields(&adv);
    if (rc != 0) {
        ESP_LOGE(TAG, "advertising data not set: %d", rc);
        return;
    }
    set_scan_response();
    uint16_t itvl = (uint16_t)(CONFIG_BLE_OTA_ADV_INTERVAL_MS * 1000 / 625); /* 0.625 ms units */
    struct ble_gap_adv_params params = {
        .conn_mode = BLE_GAP_CONN_MODE_UND,
        .disc_mode = BLE_GAP_DISC_MODE_GEN,
        .itvl_min = itvl,
        .itvl_max = (uint16_t)(itvl + itvl / 4),
    };
    rc = ble_gap_adv_start(s_own_addr_type, NULL, BLE_HS_FOREVER, &params, gap_event, NULL);
    if (rc != 0 && rc != BLE_HS_EALREADY) {
        ESP_LOGE(TAG, "advertising not started: %d", rc);
    }
}

/* Runs in the NimBLE host task (posted to its default event queue). */
static void refresh_event(struct ble_npl_event *ev)
{
    if (s_advertises && s_synced && ble_gap_adv_active()) {
        set_scan_response(); /* legacy advertising: the scan response may change while advertising */
    }
}

void ble_ota_gap_request_adv_refresh(void)
{
    if (s_advertises && s_refresh_ev_ready) {
        ble_npl_eventq_put(nimble_port_get_dflt_eventq(), &s_refresh_ev);
    }
}

void ble_ota_gap_set_owner(bool component_advertises)
{
    s_advertises = component_advertises;
    if (component_advertises && !s_refresh_ev_ready) {
        ble_npl_event_init(&s_refresh_ev, refresh_event, NULL);
        s_refresh_ev_ready = true;
    }
}

void ble_ota_gap_on_sync(void)
{
    int rc = ble_hs_util_ensure_addr(0);
    if (rc == 0) {
        rc = ble_hs_id_infer_auto(0, &s_own_addr_type);
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "no usable Bluetooth address: %d", rc);
        return;
    }
    uint8_t addr[6] = { 0 };
    ble_hs_id_copy_addr(s_own_addr_type, addr, NULL);
    /* addr is little-endian: addr[2..0] are the last three bytes of the printed address. */
    snprintf(s_name, sizeof(s_name), "%.20s%02x%02x%02x", CONFIG_BLE_OTA_DEVICE_NAME_PREFIX, addr[2], addr[1],
             addr[0]);
    ble_svc_gap_device_name_set(s_name);
    /* Default for every new connection: full 251-octet LL PDUs (tune_link asks again per connection). */
    rc = ble_gap_write_sugg_def_data_len(LL_MAX_TX_OCTETS, LL_MAX_TX_TIME);
    if (rc != 0) {
        ESP_LOGD(TAG, "suggested default data length: %d", rc);
    }
    s_synced = true;
    start_advertising();
}

static void tune_link(uint16_t conn)
{
    /* Not every central starts the ATT MTU exchange; asking from our side (allowed in either direction)
     * gets chunks of up to MTU - 7 bytes instead of 16. The result arrives as BLE_GAP_EVENT_MTU. */
    int rc = ble_gattc_exchange_mtu(conn, NULL, NULL);
    if (rc != 0) {
        ESP_LOGD(TAG, "MTU exchange request: %d", rc);
    }
    rc = ble_gap_set_data_len(conn, LL_MAX_TX_OCTETS, LL_MAX_TX_TIME);
    if (rc != 0) {
        ESP_LOGD(TAG, "data length request: %d", rc);
    }
#if CONFIG_BLE_OTA_PREFER_2M_PHY
    rc = ble_gap_set_prefered_le_phy(conn, BLE_GAP_LE_PHY_2M_MASK, BLE_GAP_LE_PHY_2M_MASK, BLE_GAP_LE_PHY_CODED_ANY);
    if (rc != 0) {
        ESP_LOGD(TAG, "2M PHY request: %d", rc);
    }
#endif
    /* 15..30 ms, no latency, 4 s supervision: within Apple's accessory rules, fast enough for ~100 KB/s. */
    const struct ble_gap_upd_params params = {
        .itvl_min = 12, .itvl_max = 24, .latency = 0, .supervision_timeout = 400,
        .min_ce_len = 0, .max_ce_len = 0,
    };
    rc = ble_gap_update_params(conn, &params);
    if (rc != 0) {
        ESP_LOGD(TAG, "connection parameter request: %d", rc);
    }
}

int ble_ota_gap_event(struct ble_gap_event *event, void *arg)
{
    switch (event->type) {
    case BLE_GAP_EVENT_CONNECT:
        if (event->connect.status == 0) {
            uint16_t conn = event->connect.conn_handle;
            ble_ota_core_on_connect(conn, ble_att_mtu(conn));
            tune_link(conn);
        }
        /* Keep advertising while there is room: a second central can still read Status (or get BUSY). */
        start_advertising();
        break;
    case BLE_GAP_EVENT_DISCONNECT:
        ble_ota_gatt_forget_conn(event->disconnect.conn.conn_handle);
        ble_ota_core_on_disconnect(event->disconnect.conn.conn_handle);
        start_advertising();
        break;
    case BLE_GAP_EVENT_MTU:
        ble_ota_core_on_mtu(event->mtu.conn_handle, event->mtu.value);
        break;
    case BLE_GAP_EVENT_SUBSCRIBE:
        ble_ota_gatt_on_subscribe(event);
        break;
    case BLE_GAP_EVENT_ADV_COMPLETE:
        start_advertising();
        break;
    default:
        break;
    }
    return 0;
}

static int gap_event(struct ble_gap_event *event, void *arg)
{
    return ble_ota_gap_event(event, arg);
}
