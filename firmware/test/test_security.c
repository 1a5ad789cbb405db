/*
 * Security of the update path (PROTOCOL.md §D, §E): secure by default, tags on every command when a key
 * exists, per-device keys, signed manifests checked before anything is erased, the release floor and the
 * provisioning window. Signatures are made here with mbedTLS (the release process's side).
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

#include "harness.h"
#include "sha256.h"
#include "test.h"

#define CHIP_C3 5

/* ---------------- release keys (ECDSA P-256) ---------------- */

typedef struct {
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    mbedtls_ecp_point q;
    uint8_t pub[65];
} release_key_t;

/* Deterministic "random" for key generation and signing in tests (not for production). */
static int test_rng(void *arg, unsigned char *out, size_t len)
{
    uint32_t *state = arg;
    for (size_t i = 0; i < len; i++) {
        *state = *state * 1664525u + 1013904223u;
        out[i] = (unsigned char)(*state >> 24);
    }
    return 0;
}

static bool key_make(release_key_t *k, uint32_t seed)
{
    size_t olen = 0;
    mbedtls_ecp_group_init(&k->grp);
    mbedtls_mpi_init(&k->d);
    mbedtls_ecp_point_init(&k->q);
    return mbedtls_ecp_group_load(&k->grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
           mbedtls_ecp_gen_keypair(&k->grp, &k->d, &k->q, test_rng, &seed) == 0 &&
           mbedtls_ecp_point_write_binary(&k->grp, &k->q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, k->pub, sizeof k->pub) == 0 &&
           olen == 65;
}

/* ---------------- manifests (PROTOCOL.md §D layout, built byte by byte) ---------------- */

typedef struct {
    uint8_t key_id;
    uint8_t image_sha256[32];
    uint32_t image_size;
    uint32_t release, secure_version;
    uint16_t chip_id;
    const char *project_name, *app_version;
    unsigned device_count;
    uint8_t device_ids[4][6];
} manifest_spec_t;

static void put_u16(uint8_t *p, uint16_t v) { ble_ota_put_u16(p, v); }
static void put_u32(uint8_t *p, uint32_t v) { ble_ota_put_u32(p, v); }

/* Returns the length; signer NULL leaves the signature zero (an unsigned manifest). */
static size_t manifest_build(const manifest_spec_t *m, release_key_t *signer, uint8_t out[BLE_OTA_MANIFEST_MAX_LEN])
{
    size_t body = 160 + 6 * m->device_count, len = body + 64;
    memset(out, 0, len);
    memcpy(out, "BOM1", 4);
    out[4] = 1;
    out[5] = m->key_id;
    put_u16(out + 6, (uint16_t)len);
    memcpy(out + 8, m->image_sha256, 32);
    put_u32(out + 40, m->image_size);
    put_u32(out + 76, m->release);
    put_u32(out + 80, m->secure_version);
    put_u16(out + 84, m->chip_id);
    put_u16(out + 86, (uint16_t)m->device_count);
    snprintf((char *)out + 88, 32, "%s", m->project_name);
    snprintf((char *)out + 120, 32, "%s", m->app_version);
    for (unsigned i = 0; i < m->device_count; i++) memcpy(out + 160 + 6 * i, m->device_ids[i], 6);
    if (signer) {
        uint8_t hash[32];
        uint32_t seed = 77;
        mbedtls_mpi r, s;
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s);
        sha256(out, body, hash);
        if (mbedtls_ecdsa_sign(&signer->grp, &r, &s, &signer->d, hash, 32, test_rng, &seed) == 0) {
            mbedtls_mpi_write_binary(&r, out + body, 32);
            mbedtls_mpi_write_binary(&s, out + body + 32, 32);
        }
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s);
    }
    return len;
}

/* A manifest that matches img (harness images: project "ble_ota_test"). */
static manifest_spec_t spec_for(const uint8_t *img, size_t len, const char *version, uint32_t secure_version, uint32_t release)
{
    manifest_spec_t m;
    memset(&m, 0, sizeof m);
    sha256(img, len, m.image_sha256);
    m.image_size = (uint32_t)len;
    m.release = release;
    m.secure_version = secure_version;
    m.chip_id = CHIP_C3;
    m.project_name = "ble_ota_test";
    m.app_version = version;
    return m;
}

static const uint8_t DEVICE_A[6] = {0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56};
static const uint8_t DEVICE_B[6] = {0x24, 0x0a, 0xc4, 0x65, 0x43, 0x21};

/* Secure default: no opt-out. */
static host_device_opts_t secure_opts(void)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.allow_unauthenticated = false;
    memcpy(o.device_id, DEVICE_A, 6);
    return o;
}

static unsigned flash_work(void)
{
    host_flash_t *f = host_device_flash(H.dev);
    return (unsigned)(f->erase_ops + f->write_ops);
}

/* BEGIN (raw, whole image) carrying manifest bytes. */
static uint8_t begin_with_manifest(const uint8_t *img, size_t len, const uint8_t *manifest, size_t mlen, uint16_t *chunk)
{
    begin_t b = h_begin_for(img, len, img, len, 0);
    if (manifest) {
        b.flags |= BLE_OTA_BEGIN_FLAG_MANIFEST;
        b.manifest = manifest;
        b.manifest_len = mlen;
    }
    return h_begin(1, &b, true, chunk, NULL);
}

