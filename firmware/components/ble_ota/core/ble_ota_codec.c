/* Byte-level encoding of protocol v2 messages; see ble_ota_codec.h. */
#include "ble_ota_codec.h"

#include <string.h>

uint16_t ble_ota_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

uint32_t ble_ota_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void ble_ota_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void ble_ota_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

bool ble_ota_decode_begin(const uint8_t *buf, size_t len, ble_ota_begin_req_t *out)
{
    if (len < BLE_OTA_BEGIN_LEN || buf[0] != BLE_OTA_OP_BEGIN) return false;
    out->image_size = ble_ota_get_u32(buf + 1);
    out->transfer_size = ble_ota_get_u32(buf + 5);
    out->encoding = buf[9];
    out->flags = buf[10];
    out->chunk_size = ble_ota_get_u16(buf + 11);
    memcpy(out->sha256, buf + 13, 32);
    memcpy(out->base_sha256, buf + 45, 32);
    memcpy(out->tag, buf + BLE_OTA_BEGIN_TAG_OFFSET, 16);
    out->manifest = NULL;
    out->manifest_len = 0;
    if (!(out->flags & BLE_OTA_BEGIN_FLAG_MANIFEST)) return len == BLE_OTA_BEGIN_LEN;
    /* the manifest's own length field (offset 6) says how long the value must be */
    if (len < BLE_OTA_BEGIN_LEN + 8 || len - BLE_OTA_BEGIN_LEN != ble_ota_get_u16(buf + BLE_OTA_BEGIN_LEN + 6)) return false;
    out->manifest = buf + BLE_OTA_BEGIN_LEN;
    out->manifest_len = (uint16_t)(len - BLE_OTA_BEGIN_LEN);
    return true;
}

bool ble_ota_check_manifest_len(const uint8_t *manifest, size_t len)
{
    /* the same length rule as BEGIN's manifest: the manifest's own length field (offset 6) */
    return len >= 8 && len == ble_ota_get_u16(manifest + 6);
}

bool ble_ota_decode_manifest_cmd(const uint8_t *buf, size_t len, const uint8_t **manifest, uint16_t *manifest_len)
{
    *manifest = NULL;
    *manifest_len = 0;
    if (len < 1 || buf[0] != BLE_OTA_OP_MANIFEST || !ble_ota_check_manifest_len(buf + 1, len - 1)) return false;
    *manifest = buf + 1;
    *manifest_len = (uint16_t)(len - 1);
    return true;
}

size_t ble_ota_encode_begin(const ble_ota_begin_req_t *req, uint8_t out[BLE_OTA_BEGIN_LEN])
{
    out[0] = BLE_OTA_OP_BEGIN;
    ble_ota_put_u32(out + 1, req->image_size);
    ble_ota_put_u32(out + 5, req->transfer_size);
    out[9] = req->encoding;
    out[10] = req->flags;
    ble_ota_put_u16(out + 11, req->chunk_size);
    memcpy(out + 13, req->sha256, 32);
    memcpy(out + 45, req->base_sha256, 32);
    memcpy(out + BLE_OTA_BEGIN_TAG_OFFSET, req->tag, 16);
    return BLE_OTA_BEGIN_LEN;
}

size_t ble_ota_encode_simple_rsp(uint8_t op, uint8_t err, uint8_t *out)
{
    out[0] = (uint8_t)(op | BLE_OTA_OP_RESPONSE_FLAG);
    out[1] = err;
    return 2;
}

size_t ble_ota_encode_challenge_rsp(uint8_t err, const uint8_t nonce[16], uint16_t caps, uint8_t *out)
{
    size_t n = ble_ota_encode_simple_rsp(BLE_OTA_OP_CHALLENGE, err, out);
    if (err) return n;
    memcpy(out + 2, nonce, 16);
    ble_ota_put_u16(out + 18, caps);
    return BLE_OTA_CHALLENGE_RSP_LEN;
}

