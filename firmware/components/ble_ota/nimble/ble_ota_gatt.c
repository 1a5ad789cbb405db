/*
 * GATT table of PROTOCOL.md §1 and its access callbacks: Device Information (0x180A) and the OTA service
 * (Control: write + notify, Data: write without response, Status: read + notify). Callbacks run in the
 * NimBLE host task and only hand bytes to the core, which copies Data into its ring buffer; flash work
 * happens in the port's writer task.
 */
#include <string.h>
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "host/ble_hs.h"
#include "host/ble_gatt.h"
#include "sdkconfig.h"
#include "ble_ota_core.h"
#include "ble_ota_nimble_priv.h"

static const char *TAG = "ble_ota_gatt";

/* 5c4e000X-6a8b-4f0e-9a3d-32b1e07a0001, little-endian byte order as NimBLE stores 128-bit UUIDs. */
#define OTA_UUID(x) BLE_UUID128_INIT(0x01, 0x00, 0x7a, 0xe0, 0xb1, 0x32, 0x3d, 0x9a, \
                                     0x0e, 0x4f, 0x8b, 0x6a, (x), 0x00, 0x4e, 0x5c)
const ble_uuid128_t ble_ota_svc_uuid = OTA_UUID(0x01);
static const ble_uuid128_t s_control_uuid = OTA_UUID(0x02);
static const ble_uuid128_t s_data_uuid = OTA_UUID(0x03);
static const ble_uuid128_t s_status_uuid = OTA_UUID(0x04);

static uint16_t s_control_handle;
static uint16_t s_data_handle;
static uint16_t s_status_handle;

/* CCCD state per connection, from BLE_GAP_EVENT_SUBSCRIBE (NimBLE would notify regardless). */
typedef struct {
    uint16_t conn;
    bool control;
    bool status;
} subscriber_t;
static subscriber_t s_subs[CONFIG_BT_NIMBLE_MAX_CONNECTIONS];
/* Written in the host task, read by notify() from the writer and timer tasks too. */
static portMUX_TYPE s_subs_lock = portMUX_INITIALIZER_UNLOCKED;

/* Data payloads and Control values are flattened here; access callbacks all run in the one NimBLE host
 * task. 512 = BLE_ATT_ATTR_MAX_LEN, the longest value NimBLE accepts, also from a long (prepared) write:
 * ble_att_svr_prep_validate refuses a queue longer than that with INVALID_ATTR_VALUE_LEN (esp-nimble
 * 32b2124f nimble/host/include/host/ble_att.h:215, nimble/host/src/ble_att_svr.c:2581-2585). A 512-byte
 * long write at ATT MTU 23 takes 29 Prepare Write requests of 18 bytes, within the 64 prepare entries
 * (nimble/host/syscfg.yml:371-377, ESP-IDF esp_nimble_cfg.h:538-539 MYNEWT_VAL_BLE_ATT_SVR_MAX_PREP_ENTRIES),
 * and NimBLE hands the access callback the reassembled value as one mbuf chain. */
static uint8_t s_rx[512];
_Static_assert(BLE_OTA_CONTROL_MAX_LEN <= sizeof(s_rx), "a Control value must fit the flat buffer");

enum { DIS_MANUFACTURER, DIS_MODEL, DIS_FW_REV };

static int read_string(struct ble_gatt_access_ctxt *ctxt, const char *s)
{
    return os_mbuf_append(ctxt->om, s, strlen(s)) == 0 ? 0 : BLE_ATT_ERR_INSUFFICIENT_RES;
}

static int dis_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt, void *arg)
{
    if (ctxt->op != BLE_GATT_ACCESS_OP_READ_CHR) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    const ble_ota_app_info_t *app = ble_ota_core_app_info();
    switch ((int)(intptr_t)arg) {
    case DIS_MANUFACTURER: return read_string(ctxt, CONFIG_BLE_OTA_MANUFACTURER_NAME);
    case DIS_MODEL: return read_string(ctxt, ble_ota_chip_name(app->chip_id));
    case DIS_FW_REV: return read_string(ctxt, app->version);
    default: return BLE_ATT_ERR_UNLIKELY;
    }
}

