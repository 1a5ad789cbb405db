/*
 * libFuzzer target of the delta patch applier (core/ble_ota_patch.c), see README.md "Patch applier".
 *
 * Input: u16 base_len (mod 1025), u16 image_size (mod 4097), u8 base seed, u8 split seed, u8 unreadable
 * (bit7 set: the base byte at (unreadable & 0x7F) * 8 cannot be read, as a flash read error), then the patch.
 * The patch is applied three ways: whole with an output buffer of the whole image, one byte at a time with a
 * 1-byte output buffer, and in pieces and output buffers of sizes drawn from the split seed. All three must
 * agree with each other and with a plain reference applier written from the contract (PROTOCOL.md "Delta
 * patch"), never read the base outside [0, base_len) nor write past image_size (the buffers are exactly that
 * large: ASan sees one byte more).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ble_ota_patch.h"
#include "fuzz_patch.h"

unsigned long fuzz_patch_outcomes[FUZZ_PATCH_OUTCOMES];

#define HEADER_LEN 7

typedef struct {
    const uint8_t *base;
    uint32_t base_len;
    bool has_bad_byte;
    uint32_t bad_byte;
} base_t;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_patch: %s\n", what);
    abort();
}

static int read_base(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    const base_t *b = ctx;
    if (len == 0 || (uint64_t)offset + len > b->base_len) die("base read outside [0, base_len)");
    if (b->has_bad_byte && b->bad_byte >= offset && b->bad_byte - offset < len) return -1;
    memcpy(dst, b->base + offset, len);
    return 0;
}

typedef struct {
    ble_ota_patch_result_t result;
    ble_ota_patch_reason_t reason;
    bool finished;
    size_t consumed;
    size_t produced;
} outcome_t;

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* mode 0 whole, 1 byte by byte, 2 random pieces (seed) */
static outcome_t apply(const base_t *b, uint32_t image_size, const uint8_t *patch, size_t len, uint8_t *out, int mode,
                       uint32_t seed)
{
    ble_ota_patch_t st;
    ble_ota_patch_init(&st, b->base_len, image_size);
    outcome_t o = {BLE_OTA_PATCH_MORE, BLE_OTA_PATCH_REASON_NONE, false, 0, 0};
    uint32_t s = seed | 1;
    ble_ota_patch_result_t r = ble_ota_patch_finished(&st) ? BLE_OTA_PATCH_DONE : BLE_OTA_PATCH_MORE;
    while (o.consumed < len) {
        size_t piece = len - o.consumed;
        if (mode == 1) piece = 1;
        else if (mode == 2) piece = 1 + next(&s) % (piece < 300 ? piece : 300);
        size_t at = 0;
        do {
            size_t room = image_size - o.produced;
            size_t cap = mode == 0 ? room : mode == 1 ? (room ? 1 : 0) : (room ? 1 + next(&s) % room : 0);
            size_t used = 0, made = 0;
            r = ble_ota_patch_feed(&st, patch + o.consumed + at, piece - at, &used, out + o.produced, cap, &made,
                                   read_base, (void *)b);
            if (used > piece - at || made > cap) die("consumed or produced more than given");
            at += used;
            o.produced += made;
            if (r == BLE_OTA_PATCH_OK && used == 0 && made == 0 && cap > 0) die("OK without progress");
            if (r == BLE_OTA_PATCH_OK && cap == 0) die("output full with no room: the length check failed");
        } while (r == BLE_OTA_PATCH_OK);
        o.consumed += at;
        if (r == BLE_OTA_PATCH_INVALID || r == BLE_OTA_PATCH_READ_FAILED) break;
        if (at != piece) die("stopped before the end of the input without an error");
    }
    o.result = r;
    o.reason = ble_ota_patch_reason(&st);
    o.finished = ble_ota_patch_finished(&st);
    if (o.finished != (r == BLE_OTA_PATCH_DONE)) die("finished disagrees with the result");
    if (o.finished && o.produced != image_size) die("finished short of image_size");
    return o;
}

/*
 * The contract applied in the plainest way: whole input, whole output. Fails at the first field that
 * breaks a rule, as the applier must.
 */
