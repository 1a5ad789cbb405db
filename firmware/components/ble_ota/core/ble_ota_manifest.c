/*
 * Signed update manifest checks (PROTOCOL.md §D, §12), before anything is erased. The signature is
 * ECDSA P-256 over SHA-256 of the manifest body, verified with a release public key (NVS rel_key0..3 or
 * built in) through the port; the gateway only relays manifests, so it cannot make the device accept an
 * image the release process did not sign. BEGIN does the cheap checks and hashes the signed bytes; the
 * verify (up to ~134 ms on chips without ECC hardware) runs in the writer as the session's first job, so
 * the BEGIN response is not delayed and the BLE host task is never held by it.
 */
#include <string.h>

#include "ble_ota_internal.h"

#define P (g_ota.port)

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

static bool signed_hash(const ble_ota_manifest_t *m, const uint8_t *raw, uint8_t hash[32])
{
    void *h = P->digest_start(P->ctx, NULL, 0);
    if (!h || !P->ecdsa_p256_verify) {
        if (h) P->digest_finish(P->ctx, h, NULL);
        return false;
    }
    P->digest_update(P->ctx, h, raw, ble_ota_manifest_signed_len(m));
    P->digest_finish(P->ctx, h, hash);
    return true;
}

bool ota_verify_manifest(const manifest_expect_t *expect)
{
    uint8_t key[BLE_OTA_RELEASE_KEY_LEN];
    ota_lock();
    bool known = expect->key_id < BLE_OTA_MAX_RELEASE_KEYS && (g_ota.release_key_mask & (1u << expect->key_id));
    if (known) memcpy(key, g_ota.release_keys[expect->key_id], sizeof key);
    ota_unlock();
    return known && P->ecdsa_p256_verify(P->ctx, key, expect->hash, expect->signature) == 0;
}

static bool device_listed(const ble_ota_manifest_t *m)
{
    if (m->device_count == 0) return true;
    for (unsigned i = 0; i < m->device_count; i++)
        if (memcmp(m->device_ids + 6 * i, g_ota.app.device_id, 6) == 0) return true;
    return false;
}

uint8_t ota_check_manifest(const ble_ota_begin_req_t *req, manifest_expect_t *expect)
{
    memset(expect, 0, sizeof *expect);
    if (!req->manifest) return g_ota.release_key_mask ? BLE_OTA_ERR_MANIFEST_REQUIRED : BLE_OTA_OK;
    ble_ota_manifest_t m;
    if (!ble_ota_decode_manifest(req->manifest, req->manifest_len, &m) || m.key_id >= BLE_OTA_MAX_RELEASE_KEYS ||
        !(g_ota.release_key_mask & (1u << m.key_id)) || !signed_hash(&m, req->manifest, expect->hash))
        return BLE_OTA_ERR_MANIFEST_INVALID;
    if (memcmp(m.image_sha256, req->sha256, 32) != 0 || m.image_size != req->image_size ||
        (!all_zero(m.base_sha256, 32) && memcmp(m.base_sha256, req->base_sha256, 32) != 0) ||
        m.chip_id != g_ota.app.chip_id || !device_listed(&m))
        return BLE_OTA_ERR_MANIFEST_MISMATCH;
    if (m.release < g_ota.release_floor) return BLE_OTA_ERR_RELEASE_TOO_OLD;
    expect->present = true;
    expect->verify_pending = true;
    expect->key_id = m.key_id;
    memcpy(expect->signature, m.signature, sizeof expect->signature);
    expect->release = m.release;
    expect->secure_version = m.secure_version;
    memcpy(expect->project_name, m.project_name, sizeof expect->project_name);
    memcpy(expect->app_version, m.app_version, sizeof expect->app_version);
    return BLE_OTA_OK;
}