/* ---------------- HKDF-SHA256 (RFC 5869) with the host's HMAC ---------------- */

static void hmac(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                 uint8_t out[32])
{
    hmac_sha256_ctx_t c;
    hmac_sha256_init(&c, key, key_len);
    hmac_sha256_update(&c, a, a_len);
    if (b_len) hmac_sha256_update(&c, b, b_len);
    hmac_sha256_final(&c, out);
}

void hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len, const uint8_t *info,
                 size_t info_len, uint8_t *okm, size_t okm_len)
{
    uint8_t prk[32], t[32 + 64 + 1];
    size_t t_len = 0, done = 0;
    hmac(salt, salt_len, ikm, ikm_len, NULL, 0, prk);
    for (uint8_t i = 1; done < okm_len; i++) {
        uint8_t block[32];
        memcpy(t + t_len, info, info_len); /* T(i) = HMAC(PRK, T(i-1) || info || i) */
        t[t_len + info_len] = i;
        hmac(prk, 32, t, t_len + info_len + 1, NULL, 0, block);
        size_t n = okm_len - done < 32 ? okm_len - done : 32;
        memcpy(okm + done, block, n);
        done += n;
        memcpy(t, block, 32);
        t_len = 32;
    }
}

static void device_key_for(const uint8_t master[32], const uint8_t id[6], uint8_t out[32])
{
    static const char salt[] = "BLEOTA2-DEVICE-KEY";
    hkdf_sha256(master, 32, (const uint8_t *)salt, strlen(salt), id, 6, out, 32);
}

static bool hex_is(const uint8_t *b, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++) {
        char two[3];
        snprintf(two, sizeof two, "%02x", b[i]);
        if (strncmp(two, hex + 2 * i, 2) != 0) return false;
    }
    return true;
}

TEST(hkdf_matches_rfc5869_case_1)
{
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++) salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++) info[i] = (uint8_t)(0xf0 + i);
    hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, okm, sizeof okm);
    CHECK(hex_is(okm, 42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
}

/* ---------------- secure by default ---------------- */

TEST(unprovisioned_default_device_refuses_a_stranger)
{
    host_device_opts_t o = secure_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint16_t caps = ble_ota_core_caps();
    CHECK(caps & BLE_OTA_CAP_NOT_PROVISIONED);
    CHECK(!(caps & BLE_OTA_CAP_UNAUTHENTICATED));
    unsigned boots = host_device_boots(H.dev);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_NOT_PROVISIONED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, false), BLE_OTA_ERR_NOT_PROVISIONED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, false), BLE_OTA_ERR_NOT_PROVISIONED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, false), BLE_OTA_ERR_NOT_PROVISIONED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ROLLBACK, false), BLE_OTA_ERR_NOT_PROVISIONED);
    host_device_tick(H.dev, 1000);
    CHECK_EQ(host_device_boots(H.dev), boots); /* REBOOT did nothing */
    CHECK_EQ(flash_work(), 0);
    free(img);
    h_stop();
}

TEST(development_opt_out_keeps_the_open_device)
{
    host_device_opts_t o = secure_opts();
    o.cfg.allow_unauthenticated = true;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_UNAUTHENTICATED);
    CHECK(!(ble_ota_core_caps() & BLE_OTA_CAP_NOT_PROVISIONED));
    CHECK_EQ(h_update(img, len, false, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}

/* With a session key, REBOOT and ABORT need a valid tag like every other command (no zero-tag bypass). */
TEST(reboot_and_abort_need_a_valid_tag_with_a_key)
{
    host_device_opts_t o = secure_opts();
    o.has_device_key = true;
    memset(o.device_key, 0x5A, 32);
    CHECK(h_start(&o));
    unsigned boots = host_device_boots(H.dev);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, false), BLE_OTA_ERR_AUTH_REQUIRED); /* no CHALLENGE */
    CHECK_EQ(h_challenge(1), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, false), BLE_OTA_ERR_AUTH_FAILED); /* CHALLENGE, zero tag */
    CHECK_EQ(h_challenge(1), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, false), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, false), BLE_OTA_ERR_AUTH_REQUIRED);
    host_device_tick(H.dev, 1000);
    CHECK_EQ(host_device_boots(H.dev), boots);
    /* the key holder can */
    H.has_key = true;
    memcpy(H.key, o.device_key, 32);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, true), 0);
    host_device_tick(H.dev, 1000);
    CHECK_EQ(host_device_boots(H.dev), boots + 1);
    h_stop();
}

/* A stranger who recorded a key holder's BEGIN and REBOOT cannot replay them: each tag binds the nonce of
 * one CHALLENGE, which is spent. */