/* Flatten a (possibly chained) mbuf; returns the length or -1 when it does not fit max. */
static int flatten(const struct os_mbuf *om, uint8_t *buf, uint16_t max)
{
    uint16_t len = OS_MBUF_PKTLEN(om);
    if (len > max) {
        return -1;
    }
    uint16_t copied = 0;
    if (ble_hs_mbuf_to_flat(om, buf, len, &copied) != 0) {
        return -1;
    }
    return copied;
}

static int control_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt, void *arg)
{
    if (ctxt->op != BLE_GATT_ACCESS_OP_WRITE_CHR) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    /* static, not on the host task's stack: up to 512 bytes (BEGIN with a manifest) */
    int len = flatten(ctxt->om, s_rx, BLE_OTA_CONTROL_MAX_LEN);
    if (len < 0) {
        return BLE_ATT_ERR_INVALID_ATTR_VALUE_LEN; /* longer than any command (long writes are reassembled) */
    }
    return ble_ota_core_on_control_write(conn, s_rx, (size_t)len);
}

static int data_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt, void *arg)
{
    if (ctxt->op != BLE_GATT_ACCESS_OP_WRITE_CHR) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    int len = flatten(ctxt->om, s_rx, sizeof(s_rx));
    if (len < 0) {
        return 0; /* longer than an ATT value can be: nothing sensible to answer */
    }
    ble_ota_core_on_data_write(conn, s_rx, (size_t)len);
    return 0; /* write without response: the core answers with ACK/NAK notifications */
}

static int status_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt, void *arg)
{
    if (ctxt->op != BLE_GATT_ACCESS_OP_READ_CHR) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    /* NimBLE calls this again for every Read Blob and applies the offset itself. */
    uint8_t status[BLE_OTA_STATUS_LEN];
    size_t len = ble_ota_core_read_status(status);
    return os_mbuf_append(ctxt->om, status, len) == 0 ? 0 : BLE_ATT_ERR_INSUFFICIENT_RES;
}

static const struct ble_gatt_svc_def s_services[] = {
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = BLE_UUID16_DECLARE(0x180A),
        .characteristics = (struct ble_gatt_chr_def[]) {
            { .uuid = BLE_UUID16_DECLARE(0x2A29), .access_cb = dis_access,
              .arg = (void *)(intptr_t)DIS_MANUFACTURER, .flags = BLE_GATT_CHR_F_READ },
            { .uuid = BLE_UUID16_DECLARE(0x2A24), .access_cb = dis_access,
              .arg = (void *)(intptr_t)DIS_MODEL, .flags = BLE_GATT_CHR_F_READ },
            { .uuid = BLE_UUID16_DECLARE(0x2A26), .access_cb = dis_access,
              .arg = (void *)(intptr_t)DIS_FW_REV, .flags = BLE_GATT_CHR_F_READ },
            { 0 },
        },
    },
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = &ble_ota_svc_uuid.u,
        .characteristics = (struct ble_gatt_chr_def[]) {
            { .uuid = &s_control_uuid.u, .access_cb = control_access, .val_handle = &s_control_handle,
              .flags = BLE_GATT_CHR_F_WRITE | BLE_GATT_CHR_F_NOTIFY },
            { .uuid = &s_data_uuid.u, .access_cb = data_access, .val_handle = &s_data_handle,
              .flags = BLE_GATT_CHR_F_WRITE_NO_RSP },
            { .uuid = &s_status_uuid.u, .access_cb = status_access, .val_handle = &s_status_handle,
              .flags = BLE_GATT_CHR_F_READ | BLE_GATT_CHR_F_NOTIFY },
            { 0 },
        },
    },
    { 0 },
};

int ble_ota_gatt_register(void)
{
    for (size_t i = 0; i < CONFIG_BT_NIMBLE_MAX_CONNECTIONS; i++) {
        s_subs[i].conn = BLE_HS_CONN_HANDLE_NONE;
    }
    int rc = ble_gatts_count_cfg(s_services);
    if (rc == 0) {
        rc = ble_gatts_add_svcs(s_services);
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "registering the GATT services failed: %d", rc);
    }
    return rc;
}

static subscriber_t *find_sub(uint16_t conn, bool create)
{
    subscriber_t *free_slot = NULL;
    for (size_t i = 0; i < CONFIG_BT_NIMBLE_MAX_CONNECTIONS; i++) {
        if (s_subs[i].conn == conn) {
            return &s_subs[i];
        }
        if (free_slot == NULL && s_subs[i].conn == BLE_HS_CONN_HANDLE_NONE) {
            free_slot = &s_subs[i];
        }
    }
    if (create && free_slot != NULL) {
        *free_slot = (subscriber_t){ .conn = conn };
        return free_slot;
    }
    return NULL;
}