static outcome_t reference(const base_t *b, uint32_t image_size, const uint8_t *p, size_t len, uint8_t *out)
{
    outcome_t o = {BLE_OTA_PATCH_MORE, BLE_OTA_PATCH_REASON_NONE, false, 0, 0};
    size_t i = 0;
    uint64_t produced = 0;
    int64_t pos = 0;
    enum { DIFF_LEN, EXTRA_LEN, SEEK } field = DIFF_LEN;
#define FAIL(res, why)           \
    do {                         \
        o.result = (res);        \
        o.reason = (why);        \
        goto end;                \
    } while (0)
    for (;;) {
        if (produced == image_size && field == DIFF_LEN) { /* the record completing the image has ended */
            if (i < len) FAIL(BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_TRAILING_BYTES);
            o.result = BLE_OTA_PATCH_DONE;
            o.finished = true;
            goto end;
        }
        /* one varint */
        uint64_t v = 0;
        size_t start = i;
        for (;;) {
            if (i == len) { /* ran out inside a varint: the applier keeps its bytes */
                o.consumed = len;
                o.produced = produced;
                return o; /* MORE */
            }
            uint8_t byte = p[i];
            size_t k = i - start;
            if (k == 4 && (byte & 0x80)) FAIL(BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LONG);
            v |= (uint64_t)(byte & 0x7F) << (7 * k);
            if (k == 4 && v >= (1ull << 32)) FAIL(BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE);
            i++;
            if (!(byte & 0x80)) break;
        }
        if (field == SEEK) {
            int64_t seek = (v & 1) ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
            pos += seek;
            field = DIFF_LEN;
            continue;
        }
        if (produced + v > image_size) FAIL(BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE);
        if (field == DIFF_LEN && v > 0 && (pos < 0 || pos + (int64_t)v > (int64_t)b->base_len))
            FAIL(BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE);
        for (uint64_t k = 0; k < v; k++) {
            if (i == len) {
                o.consumed = len;
                o.produced = produced;
                return o;
            }
            if (field == DIFF_LEN) {
                if (b->has_bad_byte && (int64_t)b->bad_byte == pos) FAIL(BLE_OTA_PATCH_READ_FAILED, BLE_OTA_PATCH_REASON_NONE);
                out[produced++] = (uint8_t)(b->base[pos++] + p[i++]);
            } else {
                out[produced++] = p[i++];
            }
        }
        field = field == DIFF_LEN ? EXTRA_LEN : SEEK;
    }
#undef FAIL
end:
    o.consumed = i;
    o.produced = produced;
    return o;
}

static void count(const outcome_t *o)
{
    int k = o->result == BLE_OTA_PATCH_INVALID ? FUZZ_PATCH_OUTCOME_INVALID + (int)o->reason
            : o->result == BLE_OTA_PATCH_DONE  ? FUZZ_PATCH_OUTCOME_DONE
            : o->result == BLE_OTA_PATCH_MORE  ? FUZZ_PATCH_OUTCOME_MORE
                                               : FUZZ_PATCH_OUTCOME_READ_FAILED;
    if (k >= 0 && k < FUZZ_PATCH_OUTCOMES) fuzz_patch_outcomes[k]++;
}

int fuzz_patch_run(const uint8_t *data, size_t size)
{
    uint8_t h[HEADER_LEN] = {0};
    memcpy(h, data, size < HEADER_LEN ? size : HEADER_LEN);
    const uint8_t *patch = size > HEADER_LEN ? data + HEADER_LEN : data;
    size_t patch_len = size > HEADER_LEN ? size - HEADER_LEN : 0;

    base_t b;
    b.base_len = (uint32_t)(h[0] | h[1] << 8) % 1025;
    uint32_t image_size = (uint32_t)(h[2] | h[3] << 8) % 4097;
    uint32_t split_seed = h[5] * 0x01010101u;
    b.has_bad_byte = (h[6] & 0x80) != 0;
    b.bad_byte = (uint32_t)(h[6] & 0x7F) * 8;

    /* exact-size heap buffers: one byte outside is an ASan report */
    uint8_t *base = malloc(b.base_len ? b.base_len : 1);
    uint8_t *outs[4];
    for (int k = 0; k < 4; k++) outs[k] = malloc(image_size ? image_size : 1);
    uint32_t s = h[4] * 0x01010101u | 1;
    for (uint32_t i = 0; i < b.base_len; i++) base[i] = (uint8_t)next(&s);
    b.base = base;

    outcome_t ref = reference(&b, image_size, patch, patch_len, outs[3]);
    outcome_t got[3];
    for (int mode = 0; mode < 3; mode++) {
        got[mode] = apply(&b, image_size, patch, patch_len, outs[mode], mode, split_seed);
        const outcome_t *g = &got[mode];
        if (g->result != ref.result || g->reason != ref.reason || g->finished != ref.finished) {
            fprintf(stderr, "mode %d: result %d reason %d; reference %d %d\n", mode, (int)g->result, (int)g->reason,
                    (int)ref.result, (int)ref.reason);
            die("the applier disagrees with the reference");
        }
        /* A read error may cut a piece that an earlier split had already produced in part. */
        if (ref.result != BLE_OTA_PATCH_READ_FAILED &&
            (g->consumed != ref.consumed || g->produced != ref.produced))
            die("consumed or produced differ from the reference");
        size_t common = g->produced < ref.produced ? g->produced : ref.produced;
        if (memcmp(outs[mode], outs[3], common) != 0) die("output bytes differ from the reference");
    }
    count(&ref);
    free(base);
    for (int k = 0; k < 4; k++) free(outs[k]);
    return 0;
}
