/* Streaming delta patch applier (ble_ota_patch.h). */
#include "ble_ota_patch.h"

#include <string.h>

enum {
    PHASE_DIFF_LEN,
    PHASE_DIFF,
    PHASE_EXTRA_LEN,
    PHASE_EXTRA,
    PHASE_SEEK,
    PHASE_END, /* DONE or failed: st->result says which */
};

#define VARINT_MAX_BYTES 5
/* Far outside any base (< 2^32) yet far from int64 overflow: a seek adds at most 2^31 per record. */
#define POS_LIMIT ((int64_t)1 << 62)

void ble_ota_patch_init(ble_ota_patch_t *st, uint32_t base_len, uint32_t image_size)
{
    memset(st, 0, sizeof *st);
    st->base_len = base_len;
    st->image_size = image_size;
    if (image_size == 0) { /* no record at all: the empty patch is the whole patch */
        st->phase = PHASE_END;
        st->result = BLE_OTA_PATCH_DONE;
    } else {
        st->phase = PHASE_DIFF_LEN;
    }
}

static ble_ota_patch_result_t fail(ble_ota_patch_t *st, ble_ota_patch_result_t result, ble_ota_patch_reason_t reason)
{
    st->phase = PHASE_END;
    st->result = (uint8_t)result;
    st->reason = (uint8_t)reason;
    return result;
}

/*
 * Takes one byte of the varint being read. Returns 1 when the varint is complete (value in st->varint),
 * 0 when more bytes follow, -1 when it is malformed (st failed).
 */
static int varint_byte(ble_ota_patch_t *st, uint8_t byte)
{
    unsigned shift = 7u * st->varint_bytes;
    if (st->varint_bytes == VARINT_MAX_BYTES - 1) {
        /* The fifth byte carries bits 28..34: only 4 of them fit 32 bits, and no sixth byte may follow. */
        if (byte & 0x80) {
            fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LONG);
            return -1;
        }
        if (byte > 0x0F) {
            fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE);
            return -1;
        }
    }
    st->varint |= (uint32_t)(byte & 0x7F) << shift;
    st->varint_bytes++;
    if (byte & 0x80) return 0;
    st->varint_bytes = 0;
    return 1;
}

static int32_t zigzag_decode(uint32_t u)
{
    /* (u >> 1) ^ -(u & 1) without a signed overflow: every u < 2^32 maps to one int32. */
    uint32_t magnitude = u >> 1;
    return (u & 1) ? (int32_t)(-(int64_t)magnitude - 1) : (int32_t)magnitude;
}

/* A length just read: checks the part against image_size (and the base for a diff) before any byte of it. */
static bool start_part(ble_ota_patch_t *st, uint32_t len, bool diff)
{
    if ((uint64_t)st->produced + len > st->image_size) {
        fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE);
        return false;
    }
    if (diff && len > 0 && (st->pos < 0 || st->pos + (int64_t)len > (int64_t)st->base_len)) {
        fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE);
        return false;
    }
    st->remaining = len;
    st->phase = len ? (diff ? PHASE_DIFF : PHASE_EXTRA) : (diff ? PHASE_EXTRA_LEN : PHASE_SEEK);
    return true;
}

static bool end_record(ble_ota_patch_t *st, int32_t seek)
{
    st->pos += seek;
    if (st->pos > POS_LIMIT || st->pos < -POS_LIMIT) {
        fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_POSITION_OVERFLOW);
        return false;
    }
    if (st->produced == st->image_size) {
        st->phase = PHASE_END;
        st->result = BLE_OTA_PATCH_DONE;
    } else {
        st->phase = PHASE_DIFF_LEN;
    }
    return true;
}

ble_ota_patch_result_t ble_ota_patch_feed(ble_ota_patch_t *st, const uint8_t *in, size_t in_len, size_t *consumed,
                                          uint8_t *out, size_t out_cap, size_t *produced,
                                          ble_ota_patch_read_fn read_base, void *ctx)
{
    size_t i = 0, o = 0;
    ble_ota_patch_result_t result = BLE_OTA_PATCH_MORE;

    while (result == BLE_OTA_PATCH_MORE) {
        if (st->phase == PHASE_END) {
            result = (ble_ota_patch_result_t)st->result;
            if (result == BLE_OTA_PATCH_DONE && i < in_len)
                result = fail(st, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_TRAILING_BYTES);
            break;
        }
        if (i == in_len) break;

        if (st->phase == PHASE_DIFF || st->phase == PHASE_EXTRA) {
            size_t n = st->remaining;
            if (n > in_len - i) n = in_len - i;
            if (n > out_cap - o) n = out_cap - o;
            if (n == 0) {
                result = BLE_OTA_PATCH_OK; /* output full */
                break;
            }
            if (st->phase == PHASE_DIFF) {
                /* start_part checked [pos, pos + remaining) lies in the base: pos fits uint32. */
                if (read_base(ctx, (uint32_t)st->pos, out + o, n) != 0) {
                    result = fail(st, BLE_OTA_PATCH_READ_FAILED, BLE_OTA_PATCH_REASON_NONE);
                    break;
                }
                for (size_t k = 0; k < n; k++) out[o + k] = (uint8_t)(out[o + k] + in[i + k]);
                st->pos += (int64_t)n;
            } else {
                memcpy(out + o, in + i, n);
            }
            i += n;
            o += n;
            st->patch_offset += n;
            st->produced += (uint32_t)n;
            st->remaining -= (uint32_t)n;
            if (st->remaining == 0) st->phase = st->phase == PHASE_DIFF ? PHASE_EXTRA_LEN : PHASE_SEEK;
            continue;
        }

        int complete = varint_byte(st, in[i]);
        if (complete < 0) {
            result = BLE_OTA_PATCH_INVALID;
            break;
        }
        i++;
        st->patch_offset++;
        if (complete == 0) continue;
        uint32_t value = st->varint;
        st->varint = 0;
        bool ok;
        switch (st->phase) {
        case PHASE_DIFF_LEN:
            ok = start_part(st, value, true);
            break;
        case PHASE_EXTRA_LEN:
            ok = start_part(st, value, false);
            break;
        default: /* PHASE_SEEK */
            ok = end_record(st, zigzag_decode(value));
            break;
        }
        if (!ok) result = (ble_ota_patch_result_t)st->result;
    }
    *consumed = i;
    *produced = o;
    return result;
}

bool ble_ota_patch_finished(const ble_ota_patch_t *st)
{
    return st->phase == PHASE_END && st->result == BLE_OTA_PATCH_DONE;
}

ble_ota_patch_reason_t ble_ota_patch_reason(const ble_ota_patch_t *st)
{
    return (ble_ota_patch_reason_t)st->reason;
}

const char *ble_ota_patch_reason_str(ble_ota_patch_reason_t reason)
{
    switch (reason) {
    case BLE_OTA_PATCH_REASON_NONE: return "none";
    case BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE: return "reads outside the base image";
    case BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE: return "produces more than image_size";
    case BLE_OTA_PATCH_REASON_VARINT_TOO_LONG: return "varint longer than 5 bytes";
    case BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE: return "varint value 2^32 or more";
    case BLE_OTA_PATCH_REASON_TRAILING_BYTES: return "bytes after the last record";
    case BLE_OTA_PATCH_REASON_POSITION_OVERFLOW: return "base position overflows";
    }
    return "unknown";
}