size_t ble_ota_encode_begin_rsp(uint8_t err, uint16_t chunk, uint32_t window, uint32_t ack_interval,
                                uint32_t resume_offset, uint8_t *out)
{
    size_t n = ble_ota_encode_simple_rsp(BLE_OTA_OP_BEGIN, err, out);
    if (err) return n;
    ble_ota_put_u16(out + 2, chunk);
    ble_ota_put_u32(out + 4, window);
    ble_ota_put_u32(out + 8, ack_interval);
    ble_ota_put_u32(out + 12, resume_offset);
    return 16;
}

size_t ble_ota_encode_end_rsp(uint8_t err, uint32_t image_size, uint8_t *out)
{
    size_t n = ble_ota_encode_simple_rsp(BLE_OTA_OP_END, err, out);
    if (err) return n;
    ble_ota_put_u32(out + 2, image_size);
    return 6;
}

size_t ble_ota_encode_unknown_rsp(uint8_t op, uint8_t *out)
{
    out[0] = BLE_OTA_OP_UNKNOWN_RSP;
    out[1] = 6; /* UNKNOWN_OPCODE */
    out[2] = op;
    return 3;
}

size_t ble_ota_encode_data_ack(uint32_t next_offset, uint8_t *out)
{
    out[0] = BLE_OTA_OP_DATA_ACK;
    ble_ota_put_u32(out + 1, next_offset);
    return 5;
}

size_t ble_ota_encode_data_nak(uint8_t err, uint32_t expected, uint8_t *out)
{
    out[0] = BLE_OTA_OP_DATA_NAK;
    out[1] = err;
    ble_ota_put_u32(out + 2, expected);
    return 6;
}

size_t ble_ota_encode_session_aborted(uint8_t err, uint8_t *out)
{
    out[0] = BLE_OTA_OP_SESSION_ABORTED;
    out[1] = err;
    return 2;
}

/* NUL-padded fixed field; a string that fills the field has no NUL. */
static void put_str(uint8_t *dst, size_t field, const char *s)
{
    size_t n = strnlen(s, field);
    memset(dst, 0, field);
    memcpy(dst, s, n);
}

