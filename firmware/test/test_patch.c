/*
 * The delta patch applier (core/ble_ota_patch.c): hand-built records with known output, every split of the
 * input and of the output buffer, each malformed case with its reason, and round trips through a small
 * patch generator (a block matcher in the spirit of bsdiff) over images changed by inserted, removed and
 * changed bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "ble_ota_patch.h"
#include "test.h"

/* ---- patch builder ---- */

typedef struct {
    uint8_t bytes[16384];
    size_t len;
} patch_buf_t;

static void put_byte(patch_buf_t *p, uint8_t b)
{
    if (p->len < sizeof p->bytes) p->bytes[p->len++] = b;
}

static void put_uvarint(patch_buf_t *p, uint32_t v)
{
    while (v >= 0x80) {
        put_byte(p, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(p, (uint8_t)v);
}

static void put_svarint(patch_buf_t *p, int32_t v)
{
    put_uvarint(p, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static void put_bytes(patch_buf_t *p, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) put_byte(p, b[i]);
}

/* One record: diff bytes (added to the base), extra bytes, seek. */
static void put_record(patch_buf_t *p, const uint8_t *diff, uint32_t diff_len, const uint8_t *extra,
                       uint32_t extra_len, int32_t seek)
{
    put_uvarint(p, diff_len);
    put_bytes(p, diff, diff_len);
    put_uvarint(p, extra_len);
    put_bytes(p, extra, extra_len);
    put_svarint(p, seek);
}

/* ---- applying ---- */

typedef struct {
    const uint8_t *base;
    uint32_t base_len;
    int fail_at_read; /* 1-based read call that fails; 0 never */
    int reads;
    int out_of_range; /* a read the applier promised would stay inside the base did not */
} base_t;

static int read_base(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    base_t *b = ctx;
    b->reads++;
    if (len == 0 || (uint64_t)offset + len > b->base_len) {
        b->out_of_range = 1;
        return -1;
    }
    if (b->fail_at_read && b->reads == b->fail_at_read) return -1;
    memcpy(dst, b->base + offset, len);
    return 0;
}

typedef struct {
    ble_ota_patch_result_t result;
    ble_ota_patch_reason_t reason;
    bool finished;
    size_t consumed;
    size_t produced;
    uint8_t out[16384];
    int out_of_range;
} applied_t;

static uint32_t rng_state = 1;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/*
 * Applies the patch fed in pieces: piece = 0 one call with all of it, else pieces of `piece` bytes
 * (piece < 0: random 1..-piece). out_cap: the output buffer given per call (0: random 1..64).
 * first_cut > 0: the first piece is exactly first_cut bytes (a two-way split).
 */
static void apply(applied_t *a, const uint8_t *base, uint32_t base_len, const patch_buf_t *p, uint32_t image_size,
                  int piece, size_t out_cap, size_t first_cut, int fail_at_read)
{
    memset(a, 0, sizeof *a);
    base_t b = {base, base_len, fail_at_read, 0, 0};
    ble_ota_patch_t st;
    ble_ota_patch_init(&st, base_len, image_size);
    size_t at = 0;
    ble_ota_patch_result_t r = BLE_OTA_PATCH_MORE;
    bool first = true;
    do {
        size_t n = p->len - at;
        if (first && first_cut) n = first_cut < n ? first_cut : n;
        else if (piece > 0 && (size_t)piece < n) n = (size_t)piece;
        else if (piece < 0 && n) n = 1 + rng() % (size_t)(n < (size_t)-piece ? n : (size_t)-piece);
        first = false;
        size_t piece_at = 0;
        for (;;) {
            size_t cap = out_cap ? out_cap : 1 + rng() % 64;
            if (cap > sizeof a->out - a->produced) cap = sizeof a->out - a->produced;
            size_t used = 0, made = 0;
            r = ble_ota_patch_feed(&st, p->bytes + at + piece_at, n - piece_at, &used, a->out + a->produced, cap,
                                   &made, read_base, &b);
            piece_at += used;
            a->produced += made;
            if (r != BLE_OTA_PATCH_OK) break;
        }
        at += piece_at;
        /* after DONE the rest is still fed, as the inflater would: trailing bytes must be refused */
        if (r == BLE_OTA_PATCH_INVALID || r == BLE_OTA_PATCH_READ_FAILED) break;
    } while (at < p->len);
    a->result = r;
    a->reason = ble_ota_patch_reason(&st);
    a->finished = ble_ota_patch_finished(&st);
    a->consumed = at;
    a->out_of_range = b.out_of_range;
}

/* ---- the known patch ---- */

static uint8_t known_base[64];
static uint8_t known_new[64];
static uint32_t known_new_len;

/*
 * base[i] = 0xF0 + i (wraps past 0xFF). Records:
 *  1. diff 4 at pos 0 (+0, +1, +0x20 wrapping 0xF2 -> 0x12, +0xFF i.e. -1), extra "xyz", seek +2 -> pos 6
 *  2. diff 2 at pos 6 (+0, +0), no extra, seek -8 -> pos 0
 *  3. no diff, extra "!", seek +100 -> pos 100 (outside the base: never read there)
 *  4. no diff, no extra, seek -200 -> pos -100 (a record of zero-length parts, before the base)
 *  4b. zero-length parts, seek +103 -> pos 3
 *  5. diff 3 at pos 3 (+0x80 each), no extra, seek 0 (the last record still carries its seek)
 */
static void build_known(patch_buf_t *p)
{
    for (int i = 0; i < 64; i++) known_base[i] = (uint8_t)(0xF0 + i);
    memset(p, 0, sizeof *p);
    static const uint8_t d1[] = {0x00, 0x01, 0x20, 0xFF}, d2[] = {0, 0}, d5[] = {0x80, 0x80, 0x80};
    put_record(p, d1, 4, (const uint8_t *)"xyz", 3, 2);
    put_record(p, d2, 2, NULL, 0, -8);
    put_record(p, NULL, 0, (const uint8_t *)"!", 1, 100);
    put_record(p, NULL, 0, NULL, 0, -200);
    put_record(p, NULL, 0, NULL, 0, 103);
    put_record(p, d5, 3, NULL, 0, 0);
    static const uint8_t expected[] = {0xF0, 0xF2, 0x12, 0xF2, 'x', 'y', 'z', 0xF6, 0xF7, '!', 0x73, 0x74, 0x75};
    memcpy(known_new, expected, sizeof expected);
    known_new_len = sizeof expected;
}

TEST(patch_known_records)
{
    patch_buf_t p;
    build_known(&p);
    static applied_t a;
    apply(&a, known_base, sizeof known_base, &p, known_new_len, 0, sizeof a.out, 0, 0);
    CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
    CHECK(a.finished);
    CHECK_EQ(a.reason, BLE_OTA_PATCH_REASON_NONE);
    CHECK_EQ(a.consumed, p.len);
    CHECK_EQ(a.produced, known_new_len);
    CHECK(memcmp(a.out, known_new, known_new_len) == 0);
    CHECK(!a.out_of_range);
}

TEST(patch_every_split_gives_the_same_image)
{
    patch_buf_t p;
    build_known(&p);
    static applied_t a;
    /* every two-way split of the input, a whole output buffer */
    for (size_t cut = 1; cut < p.len; cut++) {
        apply(&a, known_base, sizeof known_base, &p, known_new_len, 0, sizeof a.out, cut, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
        CHECK_EQ(a.produced, known_new_len);
        CHECK(memcmp(a.out, known_new, known_new_len) == 0);
    }
    /* one byte at a time, with output buffers of every size from 1 to the image */
    for (size_t cap = 1; cap <= known_new_len; cap++) {
        apply(&a, known_base, sizeof known_base, &p, known_new_len, 1, cap, 0, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
        CHECK(a.finished);
        CHECK_EQ(a.consumed, p.len);
        CHECK_EQ(a.produced, known_new_len);
        CHECK(memcmp(a.out, known_new, known_new_len) == 0);
    }
}

TEST(patch_state_is_plain_values_a_copy_continues)
{
    /* A kept session resumes by continuing with a copy of the state: no pointer into old buffers. */
    patch_buf_t p;
    build_known(&p);
    base_t b = {known_base, sizeof known_base, 0, 0, 0};
    ble_ota_patch_t st, copy;
    uint8_t out[64], in[sizeof p.bytes];
    size_t used, made, total = 0;
    ble_ota_patch_init(&st, sizeof known_base, known_new_len);
    memcpy(in, p.bytes, p.len);
    size_t half = p.len / 2;
    CHECK_EQ(ble_ota_patch_feed(&st, in, half, &used, out, sizeof out, &made, read_base, &b), BLE_OTA_PATCH_MORE);
    CHECK_EQ(used, half);
    total = made;
    memcpy(&copy, &st, sizeof st);
    memset(&st, 0xA5, sizeof st);
    memset(in, 0, half); /* the consumed bytes are gone */
    CHECK_EQ(ble_ota_patch_feed(&copy, in + half, p.len - half, &used, out + total, sizeof out - total, &made,
                                read_base, &b),
             BLE_OTA_PATCH_DONE);
    total += made;
    CHECK_EQ(total, known_new_len);
    CHECK(memcmp(out, known_new, known_new_len) == 0);
}

TEST(patch_empty_output_buffer_makes_no_progress)
{
    patch_buf_t p;
    build_known(&p);
    base_t b = {known_base, sizeof known_base, 0, 0, 0};
    ble_ota_patch_t st;
    uint8_t out[1];
    size_t used, made;
    ble_ota_patch_init(&st, sizeof known_base, known_new_len);
    /* the varint diff_len (4) is taken, then the diff part waits for room */
    CHECK_EQ(ble_ota_patch_feed(&st, p.bytes, p.len, &used, out, 0, &made, read_base, &b), BLE_OTA_PATCH_OK);
    CHECK_EQ(used, 1);
    CHECK_EQ(made, 0);
    CHECK_EQ(b.reads, 0);
    CHECK_EQ(ble_ota_patch_feed(&st, p.bytes + 1, p.len - 1, &used, out, 1, &made, read_base, &b), BLE_OTA_PATCH_OK);
    CHECK_EQ(used, 1);
    CHECK_EQ(made, 1);
    CHECK_EQ(out[0], 0xF0);
}

/* ---- malformed patches ---- */


/* The same failure (result, reason, bytes consumed and produced) however the patch is split. */
static void check_malformed(const char *what, const patch_buf_t *p, const uint8_t *base, uint32_t base_len,
                            uint32_t image_size, ble_ota_patch_result_t result, ble_ota_patch_reason_t reason,
                            size_t consumed, size_t produced)
{
    static applied_t a;
    for (int way = 0; way < 12; way++) {
        if (way == 0) apply(&a, base, base_len, p, image_size, 0, sizeof a.out, 0, 0);
        else if (way == 1) apply(&a, base, base_len, p, image_size, 1, 1, 0, 0);
        else apply(&a, base, base_len, p, image_size, -7, 0, 0, 0);
        if (a.result != result || a.reason != reason || a.consumed != consumed || a.produced != produced ||
            a.finished || a.out_of_range) {
            fprintf(stderr, "    %s (way %d): result %d reason %s consumed %zu produced %zu; expected %d %s %zu %zu\n",
                    what, way, (int)a.result, ble_ota_patch_reason_str(a.reason), a.consumed, a.produced,
                    (int)result, ble_ota_patch_reason_str(reason), consumed, produced);
            test_current_failed = 1;
            return;
        }
    }
}

static const uint8_t zeros[64];

TEST(patch_read_outside_the_base_is_invalid)
{
    patch_buf_t p = {0};
    /* before the base: seek -1, then one diff byte */
    put_record(&p, NULL, 0, NULL, 0, -1);
    put_uvarint(&p, 1);
    put_byte(&p, 0);
    check_malformed("before", &p, zeros, 8, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE, 4, 0);
    /* past the end: 9 diff bytes of an 8-byte base */
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 9);
    check_malformed("past end", &p, zeros, 8, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE, 1, 0);
    /* past the end after bytes read inside: diff 4 at 0 then seek +1, diff 4 at 5 (5..8 > 8) */
    memset(&p, 0, sizeof p);
    put_record(&p, zeros, 4, NULL, 0, 1);
    put_uvarint(&p, 4);
    check_malformed("straddles end", &p, zeros, 8, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE,
                    8, 4);
    /* far away: seek to -2^31, one diff byte */
    memset(&p, 0, sizeof p);
    put_record(&p, NULL, 0, NULL, 0, INT32_MIN);
    put_uvarint(&p, 1);
    check_malformed("far", &p, zeros, 8, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE, 8, 0);
    /* an empty base: any diff byte */
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 1);
    check_malformed("empty base", &p, zeros, 0, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE, 1, 0);
}

TEST(patch_reads_up_to_the_last_base_byte)
{
    /* diff 3 ending exactly at base_len, after seeks out of range and back, extremes of the svarint */
    patch_buf_t p = {0};
    put_record(&p, NULL, 0, NULL, 0, INT32_MAX);
    put_record(&p, NULL, 0, NULL, 0, INT32_MIN); /* pos -1 */
    put_record(&p, NULL, 0, NULL, 0, 6);         /* pos 5 */
    static const uint8_t d[] = {1, 2, 3};
    put_record(&p, d, 3, NULL, 0, 0);
    static const uint8_t base[8] = {0, 0, 0, 0, 0, 10, 20, 30};
    static applied_t a;
    apply(&a, base, sizeof base, &p, 3, 1, 1, 0, 0);
    CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
    CHECK_EQ(a.produced, 3);
    CHECK(a.out[0] == 11 && a.out[1] == 22 && a.out[2] == 33);
}

TEST(patch_output_past_image_size_is_invalid)
{
    patch_buf_t p = {0};
    put_uvarint(&p, 17); /* diff of 17 into a 16-byte image */
    check_malformed("diff", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE, 1, 0);
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 10);
    put_bytes(&p, zeros, 10);
    put_uvarint(&p, 7); /* 10 + 7 > 16 */
    check_malformed("extra", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE, 12, 10);
    /* the diff completes the image; the same record's extra part would pass it */
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 16);
    put_bytes(&p, zeros, 16);
    put_uvarint(&p, 1);
    check_malformed("extra after full", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID,
                    BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE, 18, 16);
    /* the largest length a varint holds: 2^32 - 1 */
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 0);
    put_uvarint(&p, UINT32_MAX);
    check_malformed("2^32-1", &p, zeros, 64, UINT32_MAX - 1, BLE_OTA_PATCH_INVALID,
                    BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE, 6, 0);
}