TEST(stranger_replay_of_captured_begin_and_reboot_refused)
{
    host_device_opts_t o = secure_opts();
    o.has_device_key = true;
    memset(o.device_key, 0x3C, 32);
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    /* the key holder's frames, as a sniffer records them */
    uint8_t nonce[16], begin[BLE_OTA_BEGIN_LEN], reboot[17] = {BLE_OTA_OP_REBOOT}, mac[32];
    CHECK_EQ(h_challenge(1), 0);
    memcpy(nonce, H.nonce, 16);
    begin_t b = h_begin_for(img, len, img, len, 0);
    ble_ota_begin_req_t req = {.image_size = b.image_size, .transfer_size = b.transfer_size, .flags = b.flags, .chunk_size = b.chunk};
    memcpy(req.sha256, b.sha256, 32);
    ble_ota_encode_begin(&req, begin);
    hmac_sha256_ctx_t c;
    hmac_sha256_init(&c, o.device_key, 32);
    hmac_sha256_update(&c, (const uint8_t *)"BLEOTA2-BEGIN", 13);
    hmac_sha256_update(&c, nonce, 16);
    hmac_sha256_update(&c, begin + 1, 76);
    hmac_sha256_final(&c, mac);
    memcpy(begin + 77, mac, 16);
    h_control(1, begin, sizeof begin);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_BEGIN), 0); /* the genuine one */
    CHECK_EQ(h_challenge(1), 0);
    hmac_sha256_init(&c, o.device_key, 32);
    hmac_sha256_update(&c, (const uint8_t *)"BLEOTA2-CMD", 11);
    hmac_sha256_update(&c, H.nonce, 16);
    hmac_sha256_update(&c, reboot, 1);
    hmac_sha256_final(&c, mac);
    memcpy(reboot + 1, mac, 16);
    /* (not sent: the stranger replays it later) */
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 2, 247);
    unsigned boots = host_device_boots(H.dev);
    h_control(2, begin, sizeof begin); /* no CHALLENGE of its own */
    CHECK_EQ(h_rsp_err(2, BLE_OTA_OP_BEGIN), BLE_OTA_ERR_AUTH_REQUIRED);
    CHECK_EQ(h_challenge(2), 0); /* a fresh nonce: the old tag does not fit it */
    h_control(2, begin, sizeof begin);
    CHECK_EQ(h_rsp_err(2, BLE_OTA_OP_BEGIN), BLE_OTA_ERR_AUTH_FAILED);
    h_control(2, reboot, sizeof reboot);
    CHECK_EQ(h_rsp_err(2, BLE_OTA_OP_REBOOT), BLE_OTA_ERR_AUTH_REQUIRED);
    CHECK_EQ(h_challenge(2), 0);
    h_control(2, reboot, sizeof reboot);
    CHECK_EQ(h_rsp_err(2, BLE_OTA_OP_REBOOT), BLE_OTA_ERR_AUTH_FAILED);
    host_device_tick(H.dev, 1000);
    CHECK_EQ(host_device_boots(H.dev), boots);
    free(img);
    h_stop();
}

/* Per-device keys: HKDF-SHA256(master, "BLEOTA2-DEVICE-KEY", device_id). A key extracted from device A
 * (or derived for it) does not open device B. */
TEST(device_a_key_refused_by_device_b)
{
    uint8_t master[32], key_a[32], key_b[32];
    for (int i = 0; i < 32; i++) master[i] = (uint8_t)(0xA0 + i);
    device_key_for(master, DEVICE_A, key_a);
    device_key_for(master, DEVICE_B, key_b);
    CHECK(memcmp(key_a, key_b, 32) != 0);
    host_device_opts_t o = secure_opts();
    memcpy(o.device_id, DEVICE_B, 6);
    o.has_device_key = true;
    memcpy(o.device_key, key_b, 32);
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(memcmp(st.device_id, DEVICE_B, 6) == 0); /* what the gateway derives from */
    H.has_key = true;
    memcpy(H.key, key_a, 32);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, true), BLE_OTA_ERR_AUTH_FAILED);
    CHECK_EQ(flash_work(), 0);
    device_key_for(master, st.device_id, H.key);
    CHECK_EQ(h_update(img, len, false, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}

/* The device_key wins over the legacy fleet_key. */
TEST(device_key_takes_precedence_over_fleet_key)
{
    host_device_opts_t o = secure_opts();
    o.has_fleet_key = true;
    memset(o.fleet_key, 0x11, 32);
    o.has_device_key = true;
    memset(o.device_key, 0x22, 32);
    CHECK(h_start(&o));
    H.has_key = true;
    memset(H.key, 0x11, 32);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, true), BLE_OTA_ERR_AUTH_FAILED);
    memset(H.key, 0x22, 32);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, true), 0);
    h_stop();
}

/* ---------------- signed manifests ---------------- */

static release_key_t s_release, s_forger;
static bool s_keys_ready;

static bool keys(void)
{
    if (!s_keys_ready) s_keys_ready = key_make(&s_release, 1) && key_make(&s_forger, 2);
    return s_keys_ready;
}

/* A device with release key 0 (and optionally 2), no session key: BEGIN needs no tag but a manifest. */
static host_device_opts_t manifest_opts(void)
{
    host_device_opts_t o = secure_opts();
    memcpy(o.release_keys[0], s_release.pub, 65);
    o.release_key_mask = 1;
    return o;
}

