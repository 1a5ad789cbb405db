/* Serialisation of the persisted update record (NVS blob "record"); little-endian, versioned. */
#include <string.h>

#include "ble_ota_internal.h"

#define RECORD_MAGIC 0x52 /* 'R' */
#define RECORD_VERSION 2 /* 2: + release at 88 */

size_t ota_record_serialize(const ota_record_t *r, uint8_t out[BLE_OTA_RECORD_BLOB_LEN])
{
    memset(out, 0, BLE_OTA_RECORD_BLOB_LEN);
    out[0] = RECORD_MAGIC;
    out[1] = RECORD_VERSION;
    out[2] = r->result;
    out[3] = r->flags;
    out[4] = r->stage;
    out[5] = r->installed ? 1 : 0;
    ble_ota_put_u16(out + 6, r->boot_count);
    memcpy(out + 8, r->sha256, 32);
    memcpy(out + 40, r->message, strnlen(r->message, 32));
    memcpy(out + 72, r->target_label, strnlen(r->target_label, 16));
    ble_ota_put_u32(out + 88, r->release);
    return BLE_OTA_RECORD_BLOB_LEN;
}

bool ota_record_parse(const uint8_t *buf, size_t len, ota_record_t *r)
{
    memset(r, 0, sizeof *r);
    bool v1 = len == BLE_OTA_RECORD_V1_BLOB_LEN && buf[1] == 1;
    bool v2 = len == BLE_OTA_RECORD_BLOB_LEN && buf[1] == RECORD_VERSION;
    if ((!v1 && !v2) || buf[0] != RECORD_MAGIC) return false;
    r->valid = true;
    r->result = buf[2];
    r->flags = buf[3] & (uint8_t)~BLE_OTA_LAST_RECORD_VALID;
    r->stage = buf[4] <= REC_STAGE_LAST ? buf[4] : REC_STAGE_DONE;
    r->installed = buf[5] != 0 || (r->flags & BLE_OTA_LAST_INSTALLED);
    r->boot_count = ble_ota_get_u16(buf + 6);
    memcpy(r->sha256, buf + 8, 32);
    memcpy(r->message, buf + 40, 32);
    r->message[32] = '\0';
    memcpy(r->target_label, buf + 72, 16);
    r->target_label[16] = '\0';
    r->release = v2 ? ble_ota_get_u32(buf + 88) : 0;
    return true;
}
