/*
 * Signed update manifest checks (PROTOCOL.md §D, §12), before anything is erased. The signature is
 * ECDSA P-256 over SHA-256 of the manifest body, verified with a release public key (NVS rel_key0..3 or
 * built in) through the port; the gateway only relays manifests, so it cannot make the device accept an
 * image the release process did not sign. BEGIN (or MANIFEST, before BEGIN) does the cheap checks and
 * hashes the signed bytes; the verify (up to ~134 ms on chips without ECC hardware) runs in the writer —
 * a staged manifest's at once, while the host goes on with CHALLENGE and BEGIN; BEGIN's own as the
 * session's first job — so no response waits for it and the BLE host task is never held by it.
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

/* Structure and key_id (MANIFEST_INVALID); *m then describes raw and expect->hash holds the signed hash. */
static uint8_t check_structure(const uint8_t *raw, size_t len, ble_ota_manifest_t *m, manifest_expect_t *expect)
{
    memset(expect, 0, sizeof *expect);
    if (!ble_ota_decode_manifest(raw, len, m) || m->key_id >= BLE_OTA_MAX_RELEASE_KEYS ||
        !(g_ota.release_key_mask & (1u << m->key_id)) || !signed_hash(m, raw, expect->hash))
        return BLE_OTA_ERR_MANIFEST_INVALID;
    return BLE_OTA_OK;
}

/* What the manifest binds and BEGIN announces: image_sha256, image_size, a non-zero base_sha256. */
static bool binds_begin(const uint8_t sha[32], uint32_t size, const uint8_t base[32], const ble_ota_begin_req_t *req)
{
    return memcmp(sha, req->sha256, 32) == 0 && size == req->image_size &&
           (all_zero(base, 32) || memcmp(base, req->base_sha256, 32) == 0);
}

static void fill_expect(const ble_ota_manifest_t *m, manifest_expect_t *expect)
{
    expect->present = true;
    expect->verify_pending = true;
    expect->key_id = m->key_id;
    memcpy(expect->signature, m->signature, sizeof expect->signature);
    expect->release = m->release;
    expect->secure_version = m->secure_version;
    memcpy(expect->project_name, m->project_name, sizeof expect->project_name);
    memcpy(expect->app_version, m->app_version, sizeof expect->app_version);
}

uint8_t ota_check_manifest(ble_ota_conn_t conn, const ble_ota_begin_req_t *req, manifest_expect_t *expect)
{
    memset(expect, 0, sizeof *expect);
    if (!req->manifest) {
        const staged_manifest_t *st = &g_ota.staged;
        if (!st->present || st->conn != conn) return g_ota.release_key_mask ? BLE_OTA_ERR_MANIFEST_REQUIRED : BLE_OTA_OK;
        /* MANIFEST checked the rest; BEGIN's fields must still be what it signed */
        if (!binds_begin(st->image_sha256, st->image_size, st->base_sha256, req)) return BLE_OTA_ERR_MANIFEST_MISMATCH;
        if (st->expect.release < g_ota.release_floor) return BLE_OTA_ERR_RELEASE_TOO_OLD;
        *expect = st->expect;
        return BLE_OTA_OK;
    }
    ble_ota_manifest_t m;
    uint8_t err = check_structure(req->manifest, req->manifest_len, &m, expect);
    if (err) return err;
    if (!binds_begin(m.image_sha256, m.image_size, m.base_sha256, req) || m.chip_id != g_ota.app.chip_id || !device_listed(&m))
        return BLE_OTA_ERR_MANIFEST_MISMATCH;
    if (m.release < g_ota.release_floor) return BLE_OTA_ERR_RELEASE_TOO_OLD;
    fill_expect(&m, expect);
    return BLE_OTA_OK;
}

void ota_unstage_manifest(ble_ota_conn_t conn)
{
    if (conn == BLE_OTA_CONN_NONE || g_ota.staged.conn == conn) memset(&g_ota.staged, 0, sizeof g_ota.staged);
}