/* A manifest whose signature does not verify passes BEGIN (cheap checks only; the BEGIN response is not
 * delayed by the ECDSA verify); the writer verifies it as the session's first job and aborts with
 * SESSION_ABORTED MANIFEST_INVALID before any flash write. Returns that err (0xEE: BEGIN refused it). */
static uint8_t writer_refusal(const uint8_t *img, size_t len, const uint8_t *man, size_t n)
{
    uint16_t chunk = 0;
    if (begin_with_manifest(img, len, man, n, &chunk) != 0) return 0xEE;
    uint8_t err = h_send(1, img, 0, (uint32_t)(len < 8192 ? len : 8192), chunk);
    ble_ota_status_t st;
    h_status(&st);
    if (st.last_result != err || st.session_state != BLE_OTA_SESSION_IDLE) return 0xED;
    return err;
}

/* The MANIFEST tests' device (manifest_opts: the release key provisioned, and `release_floor` when not 0)
 * running its factory image; the 80000-byte update image, NULL when the keys or the device did not come up. */
static uint8_t *start_keyed(host_device_opts_t *o, uint32_t release_floor, size_t *len)
{
    if (!keys()) {
        return NULL;
    }
    *o = manifest_opts();
    o->release_floor = release_floor;
    return h_start_with_image(o, 80000, len);
}

TEST(manifest_checks_refuse_before_any_flash_write)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 5, &len);
    CHECK(img);
    uint16_t caps = ble_ota_core_caps();
    CHECK(caps & BLE_OTA_CAP_MANIFEST_REQUIRED);
    CHECK(!(caps & BLE_OTA_CAP_NOT_PROVISIONED));
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN + 8];
    manifest_spec_t good = spec_for(img, len, "2.0.0", 1, 6), m;
    size_t n;

    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);
    n = manifest_build(&good, NULL, man); /* unsigned */
    CHECK_EQ(writer_refusal(img, len, man, n), BLE_OTA_ERR_MANIFEST_INVALID);
    n = manifest_build(&good, &s_forger, man); /* signed by a key the device does not hold */
    CHECK_EQ(writer_refusal(img, len, man, n), BLE_OTA_ERR_MANIFEST_INVALID);
    n = manifest_build(&good, &s_release, man);
    man[100] ^= 1; /* edited after signing */
    CHECK_EQ(writer_refusal(img, len, man, n), BLE_OTA_ERR_MANIFEST_INVALID);
    CHECK_EQ(flash_work(), 0);
    m = good;
    m.key_id = 1; /* no release key 1 */
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_INVALID);
    n = manifest_build(&good, &s_release, man);
    man[0] = 'X'; /* bad magic */
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_INVALID);
    n = manifest_build(&good, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n - 1, NULL), BLE_OTA_ERR_BAD_LENGTH); /* length field != bytes */

    m = good;
    m.image_sha256[0] ^= 1; /* signed, but for another image */
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.image_size++;
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.chip_id = 9; /* released for esp32s3 */
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.device_count = 1; /* allow-list without this device */
    memcpy(m.device_ids[0], DEVICE_B, 6);
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.release = 4; /* older than the floor 5 */
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_RELEASE_TOO_OLD);
    CHECK_EQ(flash_work(), 0);
    CHECK_EQ(host_device_boots(H.dev), 1);

    /* tagged commands: no session key, so nobody can prove anything */
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, false), BLE_OTA_ERR_NOT_PROVISIONED);

    /* listed device, release at the floor: accepted */
    m = good;
    m.release = 5;
    m.device_count = 2;
    memcpy(m.device_ids[0], DEVICE_B, 6);
    memcpy(m.device_ids[1], DEVICE_A, 6);
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), 0);
    free(img);
    h_stop();
}

/* The manifest names the app descriptor's secure_version, project and version: an image that differs is
 * stopped with the 288-byte header check, before the first flash write. */
TEST(manifest_mismatching_the_image_header_aborts_before_flash)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    const char *fields[3] = {"version", "project", "secure_version"};
    for (int i = 0; i < 3; i++) {
        manifest_spec_t m = spec_for(img, len, i == 0 ? "2.0.1" : "2.0.0", i == 2 ? 2 : 1, 3);
        if (i == 1) m.project_name = "other_project";
        uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
        size_t n = manifest_build(&m, &s_release, man);
        uint16_t chunk = 0;
        CHECK_EQ(begin_with_manifest(img, len, man, n, &chunk), 0);
        uint8_t err = h_send(1, img, 0, (uint32_t)len, chunk);
        if (err != BLE_OTA_ERR_MANIFEST_MISMATCH) fprintf(stderr, "    field %s\n", fields[i]);
        CHECK_EQ(err, BLE_OTA_ERR_MANIFEST_MISMATCH);
        CHECK_EQ(flash_work(), 0);
    }
    free(img);
    h_stop();
}