static void get_str(char *dst, const uint8_t *src, size_t field)
{
    size_t n = strnlen((const char *)src, field);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

size_t ble_ota_encode_status(const ble_ota_status_t *st, uint8_t out[252])
{
    memset(out, 0, BLE_OTA_STATUS_V2_LEN);
    out[0] = st->format;
    out[1] = st->proto_version;
    ble_ota_put_u16(out + 2, st->caps);
    out[4] = st->ota_state;
    out[5] = st->confirm_policy;
    out[6] = st->session_state;
    out[7] = st->reset_reason;
    ble_ota_put_u16(out + 8, st->boot_count);
    ble_ota_put_u16(out + 10, st->chip_id);
    ble_ota_put_u32(out + 12, st->secure_version);
    ble_ota_put_u32(out + 16, st->session_offset);
    put_str(out + 20, 16, st->running_partition);
    put_str(out + 36, 32, st->app_version);
    put_str(out + 68, 32, st->project_name);
    put_str(out + 100, 32, st->idf_version);
    memcpy(out + 132, st->running_sha256, 32);
    out[164] = st->last_result;
    out[165] = st->last_flags;
    memcpy(out + 166, st->last_sha256, 32);
    put_str(out + 198, 32, st->last_message);
    ble_ota_put_u32(out + 232, st->update_partition_size);
    ble_ota_put_u32(out + 236, st->release_floor);
    memcpy(out + 240, st->device_id, 6);
    out[246] = st->release_key_ids;
    return BLE_OTA_STATUS_V2_LEN;
}

bool ble_ota_decode_status(const uint8_t *buf, size_t len, ble_ota_status_t *st)
{
    if (len != BLE_OTA_STATUS_V1_LEN && len != BLE_OTA_STATUS_V2_LEN) return false;
    memset(st, 0, sizeof *st);
    st->format = buf[0];
    st->proto_version = buf[1];
    st->caps = ble_ota_get_u16(buf + 2);
    st->ota_state = buf[4];
    st->confirm_policy = buf[5];
    st->session_state = buf[6];
    st->reset_reason = buf[7];
    st->boot_count = ble_ota_get_u16(buf + 8);
    st->chip_id = ble_ota_get_u16(buf + 10);
    st->secure_version = ble_ota_get_u32(buf + 12);
    st->session_offset = ble_ota_get_u32(buf + 16);
    get_str(st->running_partition, buf + 20, 16);
    get_str(st->app_version, buf + 36, 32);
    get_str(st->project_name, buf + 68, 32);
    get_str(st->idf_version, buf + 100, 32);
    memcpy(st->running_sha256, buf + 132, 32);
    st->last_result = buf[164];
    st->last_flags = buf[165];
    memcpy(st->last_sha256, buf + 166, 32);
    get_str(st->last_message, buf + 198, 32);
    if (len == BLE_OTA_STATUS_V2_LEN) {
        st->update_partition_size = ble_ota_get_u32(buf + 232);
        st->release_floor = ble_ota_get_u32(buf + 236);
        memcpy(st->device_id, buf + 240, 6);
        st->release_key_ids = buf[246];
    }
    return true;
}

bool ble_ota_decode_manifest(const uint8_t *buf, size_t len, ble_ota_manifest_t *m)
{
    memset(m, 0, sizeof *m);
    if (len < BLE_OTA_MANIFEST_MIN_LEN || memcmp(buf, BLE_OTA_MANIFEST_MAGIC, 4) != 0 || buf[4] != BLE_OTA_MANIFEST_FORMAT)
        return false;
    m->key_id = buf[5];
    m->length = ble_ota_get_u16(buf + 6);
    memcpy(m->image_sha256, buf + 8, 32);
    m->image_size = ble_ota_get_u32(buf + 40);
    memcpy(m->base_sha256, buf + 44, 32);
    m->release = ble_ota_get_u32(buf + 76);
    m->secure_version = ble_ota_get_u32(buf + 80);
    m->chip_id = ble_ota_get_u16(buf + 84);
    m->device_count = ble_ota_get_u16(buf + 86);
    get_str(m->project_name, buf + 88, 32);
    get_str(m->app_version, buf + 120, 32);
    m->not_after = ble_ota_get_u32(buf + 152);
    if (m->device_count > BLE_OTA_MANIFEST_MAX_DEVICES || m->length != len ||
        len != (size_t)BLE_OTA_MANIFEST_MIN_LEN + 6u * m->device_count)
        return false;
    m->device_ids = buf + BLE_OTA_MANIFEST_FIXED_LEN;
    m->signature = buf + ble_ota_manifest_signed_len(m);
    return true;
}

size_t ble_ota_manifest_signed_len(const ble_ota_manifest_t *m)
{
    return BLE_OTA_MANIFEST_FIXED_LEN + 6u * m->device_count;
}

size_t ble_ota_encode_mfg(const ble_ota_adv_t *adv, uint8_t out[11])
{
    ble_ota_put_u16(out, BLE_OTA_COMPANY_ID);
    out[2] = BLE_OTA_ADV_MARKER;
    out[3] = adv->flags;
    memcpy(out + 4, adv->sha_prefix, 4);
    memcpy(out + 8, adv->version, 3);
    return 11;
}

/* One decimal component 0..255; advances *p past it. */
static bool parse_component(const char **p, uint8_t *out)
{
    unsigned v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9') return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > 254) return false; /* 0xFF means "does not parse" */
        s++;
    }
    *out = (uint8_t)v;
    *p = s;
    return true;
}

bool ble_ota_parse_version(const char *version, uint8_t out[3])
{
    const char *p = version;
    uint8_t v[3];
    if (*p == 'v' || *p == 'V') p++;
    bool ok = parse_component(&p, &v[0]) && *p++ == '.' && parse_component(&p, &v[1]) && *p++ == '.' &&
              parse_component(&p, &v[2]) && (*p == '\0' || *p == '-' || *p == '+');
    if (!ok) {
        memset(out, 0xFF, 3);
        return false;
    }
    memcpy(out, v, 3);
    return true;
}