uint8_t ota_stage_manifest(ble_ota_conn_t conn, const uint8_t *raw, size_t len)
{
    const session_t *s = &g_ota.s;
    staged_manifest_t *st = &g_ota.staged;
    bool others = st->present && st->conn != conn;
    if (!others) ota_unstage_manifest(conn); /* a new MANIFEST replaces the connection's last one, refused or not */
    ble_ota_manifest_t m;
    manifest_expect_t expect;
    uint8_t err = check_structure(raw, len, &m, &expect);
    if (err) return err;
    if (m.chip_id != g_ota.app.chip_id || !device_listed(&m)) return BLE_OTA_ERR_MANIFEST_MISMATCH;
    if (m.release < g_ota.release_floor) return BLE_OTA_ERR_RELEASE_TOO_OLD;
    /* The verify would hold the writer: not while another connection's session needs it, nor while this
     * connection's session is finishing; one slot: another connection's manifest waits for its BEGIN. */
    bool active = s->live && s->state != BLE_OTA_SESSION_SUSPENDED;
    if (active && s->owner == conn && s->state == BLE_OTA_SESSION_FINISHING) return BLE_OTA_ERR_INVALID_STATE;
    if ((active && s->owner != conn) || others) return BLE_OTA_ERR_BUSY;
    fill_expect(&m, &expect);
    expect.verify_id = ++g_ota.manifest_counter;
    if (expect.verify_id == 0) expect.verify_id = ++g_ota.manifest_counter; /* 0 means BEGIN's own */
    st->present = true;
    st->conn = conn;
    st->image_size = m.image_size;
    memcpy(st->image_sha256, m.image_sha256, 32);
    memcpy(st->base_sha256, m.base_sha256, 32);
    st->expect = expect;
    P->writer_kick(P->ctx); /* the writer is idle before BEGIN: the verify starts now */
    return BLE_OTA_OK;
}

/* Staging (revision 2.3): sequential fragments only, so the buffer never holds a hole; the first
 * fragment that breaks the order or the size drops the bytes and is the only one answered. */
bool ota_staging_write(ble_ota_conn_t conn, uint32_t manifest_offset, const uint8_t *p, size_t len, uint32_t *nak_offset)
{
    manifest_staging_t *st = &g_ota.staging;
    if (manifest_offset == 0) {
        /* (re)starts staging: the buffer is this connection's now, another's bytes are dropped */
        st->owned = true;
        st->owner = conn;
        st->len = 0;
        st->broken = false;
    } else if (!st->owned || st->owner != conn || st->broken) {
        return false; /* not this connection's buffer, or broken already (one NAK per break) */
    }
    if (manifest_offset != st->len || len > sizeof st->bytes - st->len) {
        *nak_offset = BLE_OTA_STAGING_OFFSET_FLAG | st->len;
        st->len = 0;
        st->broken = true;
        return true;
    }
    memcpy(st->bytes + st->len, p, len);
    st->len = (uint16_t)(st->len + len);
    return false;
}

const uint8_t *ota_staging_take(ble_ota_conn_t conn, size_t *len)
{
    manifest_staging_t *st = &g_ota.staging;
    *len = 0;
    if (!st->owned || st->owner != conn) return NULL;
    bool usable = !st->broken && st->len > 0;
    *len = usable ? st->len : 0;
    ota_staging_drop(conn);
    return usable ? st->bytes : NULL;
}

void ota_staging_drop(ble_ota_conn_t conn)
{
    manifest_staging_t *st = &g_ota.staging;
    if (!st->owned || st->owner != conn) return;
    st->owned = false;
    st->broken = false;
    st->len = 0; /* the bytes stay until the next offset 0 overwrites them: ota_staging_take returns them */
}

/* The verdict of verify id for a copy of the expectation that is still waiting for it. */
static void settle_verdict(manifest_expect_t *e, uint32_t id, bool valid)
{
    if (!e->present || e->verify_id != id || !e->verify_pending) return;
    e->verify_pending = false;
    e->signature_invalid = !valid;
}

bool ota_verify_staged_manifest(void)
{
    ota_lock();
    bool due = g_ota.staged.present && g_ota.staged.expect.verify_pending;
    manifest_expect_t expect = g_ota.staged.expect;
    ota_unlock();
    if (!due) return false;
    bool valid = ota_verify_manifest(&expect);
    ota_lock();
    /* BEGIN may have taken it over meanwhile (session and writer copies). */
    settle_verdict(&g_ota.staged.expect, expect.verify_id, valid);
    settle_verdict(&g_ota.s.manifest, expect.verify_id, valid);
    settle_verdict(&g_ota.w.manifest, expect.verify_id, valid);
    ota_unlock();
    return true;
}