TEST(manifest_on_a_device_without_release_keys_is_invalid)
{
    CHECK(keys());
    host_device_opts_t o = secure_opts();
    o.cfg.allow_unauthenticated = true;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    manifest_spec_t m = spec_for(img, len, "2.0.0", 1, 1);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img, len, man, n, NULL), BLE_OTA_ERR_MANIFEST_INVALID);
    free(img);
    h_stop();
}

/* ---------------- MANIFEST (op 0x09, revision 2.2): the manifest alone, before BEGIN ---------------- */

static uint8_t send_manifest(ble_ota_conn_t conn, const uint8_t *man, size_t n)
{
    uint8_t cmd[1 + BLE_OTA_MANIFEST_MAX_LEN + 8];
    cmd[0] = BLE_OTA_OP_MANIFEST;
    memcpy(cmd + 1, man, n);
    h_control(conn, cmd, 1 + n);
    return h_rsp_err(conn, BLE_OTA_OP_MANIFEST);
}

/* The image's manifest (version 2.0.0, secure version 1, release 3) signed with `key`; its length. */
static size_t release_manifest(const uint8_t *img, size_t len, release_key_t *key, uint8_t man[BLE_OTA_MANIFEST_MAX_LEN])
{
    manifest_spec_t m = spec_for(img, len, "2.0.0", 1, 3);
    return manifest_build(&m, key, man);
}

/* The whole image on connection 1 in chunks of `chunk`, then END: the Status's last result (0xEE: the data
 * or END was refused). */
static uint8_t send_and_end(const uint8_t *img, size_t len, uint16_t chunk)
{
    if (h_send(1, img, 0, (uint32_t)len, chunk) != BLE_OTA_OK || h_end(1, 0) != BLE_OTA_OK) {
        return 0xEE;
    }
    ble_ota_status_t st;
    h_status(&st);
    return st.last_result;
}

TEST(manifest_command_then_plain_begin_installs)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_MANIFEST_CMD);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = release_manifest(img, len, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_OK);
    CHECK_EQ(flash_work(), 0); /* the verify ran in the writer; nothing erased before BEGIN */
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, &chunk), BLE_OTA_OK); /* no flags bit1 */
    CHECK_EQ(send_and_end(img, len, chunk), BLE_OTA_OK);
    /* BEGIN took it over: the next BEGIN needs a new one */
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);
    free(img);
    h_stop();
}

TEST(manifest_command_bad_signature_aborts_after_begin_before_flash)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = release_manifest(img, len, &s_forger, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_OK); /* answered before the verify */
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, &chunk), BLE_OTA_OK);
    CHECK_EQ(h_send(1, img, 0, 8192, chunk), BLE_OTA_ERR_MANIFEST_INVALID);
    CHECK_EQ(flash_work(), 0);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.last_result, BLE_OTA_ERR_MANIFEST_INVALID);
    CHECK_EQ(st.session_state, BLE_OTA_SESSION_IDLE);
    free(img);
    h_stop();
}

TEST(manifest_command_checks_and_clearing)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 5, &len);
    CHECK(img);
    manifest_spec_t good = spec_for(img, len, "2.0.0", 1, 6), m;
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = manifest_build(&good, &s_release, man);
    /* checks that need no BEGIN, with BEGIN's codes */
    CHECK_EQ(send_manifest(1, man, n - 1), BLE_OTA_ERR_BAD_LENGTH);
    CHECK_EQ(send_manifest(1, man, 7), BLE_OTA_ERR_BAD_LENGTH);
    m = good;
    m.key_id = 1;
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_ERR_MANIFEST_INVALID);
    m = good;
    m.chip_id = 9;
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.device_count = 1;
    memcpy(m.device_ids[0], DEVICE_B, 6);
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_ERR_MANIFEST_MISMATCH);
    m = good;
    m.release = 4;
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_ERR_RELEASE_TOO_OLD);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED); /* refused: not kept */

    /* BEGIN's fields are checked against the stored one at BEGIN */
    m = good;
    m.image_size++;
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_OK);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_MISMATCH);

    /* one slot: another connection's MANIFEST waits (BUSY), its BEGIN does not get this one */
    n = manifest_build(&good, &s_release, man);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_OK);
    host_device_connect(H.dev, 2, 247);
    CHECK_EQ(send_manifest(2, man, n), BLE_OTA_ERR_BUSY);
    begin_t b = h_begin_for(img, len, img, len, 0);
    CHECK_EQ(h_begin(2, &b, true, NULL, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);

    /* the link drops: the manifest goes with it */
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 1, 247);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);
    CHECK_EQ(send_manifest(2, man, n), BLE_OTA_OK); /* the slot is free again */
    CHECK_EQ(flash_work(), 0);
    free(img);
    h_stop();
}

/* ---------------- staging on Data (revision 2.3, caps bit12): MANIFEST 0x09 alone commits ---------------- */

#define STAGING_BIT 0x80000000u

/* The manifest in staging writes of `fragment` bytes from manifest offset `from` on, in order. */
static void stage(ble_ota_conn_t conn, const uint8_t *man, size_t from, size_t n, size_t fragment)
{
    for (size_t at = from; at < n; at += fragment)
        h_data(conn, STAGING_BIT | (uint32_t)at, man + at, n - at < fragment ? n - at : fragment);
}

