/* Valid-frame helpers for the fuzzer; see fuzz_frames.h. */
#include "fuzz_frames.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <mbedtls/ecdsa.h>

#include "app_image.h"
#include "sha256.h"

const uint8_t FUZZ_FLEET_KEY[32] = {0x42, 0x4c, 0x45, 0x4f, 0x54, 0x41, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d,
                                    0x6b, 0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11};

uint8_t FUZZ_RELEASE_KEY[65];

static fuzz_image_t s_images[FUZZ_IMG_COUNT];
static fuzz_image_t s_running;

/* Images of about 9 KB: several flash sectors and ACK intervals, yet quick to send whole. */
#define FUZZ_IMAGE_SIZE 9000

static bool zlib_of(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len)
{
    uLongf n = compressBound(len);
    *out = malloc(n);
    if (!*out || compress2(*out, &n, data, len, 9) != Z_OK) return false;
    *out_len = n;
    return true;
}

static size_t put_uvarint(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The patch of im against the running image (variant: see FUZZ_DELTA_*) into out; its length. */
static size_t make_patch(const fuzz_image_t *im, int variant, uint8_t *out)
{
    const uint8_t *base = s_running.image;
    size_t base_len = s_running.image_len, len = im->image_len, at = 0;
    for (size_t j = 0, rec = 0; j < len; rec++) {
        size_t n = len - j < 1024 ? len - j : 1024;
        size_t diff = j < base_len ? (base_len - j < n ? base_len - j : n) : 0;
        if (variant == FUZZ_DELTA_OUTSIDE && rec == 1) { /* seek so that this record's diff passes the base end */
            at += put_uvarint(out + at, 0);
            at += put_uvarint(out + at, 0);
            at += put_uvarint(out + at, (uint32_t)(base_len - j - 8) << 1);
        }
        at += put_uvarint(out + at, (uint32_t)diff);
        for (size_t k = 0; k < diff; k++) out[at++] = (uint8_t)(im->image[j + k] - base[j + k]);
        at += put_uvarint(out + at, (uint32_t)(n - diff));
        memcpy(out + at, im->image + j + diff, n - diff);
        at += n - diff;
        out[at++] = 0; /* seek 0 */
        j += n;
    }
    return variant == FUZZ_DELTA_SHORT && at > 7 ? at - 7 : at;
}

/* Deterministic "random" for the release key and signatures (fuzzing only). */
static int fuzz_rng(void *arg, unsigned char *out, size_t len)
{
    uint32_t *state = arg;
    for (size_t i = 0; i < len; i++) {
        *state = *state * 1664525u + 1013904223u;
        out[i] = (unsigned char)(*state >> 24);
    }
    return 0;
}

static mbedtls_ecp_group s_grp;
static mbedtls_mpi s_d;

static bool release_key_init(void)
{
    mbedtls_ecp_point q;
    uint32_t seed = 2026;
    size_t olen = 0;
    mbedtls_ecp_group_init(&s_grp);
    mbedtls_mpi_init(&s_d);
    mbedtls_ecp_point_init(&q);
    bool ok = mbedtls_ecp_group_load(&s_grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
              mbedtls_ecp_gen_keypair(&s_grp, &s_d, &q, fuzz_rng, &seed) == 0 &&
              mbedtls_ecp_point_write_binary(&s_grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, FUZZ_RELEASE_KEY, 65) == 0 &&
              olen == 65;
    mbedtls_ecp_point_free(&q);
    return ok;
}

/* The manifest of im (fields from its app descriptor when it has one) for variant v. */
static bool make_manifest(const fuzz_image_t *im, int v, uint8_t out[FUZZ_MANIFEST_LEN])
{
    const uint8_t *desc = im->image + 32; /* image header 24 + segment header 8 */
    bool has_desc = im->image_len >= 32 + 256;
    memset(out, 0, FUZZ_MANIFEST_LEN);
    memcpy(out, "BOM1", 4);
    out[4] = 1;
    ble_ota_put_u16(out + 6, FUZZ_MANIFEST_LEN);
    memcpy(out + 8, im->sha256, 32);
    ble_ota_put_u32(out + 40, (uint32_t)im->image_len);
    ble_ota_put_u32(out + 76, 1); /* release */
    ble_ota_put_u32(out + 80, has_desc ? ble_ota_get_u32(desc + 4) : 0);
    ble_ota_put_u16(out + 84, FUZZ_CHIP_ID);
    if (has_desc) {
        memcpy(out + 88, desc + 48, 31);  /* project_name */
        memcpy(out + 120, desc + 16, 31); /* version */
    }
    if (v == FUZZ_MANIFEST_OTHER_VERSION) out[120] ^= 0x01;
    uint8_t hash[32];
    uint32_t seed = 77;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    sha256(out, 160, hash);
    bool ok = mbedtls_ecdsa_sign(&s_grp, &r, &s, &s_d, hash, 32, fuzz_rng, &seed) == 0 &&
              mbedtls_mpi_write_binary(&r, out + 160, 32) == 0 && mbedtls_mpi_write_binary(&s, out + 192, 32) == 0;
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    if (v == FUZZ_MANIFEST_BAD_SIGNATURE) out[200] ^= 0x01;
    return ok;
}

static bool finish(fuzz_image_t *im)
{
    sha256(im->image, im->image_len, im->sha256);
    if (!zlib_of(im->image, im->image_len, &im->deflated, &im->deflated_len)) return false;
    if (im == &s_running) return true;
    uint8_t *patch = malloc(im->image_len * 2 + 64);
    if (!patch) return false;
    for (int v = 0; v < FUZZ_MANIFEST_VARIANTS; v++)
        if (!make_manifest(im, v, im->manifest[v])) {
            free(patch);
            return false;
        }
    for (int v = 0; v < FUZZ_DELTA_VARIANTS; v++) {
        size_t n = make_patch(im, v, patch);
        if (!zlib_of(patch, n, &im->delta[v], &im->delta_len[v])) {
            free(patch);
            return false;
        }
    }
    free(patch);
    return true;
}

static bool build(fuzz_image_t *im, const app_image_spec_t *spec)
{
    im->image = app_image_build(spec, &im->image_len);
    return im->image && finish(im);
}

bool fuzz_images_init(void)
{
    if (s_running.image) return true;
    if (!release_key_init()) return false;
    app_image_spec_t spec = {.chip_id = FUZZ_CHIP_ID, .version = "1.0.0", .secure_version = FUZZ_RUNNING_SECURE_VERSION,
                             .size = FUZZ_IMAGE_SIZE, .seed = 1};
    if (!build(&s_running, &spec)) return false;
    for (unsigned id = 0; id < FUZZ_IMG_COUNT; id++) {
        app_image_spec_t s = {.chip_id = FUZZ_CHIP_ID, .version = "2.0.0", .secure_version = 1,
                              .size = FUZZ_IMAGE_SIZE, .seed = 3};
        switch ((fuzz_image_id_t)id) {
        case FUZZ_IMG_GOOD_NEWER: s.version = "3.0.0", s.secure_version = 2, s.seed = 4, s.size = FUZZ_IMAGE_SIZE + 3000; break;
        case FUZZ_IMG_DOWNGRADE: s.version = "0.9.dev", s.secure_version = 0; /* not x.y.z either */ break;
        case FUZZ_IMG_WRONG_CHIP: s.chip_id = 9; break;
        case FUZZ_IMG_WRONG_CHIP_REV: s.min_chip_rev_full = 500; break;
        default: break;
        }
        fuzz_image_t *im = &s_images[id];
        im->image = app_image_build(&s, &im->image_len);
        if (!im->image) return false;
        if (id == FUZZ_IMG_BAD_CHECKSUM) im->image[im->image_len / 2] ^= 0x5A; /* after sealing: checksum + hash wrong */
        if (id == FUZZ_IMG_NOT_APP) im->image[0] = 0x00;
        if (id == FUZZ_IMG_TINY) im->image_len = 40; /* image header + segment header + 8 descriptor bytes */
        if (!finish(im)) return false;
    }
    return true;
}

const fuzz_image_t *fuzz_image(unsigned id) { return &s_images[id % FUZZ_IMG_COUNT]; }
const fuzz_image_t *fuzz_running_image(void) { return &s_running; }

static void tag16(const char *label, const uint8_t nonce[16], const uint8_t *msg, size_t len, uint8_t out[16])
{
    hmac_sha256_ctx_t c;
    uint8_t mac[32];
    hmac_sha256_init(&c, FUZZ_FLEET_KEY, sizeof FUZZ_FLEET_KEY);
    hmac_sha256_update(&c, (const uint8_t *)label, strlen(label));
    hmac_sha256_update(&c, nonce, 16);
    hmac_sha256_update(&c, msg, len);
    hmac_sha256_final(&c, mac);
    memcpy(out, mac, 16);
}

void fuzz_cmd_tag(const uint8_t nonce[16], uint8_t op, uint8_t tag[16]) { tag16("BLEOTA2-CMD", nonce, &op, 1, tag); }

void fuzz_begin_tag(const uint8_t nonce[16], uint8_t frame[BLE_OTA_BEGIN_LEN])
{
    tag16("BLEOTA2-BEGIN", nonce, frame + BLE_OTA_BEGIN_MAC_OFFSET, BLE_OTA_BEGIN_MAC_LEN,
          frame + BLE_OTA_BEGIN_MAC_OFFSET + BLE_OTA_BEGIN_MAC_LEN);
}