TEST(patch_bad_varints_are_invalid)
{
    static const uint8_t too_long[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    static const uint8_t too_large[] = {0x80, 0x80, 0x80, 0x80, 0x10};
    patch_buf_t p = {0};
    put_bytes(&p, too_long, sizeof too_long);
    check_malformed("diff_len 6 bytes", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LONG,
                    4, 0);
    memset(&p, 0, sizeof p);
    put_bytes(&p, too_large, sizeof too_large);
    check_malformed("diff_len 2^32", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE,
                    4, 0);
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 0);
    put_bytes(&p, too_large, sizeof too_large);
    check_malformed("extra_len 2^32", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE,
                    5, 0);
    /* svarint: zigzag 2^32 would be +2^31, out of int32 */
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 0);
    put_uvarint(&p, 0);
    put_bytes(&p, too_large, sizeof too_large);
    check_malformed("seek 2^31", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LARGE, 6, 0);
    memset(&p, 0, sizeof p);
    put_uvarint(&p, 0);
    put_uvarint(&p, 0);
    put_bytes(&p, too_long, sizeof too_long);
    check_malformed("seek 6 bytes", &p, zeros, 64, 16, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_VARINT_TOO_LONG, 6,
                    0);
    /* a non-minimal encoding of a valid value is accepted: 3 as 83 80 80 80 00 */
    static const uint8_t padded_three[] = {0x83, 0x80, 0x80, 0x80, 0x00};
    memset(&p, 0, sizeof p);
    put_bytes(&p, padded_three, sizeof padded_three);
    put_bytes(&p, zeros, 3);
    put_uvarint(&p, 0);
    put_svarint(&p, 0);
    static applied_t a;
    apply(&a, zeros, 64, &p, 3, 1, 1, 0, 0);
    CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
}