static uint8_t commit(ble_ota_conn_t conn)
{
    uint8_t op = BLE_OTA_OP_MANIFEST;
    h_control(conn, &op, 1);
    return h_rsp_err(conn, BLE_OTA_OP_MANIFEST);
}

static bool no_notification(ble_ota_conn_t conn)
{
    note_t n;
    return !h_pop(conn, &n);
}

TEST(manifest_staging_at_mtu_23_then_plain_begin_installs)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_MANIFEST_STAGING);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_MANIFEST_CMD); /* bit12 implies bit11 */
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 1, 23);
    manifest_spec_t m = spec_for(img, len, "2.0.0", 1, 3);
    m.device_count = 2; /* 236 bytes: the last fragment is short */
    memcpy(m.device_ids[0], DEVICE_B, 6);
    memcpy(m.device_ids[1], o.device_id, 6);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = manifest_build(&m, &s_release, man);
    CHECK_EQ(n, 236u);
    h_clear();
    stage(1, man, 0, n, 23 - 7); /* 15 Write Commands of at most MTU - 7 = 16 bytes */
    CHECK(no_notification(1)); /* no DATA_ACK, no NAK for staging writes */
    CHECK_EQ(commit(1), BLE_OTA_OK);
    CHECK_EQ(flash_work(), 0);
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, &chunk), BLE_OTA_OK); /* no flags bit1: the staged one */
    CHECK_EQ(chunk, 16);
    CHECK_EQ(send_and_end(img, len, chunk), BLE_OTA_OK);
    free(img);
    h_stop();
}

TEST(manifest_staging_breaks_and_owners)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    manifest_spec_t good = spec_for(img, len, "2.0.0", 1, 3);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN + 32];
    size_t n = manifest_build(&good, &s_release, man);
    host_device_connect(H.dev, 2, 247);
    h_clear();

    /* commit with nothing staged: BAD_LENGTH, like a MANIFEST too short for its length field */
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);

    /* out of order: one NAK naming the staged length, then silence; the commit is refused */
    stage(1, man, 0, 32, 16);
    h_data(1, STAGING_BIT | 48, man + 48, 16);
    CHECK(h_nak_is(1, BLE_OTA_ERR_BAD_LENGTH, STAGING_BIT | 32));
    h_data(1, STAGING_BIT | 32, man + 32, 16);
    h_data(1, STAGING_BIT | 64, man + 64, 16);
    CHECK(no_notification(1)); /* once per break */
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);
    /* restart at offset 0 after a break: accepted */
    stage(1, man, 0, n, 16);
    CHECK(no_notification(1));
    CHECK_EQ(commit(1), BLE_OTA_OK);
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH); /* consumed by the first commit */

    /* overflow: past 416 bytes (a write too long for the buffer at offset 0 too) */
    uint8_t big[BLE_OTA_MANIFEST_MAX_LEN + 32] = {0};
    stage(1, big, 0, 400, 100);
    h_data(1, STAGING_BIT | 400, big, 17);
    CHECK(h_nak_is(1, BLE_OTA_ERR_BAD_LENGTH, STAGING_BIT | 400));
    h_data(1, STAGING_BIT, big, BLE_OTA_MANIFEST_MAX_LEN + 1);
    CHECK(h_nak_is(1, BLE_OTA_ERR_BAD_LENGTH, STAGING_BIT));
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);

    /* staged bytes that break the length rule: BAD_LENGTH at the commit, as for 0x09 || manifest */
    stage(1, man, 0, n - 1, 16);
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);

    /* another connection's fragment (not offset 0) is dropped silently and changes nothing */
    stage(1, man, 0, 64, 16);
    h_data(2, STAGING_BIT | 64, man + 64, 16);
    CHECK(no_notification(2));
    stage(1, man, 64, n, 16);
    CHECK_EQ(commit(2), BLE_OTA_ERR_BAD_LENGTH); /* conn 2 staged nothing */
    CHECK_EQ(commit(1), BLE_OTA_OK);
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, &chunk), BLE_OTA_OK); /* takes it over */
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), BLE_OTA_OK);
    CHECK_EQ(h_end(1, 0), BLE_OTA_OK);

    /* offset 0 from another connection takes the buffer: the first one's bytes are gone */
    stage(1, man, 0, 64, 16);
    h_data(2, STAGING_BIT, man, 16);
    stage(1, man, 64, n, 16);
    CHECK(no_notification(1)); /* not its buffer any more: dropped silently */
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);
    stage(2, man, 16, n, 16);
    CHECK_EQ(commit(2), BLE_OTA_OK);
    host_device_disconnect(H.dev, 2);
    host_device_connect(H.dev, 2, 247);

    /* the link drops: staged bytes go with it */
    stage(1, man, 0, n, 16);
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 1, 23);
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);

    /* BEGIN and a whole MANIFEST end staging too */
    stage(1, man, 0, n, 16);
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);
    stage(1, man, 0, n, 16);
    CHECK_EQ(send_manifest(1, man, n), BLE_OTA_OK);
    CHECK_EQ(commit(1), BLE_OTA_ERR_BAD_LENGTH);
    /* ... and the refused commit replaced the stored manifest, as any MANIFEST does */
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_MANIFEST_REQUIRED);
    free(img);
    h_stop();
}

