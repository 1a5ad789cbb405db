/*
 * GAP: advertising per PROTOCOL.md §8 (Flags + Complete Local Name in the advertisement; 128-bit OTA
 * service UUID + manufacturer data in the scan response, refreshed when the status changes), and the
 * connection events the core needs (connect, MTU, disconnect, subscribe). On connect the device starts an
 * ATT MTU exchange and asks for 251-octet LL PDUs, the 2M PHY where available and, only when the central
 * chose a long one, a short connection interval (tune_link).
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

/* The advertising here uses the legacy API: with extended advertising NimBLE compiles
 * ble_gap_adv_set_fields / ble_gap_adv_rsp_set_fields / ble_gap_adv_start to return BLE_HS_ENOTSUP
 * (esp-nimble nimble/host/src/ble_gap.c:3166-3171, 3328-3356, 3359-3361): the device would never be
 * reachable. Refuse the configuration instead of shipping an image that cannot be updated again. */
#if defined(CONFIG_BT_NIMBLE_EXT_ADV) && CONFIG_BT_NIMBLE_EXT_ADV
#error "ble_ota advertises with NimBLE's legacy advertising API: set CONFIG_BT_NIMBLE_EXT_ADV=n"
#endif

#define NAME_MAX_LEN 26 /* PROTOCOL.md §8: the name must leave room for the flags in 31 bytes */
#define LL_MAX_TX_OCTETS 251
#define LL_MAX_TX_TIME 2120 /* us for 251 octets at 1M PHY */
#define CONN_ITVL_MIN 6     /* 1.25 ms units: 7.5 ms */
#define CONN_ITVL_MAX 12    /* 15 ms */

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
        return;
    }
    /* The BLE stack works: the auto policy may now confirm the running image (from the writer task). */
    ble_ota_core_on_ble_ready();
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
    /* Connection interval, from the link physics (docs/LINK-MODEL.md §1, §3): a full 251-octet exchange
     * takes 1.39 ms at 2M and 2.47 ms at 1M, and central controllers cap the PDUs per connection event
     * (a few; some have only 3 LE ACL buffers), so the data moved per event is bounded and throughput
     * grows as the interval shrinks. noble's HCI layer already connects at 7.5-22.5 ms and accepts what
     * the peripheral asks (noble lib/hci-socket/hci.js:498-499 LE Create Connection 0x0006-0x0012;
     * signaling.js:62-72 accepts, on Linux raw sockets the kernel answers), and Linux
     * kernel connections use 30-50 ms. Asking for 15-30 ms, as before, could slow a 7.5 ms link to 30 ms:
     * four times fewer events. So: keep what the central chose up to 15 ms; above that ask for
     * 7.5-15 ms. 4 s supervision timeout: a central that has to wait out a device's flash stall does not
     * drop the link. (iOS refuses intervals below 15 ms: the request then fails and nothing changes.) */
    struct ble_gap_conn_desc desc;
    if (ble_gap_conn_find(conn, &desc) == 0 && desc.conn_itvl > CONN_ITVL_MAX) {
        const struct ble_gap_upd_params params = {
            .itvl_min = CONN_ITVL_MIN, .itvl_max = CONN_ITVL_MAX, .latency = 0, .supervision_timeout = 400,
            .min_ce_len = 0, .max_ce_len = 0,
        };
        rc = ble_gap_update_params(conn, &params);
        if (rc != 0) {
            ESP_LOGD(TAG, "connection parameter request: %d", rc);
        }
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
    case BLE_GAP_EVENT_DATA_LEN_CHG:
        /* Data writes travel central -> device: the device's receive length sizes the chunks. NimBLE leaves
         * data_len_chg.conn_handle unset (ble_gap.c:2563-2577 fills only the octets and times), so the core
         * applies it when exactly one central is connected (the usual update). */
        ble_ota_core_on_data_len(BLE_OTA_CONN_NONE, event->data_len_chg.max_rx_octets);
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