TEST(patch_trailing_bytes_are_invalid)
{
    patch_buf_t p;
    build_known(&p);
    size_t whole = p.len;
    put_byte(&p, 0x00);
    check_malformed("one zero byte", &p, known_base, sizeof known_base, known_new_len, BLE_OTA_PATCH_INVALID,
                    BLE_OTA_PATCH_REASON_TRAILING_BYTES, whole, known_new_len);
    put_record(&p, NULL, 0, NULL, 0, 0);
    check_malformed("an empty record", &p, known_base, sizeof known_base, known_new_len, BLE_OTA_PATCH_INVALID,
                    BLE_OTA_PATCH_REASON_TRAILING_BYTES, whole, known_new_len);
    /* image_size 0: no record at all */
    memset(&p, 0, sizeof p);
    put_byte(&p, 0x00);
    check_malformed("image 0", &p, zeros, 8, 0, BLE_OTA_PATCH_INVALID, BLE_OTA_PATCH_REASON_TRAILING_BYTES, 0, 0);
    ble_ota_patch_t st;
    ble_ota_patch_init(&st, 8, 0);
    CHECK(ble_ota_patch_finished(&st));
}

TEST(patch_ending_early_is_not_finished)
{
    /* every strict prefix of the known patch, the last seek included: more is needed, nothing is wrong */
    patch_buf_t p;
    build_known(&p);
    size_t whole = p.len;
    static applied_t a;
    for (size_t len = 0; len < whole; len++) {
        p.len = len;
        apply(&a, known_base, sizeof known_base, &p, known_new_len, -5, 0, 0, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_MORE);
        CHECK(!a.finished);
        CHECK_EQ(a.consumed, len);
        CHECK(memcmp(a.out, known_new, a.produced) == 0);
    }
}