/* Signed update, host policy: the floor rises at CONFIRM; an update rolled back leaves it. */
TEST(release_floor_raised_at_confirm_not_at_rollback)
{
    CHECK(keys());
    host_device_opts_t o = manifest_opts();
    o.cfg.policy = BLE_OTA_POLICY_HOST;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    /* only a session key holder may CONFIRM / ROLLBACK: give the device one too */
    h_stop();
    o.has_device_key = true;
    memset(o.device_key, 0x77, 32);
    CHECK(h_start(&o));
    H.has_key = true;
    memcpy(H.key, o.device_key, 32);
    manifest_spec_t m = spec_for(img, len, "2.0.0", 1, 7);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = manifest_build(&m, &s_release, man);
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, man, n, &chunk), 0);
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK_EQ(st.release_floor, 0); /* pending verify: not yet */
    host_device_connect(H.dev, 1, 247);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_CONFIRM, true), 0);
    h_status(&st);
    CHECK_EQ(st.release_floor, 7);
    host_device_power_loss(H.dev); /* persisted */
    host_device_connect(H.dev, 1, 247);
    h_status(&st);
    CHECK_EQ(st.release_floor, 7);

    /* release 9, then rolled back: the floor stays 7 */
    size_t len2;
    uint8_t *img2 = h_image(CHIP_C3, "3.0.0", 1, 70000, 9, &len2);
    m = spec_for(img2, len2, "3.0.0", 1, 9);
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img2, len2, man, n, &chunk), 0);
    CHECK_EQ(h_send(1, img2, 0, (uint32_t)len2, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 0);
    host_device_connect(H.dev, 1, 247);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ROLLBACK, true), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    host_device_connect(H.dev, 1, 247);
    h_status(&st);
    CHECK_EQ(st.release_floor, 7);
    /* and release 6 is now too old */
    m = spec_for(img2, len2, "3.0.0", 1, 6);
    n = manifest_build(&m, &s_release, man);
    CHECK_EQ(begin_with_manifest(img2, len2, man, n, NULL), BLE_OTA_ERR_RELEASE_TOO_OLD);
    free(img2);
    free(img);
    h_stop();
}

TEST(release_floor_raised_by_auto_confirm)
{
    host_device_opts_t o;
    size_t len;
    uint8_t *img = start_keyed(&o, 0, &len);
    CHECK(img);
    manifest_spec_t m = spec_for(img, len, "2.0.0", 1, 12);
    uint8_t man[BLE_OTA_MANIFEST_MAX_LEN];
    size_t n = manifest_build(&m, &s_release, man);
    uint16_t chunk = 0;
    CHECK_EQ(begin_with_manifest(img, len, man, n, &chunk), 0);
    CHECK_EQ(h_send(1, img, 0, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    ble_ota_status_t st;
    h_status(&st);
    CHECK(st.last_flags & BLE_OTA_LAST_CONFIRMED);
    CHECK_EQ(st.release_floor, 12);
    free(img);
    h_stop();
}

/* ---------------- provisioning window ---------------- */

TEST(provision_inside_and_outside_the_window)
{
    host_device_opts_t o = secure_opts();
    o.cfg.provision_window_ms = 120000;
    o.provision_button = true;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_PROVISION_WINDOW);
    uint8_t prov[BLE_OTA_PROVISION_LEN] = {BLE_OTA_OP_PROVISION};
    memset(prov + 1, 0x6B, 32);
    h_control(1, prov, 10);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_PROVISION), BLE_OTA_ERR_BAD_LENGTH);
    h_control(1, prov, sizeof prov);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_PROVISION), 0);
    uint16_t caps = ble_ota_core_caps();
    CHECK(caps & BLE_OTA_CAP_FLEET_KEY);
    CHECK(!(caps & BLE_OTA_CAP_NOT_PROVISIONED));
    /* the key is in force at once and persisted */
    CHECK_EQ(begin_with_manifest(img, len, NULL, 0, NULL), BLE_OTA_ERR_AUTH_REQUIRED);
    uint8_t stored[32];
    size_t slen = sizeof stored;
    CHECK_EQ(host_nvs_get(host_device_flash(H.dev), "device_key", stored, &slen), 0);
    CHECK(slen == 32 && memcmp(stored, prov + 1, 32) == 0);
    /* the window closes */
    host_device_tick(H.dev, 120001);
    CHECK(!(ble_ota_core_caps() & BLE_OTA_CAP_PROVISION_WINDOW));
    h_control(1, prov, sizeof prov);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_PROVISION), BLE_OTA_ERR_INVALID_STATE);
    /* no physical action at the next boot: no window */
    host_device_set_provision_button(H.dev, false);
    host_device_power_loss(H.dev);
    host_device_connect(H.dev, 1, 247);
    CHECK(!(ble_ota_core_caps() & BLE_OTA_CAP_PROVISION_WINDOW));
    h_control(1, prov, sizeof prov);
    CHECK_EQ(h_rsp_err(1, BLE_OTA_OP_PROVISION), BLE_OTA_ERR_INVALID_STATE);
    H.has_key = true;
    memcpy(H.key, stored, 32);
    CHECK_EQ(h_update(img, len, false, 1), 0);
    free(img);
    h_stop();
}