void ble_ota_gatt_on_subscribe(const struct ble_gap_event *event)
{
    uint16_t attr = event->subscribe.attr_handle;
    if (attr != s_control_handle && attr != s_status_handle) {
        return;
    }
    if (event->subscribe.reason == BLE_GAP_SUBSCRIBE_REASON_TERM) {
        ble_ota_gatt_forget_conn(event->subscribe.conn_handle); /* link gone: all its CCCDs are off */
        return;
    }
    bool on = event->subscribe.cur_notify != 0;
    taskENTER_CRITICAL(&s_subs_lock);
    subscriber_t *sub = find_sub(event->subscribe.conn_handle, on);
    if (sub != NULL) {
        if (attr == s_control_handle) {
            sub->control = on;
        } else {
            sub->status = on;
        }
    }
    taskEXIT_CRITICAL(&s_subs_lock);
}

void ble_ota_gatt_forget_conn(uint16_t conn_handle)
{
    taskENTER_CRITICAL(&s_subs_lock);
    subscriber_t *sub = find_sub(conn_handle, false);
    if (sub != NULL) {
        sub->conn = BLE_HS_CONN_HANDLE_NONE;
        sub->control = sub->status = false;
    }
    taskEXIT_CRITICAL(&s_subs_lock);
}

static void notify_one(uint16_t conn, uint16_t handle, const uint8_t *data, size_t len)
{
    /* A notification carries at most ATT_MTU - 3 bytes. Control messages are at most 20 bytes by design
     * (PROTOCOL.md §2), so only Status is ever cut: its notification only signals a change and clients
     * read the whole value (PROTOCOL.md §5). Cutting here sends what fits instead of relying on the stack. */
    uint16_t mtu = ble_att_mtu(conn);
    if (mtu < BLE_ATT_MTU_DFLT) {
        return; /* no ATT channel: the link is gone */
    }
    if (len > (size_t)(mtu - 3)) {
        len = mtu - 3;
    }
    struct os_mbuf *om = ble_hs_mbuf_from_flat(data, (uint16_t)len);
    if (om == NULL) {
        /* ACKs are cumulative, so a dropped one is repaired by the next; the client re-syncs otherwise. */
        ESP_LOGW(TAG, "no mbuf for a %u-byte notification", (unsigned)len);
        return;
    }
    int rc = ble_gatts_notify_custom(conn, handle, om); /* consumes om */
    if (rc != 0) {
        ESP_LOGW(TAG, "notify on conn %u failed: %d", conn, rc);
    }
}

/* ble_ota_port_t.notify: Control to one connection, Status to every subscriber (+ advertisement refresh). */
void ble_ota_gatt_notify(void *ctx, ble_ota_conn_t conn, ble_ota_chr_t chr, const uint8_t *data, size_t len)
{
    /* Pick the targets under the lock, send outside it (NimBLE takes its own lock). */
    uint16_t targets[CONFIG_BT_NIMBLE_MAX_CONNECTIONS];
    size_t n = 0;
    taskENTER_CRITICAL(&s_subs_lock);
    for (size_t i = 0; i < CONFIG_BT_NIMBLE_MAX_CONNECTIONS; i++) {
        const subscriber_t *sub = &s_subs[i];
        if (sub->conn == BLE_HS_CONN_HANDLE_NONE) {
            continue;
        }
        bool wanted = chr == BLE_OTA_CHR_CONTROL ? (sub->control && sub->conn == conn)
                                                 : (sub->status && (conn == BLE_OTA_CONN_NONE || conn == sub->conn));
        if (wanted) {
            targets[n++] = sub->conn;
        }
    }
    taskEXIT_CRITICAL(&s_subs_lock);
    uint16_t handle = chr == BLE_OTA_CHR_CONTROL ? s_control_handle : s_status_handle;
    for (size_t i = 0; i < n; i++) {
        notify_one(targets[i], handle, data, len);
    }
    if (chr == BLE_OTA_CHR_STATUS) {
        ble_ota_gap_request_adv_refresh();
    }
}