TEST(patch_failure_is_sticky_and_read_errors_are_their_own)
{
    patch_buf_t p;
    build_known(&p);
    static applied_t a;
    apply(&a, known_base, sizeof known_base, &p, known_new_len, 0, sizeof a.out, 0, 2);
    CHECK_EQ(a.result, BLE_OTA_PATCH_READ_FAILED);
    CHECK_EQ(a.reason, BLE_OTA_PATCH_REASON_NONE);
    CHECK(!a.finished);

    memset(&p, 0, sizeof p);
    put_uvarint(&p, 17);
    base_t b = {zeros, 64, 0, 0, 0};
    ble_ota_patch_t st;
    uint8_t out[8];
    size_t used, made;
    ble_ota_patch_init(&st, 64, 16);
    CHECK_EQ(ble_ota_patch_feed(&st, p.bytes, p.len, &used, out, sizeof out, &made, read_base, &b),
             BLE_OTA_PATCH_INVALID);
    static const uint8_t more[] = {0, 0, 0};
    CHECK_EQ(ble_ota_patch_feed(&st, more, sizeof more, &used, out, sizeof out, &made, read_base, &b),
             BLE_OTA_PATCH_INVALID);
    CHECK_EQ(used, 0);
    CHECK_EQ(made, 0);
    CHECK_EQ(ble_ota_patch_reason(&st), BLE_OTA_PATCH_REASON_OUTPUT_PAST_IMAGE);
    CHECK(strcmp(ble_ota_patch_reason_str(ble_ota_patch_reason(&st)), "produces more than image_size") == 0);
}