/* ---------------- Status format 2 ---------------- */

TEST(status_format_2_fields)
{
    CHECK(keys());
    host_device_opts_t o = manifest_opts();
    memcpy(o.release_keys[2], s_forger.pub, 65);
    o.release_key_mask = 0x05;
    o.release_floor = 3;
    CHECK(h_start(&o));
    uint8_t raw[BLE_OTA_STATUS_LEN];
    CHECK_EQ(ble_ota_core_read_status(raw), 252);
    CHECK_EQ(raw[0], 2);
    CHECK_EQ(ble_ota_get_u32(raw + 232), 512 * 1024);
    CHECK_EQ(ble_ota_get_u32(raw + 236), 3);
    CHECK(memcmp(raw + 240, DEVICE_A, 6) == 0);
    CHECK_EQ(raw[246], 0x05);
    for (int i = 247; i < 252; i++) CHECK_EQ(raw[i], 0);
    ble_ota_status_t st;
    CHECK(ble_ota_decode_status(raw, 252, &st));
    CHECK_EQ(st.release_key_ids, 0x05);
    CHECK(ble_ota_decode_status(raw, 232, &st)); /* format 1 still decodes */
    CHECK_EQ(st.release_floor, 0);
    h_stop();
}

/* ---------------- signed images required (caps bit5) ---------------- */

TEST(signed_required_refuses_an_image_without_signature_block)
{
    host_device_opts_t o = secure_opts();
    o.cfg.allow_unauthenticated = true;
    o.signed_required = true;
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    CHECK(ble_ota_core_caps() & BLE_OTA_CAP_SIGNED);
    CHECK_EQ(h_update(img, len, false, 1), BLE_OTA_ERR_VALIDATION_FAILED);
    CHECK_EQ(host_device_running(H.dev), 0);
    /* the same image padded to 4 KiB with a signature block (magic 0xE7) after it */
    size_t signed_len = (len + 4095) / 4096 * 4096 + 4096;
    uint8_t *signed_img = malloc(signed_len);
    CHECK(signed_img);
    memset(signed_img, 0xFF, signed_len);
    memcpy(signed_img, img, len);
    signed_img[(len + 4095) / 4096 * 4096] = 0xE7;
    CHECK_EQ(h_update(signed_img, signed_len, false, 1), 0);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(signed_img);
    free(img);
    h_stop();
}

/* ---------------- the contract's byte layouts (PROTOCOL.md v2.1 §B) ---------------- */

TEST(begin_layout_93_bytes_and_manifest_length_rule)
{
    ble_ota_begin_req_t req = {.image_size = 0x11223344, .transfer_size = 0x55667788, .encoding = 2,
                               .flags = BLE_OTA_BEGIN_FLAG_MANIFEST, .chunk_size = 0x0102};
    for (int i = 0; i < 32; i++) req.sha256[i] = (uint8_t)(0xA0 + i), req.base_sha256[i] = (uint8_t)(0x40 + i);
    for (int i = 0; i < 16; i++) req.tag[i] = (uint8_t)(0xE0 + i);
    uint8_t b[BLE_OTA_BEGIN_LEN + 230];
    CHECK_EQ(ble_ota_encode_begin(&req, b), 93);
    CHECK(b[0] == 0x02 && b[1] == 0x44 && b[4] == 0x11 && b[5] == 0x88 && b[9] == 2 && b[10] == 0x02);
    CHECK(b[11] == 0x02 && b[12] == 0x01 && b[13] == 0xA0 && b[44] == 0xBF && b[45] == 0x40 && b[76] == 0x5F);
    CHECK(b[77] == 0xE0 && b[92] == 0xEF);
    ble_ota_begin_req_t d;
    CHECK(!ble_ota_decode_begin(b, 93, &d)); /* bit1 without a manifest */
    memset(b + 93, 0, 230);
    ble_ota_put_u16(b + 93 + 6, 224); /* the manifest's own length field */
    CHECK(ble_ota_decode_begin(b, 93 + 224, &d));
    CHECK(d.manifest == b + 93 && d.manifest_len == 224 && d.base_sha256[31] == 0x5F && d.tag[15] == 0xEF);
    CHECK(!ble_ota_decode_begin(b, 93 + 223, &d));
    CHECK(!ble_ota_decode_begin(b, 93 + 225, &d));
    CHECK(!ble_ota_decode_begin(b, 93 + 7, &d)); /* shorter than 8 manifest bytes */
    b[10] = 0;
    CHECK(ble_ota_decode_begin(b, 93, &d) && d.manifest == NULL);
    CHECK(!ble_ota_decode_begin(b, 94, &d));
    CHECK(!ble_ota_decode_begin(b, 61, &d)); /* the v2.0 length */
}