/* ---- round trips through a small generator ---- */

/*
 * A block matcher: for each block of the new image, the base offset near the current position (or the
 * position the previous block ended at) with the most equal bytes becomes a diff part, else the block is
 * an extra part. One record per block; the seek moves to the next block's base offset.
 */
#define GEN_BLOCK 32
#define GEN_WINDOW 96

typedef struct {
    uint32_t diff_bytes;    /* new-image bytes made from the base */
    uint32_t base_read_end; /* one past the highest base byte read */
} gen_stats_t;

static gen_stats_t generate_patch(patch_buf_t *p, const uint8_t *base, uint32_t base_len, const uint8_t *img,
                                  uint32_t img_len)
{
    gen_stats_t stats = {0, 0};
    p->len = 0;
    int64_t pos = 0;
    uint32_t j = 0;
    /* pending record: diff or extra decided, seek written when the next block's offset is known */
    bool pending = false;
    while (j < img_len) {
        uint32_t n = img_len - j < GEN_BLOCK ? img_len - j : GEN_BLOCK;
        int64_t best = -1;
        uint32_t best_equal = 0;
        for (int64_t off = pos - GEN_WINDOW; off <= pos + GEN_WINDOW; off++) {
            if (off < 0 || off + n > base_len) continue;
            uint32_t equal = 0;
            for (uint32_t k = 0; k < n; k++) equal += base[off + k] == img[j + k];
            if (equal > best_equal) {
                best_equal = equal;
                best = off;
            }
        }
        int64_t target = best_equal * 2 > n ? best : pos;
        if (!pending && target != pos) { /* an empty first record carries the seek to the first match */
            put_uvarint(p, 0);
            put_uvarint(p, 0);
            pending = true;
        }
        if (pending) put_svarint(p, (int32_t)(target - pos));
        pos = target;
        if (best_equal * 2 > n) {
            put_uvarint(p, n);
            for (uint32_t k = 0; k < n; k++) put_byte(p, (uint8_t)(img[j + k] - base[pos + k]));
            put_uvarint(p, 0);
            pos += n;
            stats.diff_bytes += n;
            if (pos > stats.base_read_end) stats.base_read_end = (uint32_t)pos;
        } else {
            put_uvarint(p, 0);
            put_uvarint(p, n);
            put_bytes(p, img + j, n);
        }
        pending = true;
        j += n;
    }
    if (pending) put_svarint(p, 0);
    return stats;
}

/* new = base with runs inserted, removed, changed and shifted by a constant */
static uint32_t mutate(uint8_t *img, const uint8_t *base, uint32_t base_len, uint32_t cap)
{
    uint32_t i = 0, o = 0;
    while (i < base_len && o < cap) {
        uint32_t r = rng() % 100;
        uint32_t run = 1 + rng() % 40;
        if (r < 70) { /* copy */
            for (uint32_t k = 0; k < run && i < base_len && o < cap; k++) img[o++] = base[i++];
        } else if (r < 80) { /* insert */
            for (uint32_t k = 0; k < run && o < cap; k++) img[o++] = (uint8_t)rng();
        } else if (r < 88) { /* remove */
            i += run;
        } else { /* change: a constant added (relocated addresses), or a byte flipped */
            uint8_t delta = (uint8_t)(1 + rng() % 255);
            for (uint32_t k = 0; k < run && i < base_len && o < cap; k++) img[o++] = (uint8_t)(base[i++] + delta);
        }
    }
    return o;
}

TEST(patch_round_trip_random_images)
{
    static uint8_t base[4096], img[6000];
    static patch_buf_t p;
    static applied_t a;
    uint64_t diff_total = 0, image_total = 0;
    rng_state = 0x13572468;
    for (int round = 0; round < 40; round++) {
        uint32_t base_len = 1 + rng() % sizeof base;
        for (uint32_t i = 0; i < base_len; i++) base[i] = (uint8_t)(rng() % 16); /* few symbols: matches happen */
        uint32_t img_len = mutate(img, base, base_len, sizeof img);
        if (img_len == 0) continue;
        gen_stats_t stats = generate_patch(&p, base, base_len, img, img_len);
        CHECK(p.len < sizeof p.bytes);
        diff_total += stats.diff_bytes;
        image_total += img_len;
        apply(&a, base, base_len, &p, img_len, 0, sizeof a.out, 0, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
        CHECK_EQ(a.produced, img_len);
        CHECK(memcmp(a.out, img, img_len) == 0);
        apply(&a, base, base_len, &p, img_len, 1, 1, 0, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
        CHECK(memcmp(a.out, img, img_len) == 0);
        apply(&a, base, base_len, &p, img_len, -300, 0, 0, 0);
        CHECK_EQ(a.result, BLE_OTA_PATCH_DONE);
        CHECK_EQ(a.consumed, p.len);
        CHECK(memcmp(a.out, img, img_len) == 0);
        CHECK(!a.out_of_range);
        /* the same patch against a shorter base: reads past its end are refused, never made */
        if (base_len > 64) {
            apply(&a, base, base_len / 2, &p, img_len, -300, 0, 0, 0);
            CHECK_EQ(a.result, stats.base_read_end > base_len / 2 ? BLE_OTA_PATCH_INVALID : BLE_OTA_PATCH_DONE);
            if (a.result == BLE_OTA_PATCH_INVALID) CHECK_EQ(a.reason, BLE_OTA_PATCH_REASON_READ_OUTSIDE_BASE);
            CHECK(!a.out_of_range);
        }
    }
    /* the generator found the base: most of the new images came from diff parts, not extra */
    CHECK(diff_total * 2 > image_total);
}

TEST(patch_position_overflow_guard)
{
    /* Reaching |pos| > 2^62 takes 2^31 records seeking 2^31 (gigabytes of patch); start the state there. */
    patch_buf_t p = {0};
    put_record(&p, NULL, 0, NULL, 0, INT32_MAX);
    base_t b = {zeros, 64, 0, 0, 0};
    ble_ota_patch_t st;
    uint8_t out[1];
    size_t used, made;
    ble_ota_patch_init(&st, 64, 16);
    st.pos = ((int64_t)1 << 62) - 1;
    CHECK_EQ(ble_ota_patch_feed(&st, p.bytes, p.len, &used, out, sizeof out, &made, read_base, &b),
             BLE_OTA_PATCH_INVALID);
    CHECK_EQ(ble_ota_patch_reason(&st), BLE_OTA_PATCH_REASON_POSITION_OVERFLOW);
}
