/* BLE side of the core: connections, Control commands (PROTOCOL.md §2, §4, §7) and Data (§3). */
#include <stdlib.h>
#include <string.h>

#include "ble_ota_internal.h"

#define P (g_ota.port)

static const char BEGIN_LABEL[] = "BLEOTA2-BEGIN";
static const char CMD_LABEL[] = "BLEOTA2-CMD";

void ble_ota_core_on_connect(ble_ota_conn_t conn, uint16_t mtu)
{
    ble_ota_core_on_ble_ready(); /* a central reached us: the BLE stack works */
    ota_lock();
    if (!ota_conn_find(conn)) {
        for (int i = 0; i < BLE_OTA_MAX_CONNECTIONS; i++) {
            if (!g_ota.conns[i].used) {
                memset(&g_ota.conns[i], 0, sizeof g_ota.conns[i]);
                g_ota.conns[i].used = true;
                g_ota.conns[i].conn = conn;
                g_ota.conns[i].mtu = mtu;
                g_ota.conns[i].rx_octets = BLE_OTA_LL_DEFAULT_OCTETS;
                break;
            }
        }
    }
    ota_unlock();
}

void ble_ota_core_on_mtu(ble_ota_conn_t conn, uint16_t mtu)
{
    ota_lock();
    conn_slot_t *c = ota_conn_find(conn);
    if (c) c->mtu = mtu;
    ota_unlock();
}

void ble_ota_core_on_data_len(ble_ota_conn_t conn, uint16_t rx_octets)
{
    ota_lock();
    conn_slot_t *c = ota_conn_find(conn);
    if (conn == BLE_OTA_CONN_NONE) { /* "the connection": only when there is exactly one */
        int used = 0;
        for (int i = 0; i < BLE_OTA_MAX_CONNECTIONS; i++)
            if (g_ota.conns[i].used) {
                used++;
                c = &g_ota.conns[i];
            }
        if (used != 1) c = NULL;
    }
    if (c && rx_octets >= BLE_OTA_LL_DEFAULT_OCTETS) c->rx_octets = rx_octets;
    ota_unlock();
}

void ble_ota_core_on_disconnect(ble_ota_conn_t conn)
{
    ota_lock();
    conn_slot_t *c = ota_conn_find(conn);
    if (c) memset(c, 0, sizeof *c);
    ota_unstage_manifest(conn); /* a manifest staged with MANIFEST belongs to its link */
    ota_staging_drop(conn);     /* and so do bytes staged on Data for it */
    session_t *s = &g_ota.s;
    if (s->live && s->owner == conn) {
        s->owner = BLE_OTA_CONN_NONE;
        if (s->state == BLE_OTA_SESSION_RECEIVING) {
            if (g_ota.cfg.resume_timeout_ms == 0) {
                ota_session_end(BLE_OTA_ERR_SESSION_TIMEOUT, "link lost, resume disabled");
            } else {
                s->state = BLE_OTA_SESSION_SUSPENDED;
                s->resume_deadline = P->now_ms(P->ctx) + g_ota.cfg.resume_timeout_ms;
                ota_rearm_timer();
            }
        }
    }
    ota_unlock();
    ota_flush();
}

/* Constant-time comparison of tags. */
static bool tag_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;
    for (int i = 0; i < BLE_OTA_TAG_LEN; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* §7 and secure by default (PROTOCOL.md §E): checks the tag of a BEGIN (mac_data = begin[1..76]) or of a
 * tagged command (mac_data = &op). With a session key every one needs a valid tag. Without one: nobody can
 * prove anything, so tagged commands are NOT_PROVISIONED and BEGIN is allowed only when a manifest will
 * prove the image (release keys) — unless the build opted out (allow_unauthenticated: tags ignored).
 * The nonce is spent whatever the outcome. Lock held. */
static uint8_t check_tag(conn_slot_t *c, bool is_begin, const uint8_t *mac_data, size_t mac_len, const uint8_t *tag)
{
    if (!g_ota.has_key) {
        if (!g_ota.cfg.allow_unauthenticated && !(is_begin && g_ota.release_key_mask)) return BLE_OTA_ERR_NOT_PROVISIONED;
        if (is_begin && g_ota.cfg.require_fleet_key) return BLE_OTA_ERR_AUTH_FAILED;
        return BLE_OTA_OK;
    }
    if (!c || !c->nonce_valid) return BLE_OTA_ERR_AUTH_REQUIRED;
    c->nonce_valid = false;
    uint8_t mac[32];
    void *h = P->digest_start(P->ctx, g_ota.key, sizeof g_ota.key);
    if (!h) return BLE_OTA_ERR_INTERNAL;
    const char *label = is_begin ? BEGIN_LABEL : CMD_LABEL;
    P->digest_update(P->ctx, h, (const uint8_t *)label, strlen(label));
    P->digest_update(P->ctx, h, c->nonce, BLE_OTA_NONCE_LEN);
    P->digest_update(P->ctx, h, mac_data, mac_len);
    P->digest_finish(P->ctx, h, mac);
    return tag_equal(mac, tag) ? BLE_OTA_OK : BLE_OTA_ERR_AUTH_FAILED;
}

/* PROTOCOL.md §2.2: a Data write is an L2CAP frame of 4 (L2CAP) + 3 (ATT) + 4 (offset) + chunk bytes. The
 * chunk is the largest that is <= every limit (client, device maximum, MTU - 7) and makes that frame fill
 * whole LL PDUs of the connection's data length: a frame one byte past a PDU boundary costs a whole
 * extra PDU exchange on air. */
static uint16_t negotiated_chunk(const conn_slot_t *c, uint16_t client_chunk)
{
    uint32_t limit = client_chunk < g_ota.cfg.max_chunk ? client_chunk : g_ota.cfg.max_chunk;
    uint32_t mtu = c ? c->mtu : 23;
    uint32_t dl = c ? c->rx_octets : BLE_OTA_LL_DEFAULT_OCTETS;
    uint32_t by_mtu = mtu > 7 ? mtu - 3 - BLE_OTA_DATA_HEADER_LEN : 1;
    if (by_mtu < limit) limit = by_mtu;
    if (limit + BLE_OTA_DATA_FRAME_OVERHEAD <= dl) return (uint16_t)limit;
    uint32_t pdus = (limit + BLE_OTA_DATA_FRAME_OVERHEAD) / dl;
    return (uint16_t)(pdus * dl - BLE_OTA_DATA_FRAME_OVERHEAD);
}

static void emit_simple(ble_ota_conn_t conn, uint8_t op, uint8_t err)
{
    uint8_t out[2];
    ota_emit(conn, out, ble_ota_encode_simple_rsp(op, err, out));
}

static bool same_image(const ble_ota_begin_req_t *a, const ble_ota_begin_req_t *b)
{
    return a->image_size == b->image_size && a->transfer_size == b->transfer_size && a->encoding == b->encoding &&
           memcmp(a->sha256, b->sha256, 32) == 0 && memcmp(a->base_sha256, b->base_sha256, 32) == 0;
}

static bool is_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

/* BEGIN checks, all before anything is erased (§4.1 step 3), in this order: parameters, encoding, tag,
 * manifest (PROTOCOL.md §D), partition size, state (INVALID_STATE / BUSY). The TypeScript device model
 * uses the same order. */
static uint8_t begin_checks(conn_slot_t *c, const uint8_t *data, const ble_ota_begin_req_t *req, manifest_expect_t *man)
{
    const session_t *s = &g_ota.s;
    const uint8_t known_flags = BLE_OTA_BEGIN_FLAG_RESUME | BLE_OTA_BEGIN_FLAG_MANIFEST;
    if (req->image_size == 0 || req->chunk_size == 0 || (req->flags & (uint8_t)~known_flags))
        return BLE_OTA_ERR_BAD_PARAMETER;
    if (req->encoding != BLE_OTA_ENCODING_DELTA && !is_zero(req->base_sha256, 32)) return BLE_OTA_ERR_BAD_PARAMETER;
    bool known_encoding = req->encoding == BLE_OTA_ENCODING_RAW ||
                          (req->encoding == BLE_OTA_ENCODING_DEFLATE && g_ota.cfg.deflate) ||
                          (req->encoding == BLE_OTA_ENCODING_DELTA && ota_delta_supported());
    if (!known_encoding) return BLE_OTA_ERR_BAD_ENCODING;
    if (req->transfer_size == 0 || (req->encoding == BLE_OTA_ENCODING_RAW && req->transfer_size != req->image_size))
        return BLE_OTA_ERR_BAD_ENCODING;
    uint8_t err = check_tag(c, true, data + BLE_OTA_BEGIN_MAC_OFFSET, BLE_OTA_BEGIN_MAC_LEN, req->tag);
    if (err) return err;
    err = ota_check_manifest(c->conn, req, man);
    if (err) return err;
    /* a patch applies to exactly one image: the one running (PROTOCOL.md §13.3) */
    if (req->encoding == BLE_OTA_ENCODING_DELTA && memcmp(req->base_sha256, g_ota.app.running_sha256, 32) != 0)
        return BLE_OTA_ERR_BASE_MISMATCH;
    uint32_t partition_size = 0;
    char label[17];
    if (P->ota_target(P->ctx, &partition_size, label) != 0) return BLE_OTA_ERR_INTERNAL;
    if (req->image_size > partition_size) return BLE_OTA_ERR_IMAGE_TOO_LARGE;
    if (g_ota.reboot != REBOOT_NONE) return BLE_OTA_ERR_INVALID_STATE;
    /* esp_ota_begin refuses while the running app is unconfirmed (ESP_ERR_OTA_ROLLBACK_INVALID_STATE):
     * say so now instead of failing at the first flash write (§4.4: confirm or roll back first). */
    if (g_ota.ota_state == BLE_OTA_IMG_PENDING_VERIFY) return BLE_OTA_ERR_INVALID_STATE;
    if (s->live && s->state == BLE_OTA_SESSION_FINISHING)
        return s->owner == c->conn ? BLE_OTA_ERR_INVALID_STATE : BLE_OTA_ERR_BUSY;
    if (s->live && s->state == BLE_OTA_SESSION_RECEIVING && s->owner != c->conn) return BLE_OTA_ERR_BUSY;
    if (g_ota.pending_cmd) return BLE_OTA_ERR_BUSY; /* a CONFIRM / ROLLBACK is being carried out */
    return BLE_OTA_OK;
}

/* Reserve the buffers a new session needs (ring, SHA-256, inflater) before BEGIN is accepted, so that a
 * device short of memory refuses with NO_MEMORY instead of failing after the erase started. A kept
 * session's ring is reused. Lock held. */
static bool reserve_session(const ble_ota_begin_req_t *req, uint8_t **ring, void **sha, void **inflate)
{
    *ring = g_ota.s.ring ? g_ota.s.ring : malloc(g_ota.cfg.window);
    *sha = P->digest_start(P->ctx, NULL, 0);
    bool inflated = req->encoding == BLE_OTA_ENCODING_DEFLATE || req->encoding == BLE_OTA_ENCODING_DELTA;
    *inflate = inflated ? P->inflate_start(P->ctx) : NULL;
    if (*ring && *sha && (*inflate || !inflated)) return true;
    if (*ring && *ring != g_ota.s.ring) free(*ring);
    if (*sha) P->digest_finish(P->ctx, *sha, NULL);
    if (*inflate) P->inflate_free(P->ctx, *inflate);
    return false;
}

static void handle_begin(conn_slot_t *c, const uint8_t *data, size_t len)
{
    ble_ota_begin_req_t req;
    uint8_t out[16];
    ota_staging_drop(c->conn); /* BEGIN ends this connection's staging on Data, accepted or not */
    if (!ble_ota_decode_begin(data, len, &req)) {
        emit_simple(c->conn, BLE_OTA_OP_BEGIN, BLE_OTA_ERR_BAD_LENGTH);
        return;
    }
    manifest_expect_t man;
    uint8_t err = begin_checks(c, data, &req, &man);
    req.manifest = NULL; /* points into the write buffer: not kept */
    req.manifest_len = 0;
    if (err) {
        emit_simple(c->conn, BLE_OTA_OP_BEGIN, err);
        return;
    }
    session_t *s = &g_ota.s;
    uint16_t chunk = negotiated_chunk(c, req.chunk_size);
    if (s->live && (req.flags & BLE_OTA_BEGIN_FLAG_RESUME) && same_image(&s->req, &req)) {
        /* §4.2 resume: bytes queued but not yet taken by the writer are dropped; the client resends them. */
        s->state = BLE_OTA_SESSION_RECEIVING;
        s->owner = c->conn;
        s->chunk = chunk;
        s->expected = s->acked;
        s->last_ack_sent = s->acked;
        s->dup_nak_sent = s->gap_nak_sent = false;
        ota_unstage_manifest(c->conn); /* the kept session keeps the manifest it verified */
        ota_rearm_timer();
        ota_emit(c->conn, out,
                 ble_ota_encode_begin_rsp(0, chunk, g_ota.cfg.window, g_ota.cfg.ack_interval, s->acked, out));
        return;
    }
    uint8_t *ring;
    void *sha, *inflate;
    if (!reserve_session(&req, &ring, &sha, &inflate)) {
        emit_simple(c->conn, BLE_OTA_OP_BEGIN, BLE_OTA_ERR_NO_MEMORY);
        return;
    }
    /* BEGIN took the connection's staged manifest over (or carried its own): the slot is free again. A
     * verify of it still running in the writer reaches the session's copy (ota_verify_staged_manifest). */
    ota_unstage_manifest(c->conn);
    s->ring = NULL; /* kept for the new session, not freed with the old one */
    if (s->live) ota_session_end(BLE_OTA_ERR_ABORTED, "replaced by a new session");
    ota_session_release();
    s->ring = ring;
    s->reserved_sha = sha;
    s->reserved_inflate = inflate;
    memset(s->ring, 0, g_ota.cfg.window);
    s->live = true;
    s->state = BLE_OTA_SESSION_RECEIVING;
    s->owner = c->conn;
    s->gen = ++g_ota.gen_counter;
    s->req = req;
    s->manifest = man;
    s->chunk = chunk;
    s->expected = s->acked = s->last_ack_sent = 0;
    s->dup_nak_sent = s->gap_nak_sent = false;
    s->end_flags = 0;
    ota_record_t *r = &g_ota.rec;
    memset(r, 0, sizeof *r);
    r->stage = REC_STAGE_IN_PROGRESS;
    memcpy(r->sha256, req.sha256, 32);
    r->release = man.release;
    ota_record_set(BLE_OTA_ERR_INTERNAL, "in progress");
    ota_rearm_timer();
    P->writer_kick(P->ctx);
    ota_emit(c->conn, out, ble_ota_encode_begin_rsp(0, chunk, g_ota.cfg.window, g_ota.cfg.ack_interval, 0, out));
}

static void handle_end(conn_slot_t *c, const uint8_t *data, size_t len)
{
    session_t *s = &g_ota.s;
    uint8_t err = BLE_OTA_OK;
    if (len != BLE_OTA_END_LEN) err = BLE_OTA_ERR_BAD_LENGTH;
    else if (!s->live || s->owner != c->conn) err = BLE_OTA_ERR_NO_SESSION; /* none, suspended, or another's */
    else if (data[1] & (uint8_t)~BLE_OTA_END_FLAG_REBOOT) err = BLE_OTA_ERR_BAD_PARAMETER;
    else if (s->state != BLE_OTA_SESSION_RECEIVING || s->expected != s->req.transfer_size) err = BLE_OTA_ERR_INVALID_STATE;
    if (err) {
        emit_simple(c->conn, BLE_OTA_OP_END, err);
        return;
    }
    /* The writer finishes (drains the ring, checks size + SHA-256, esp_ota_end, set boot) and answers. */
    s->state = BLE_OTA_SESSION_FINISHING;
    s->end_flags = data[1];
    P->writer_kick(P->ctx);
}

static void schedule_reboot(reboot_action_t action)
{
    g_ota.reboot = action;
    g_ota.reboot_deadline = P->now_ms(P->ctx) + g_ota.cfg.reboot_delay_ms;
    ota_rearm_timer();
}

/* ABORT / CONFIRM / ROLLBACK / REBOOT. Lock held on entry and exit; released around slow port calls. */
static void handle_tagged(conn_slot_t *c, const uint8_t *data, size_t len)
{
    uint8_t op = data[0];
    ble_ota_conn_t conn = c->conn;
    if (len != BLE_OTA_TAGGED_CMD_LEN) {
        emit_simple(conn, op, BLE_OTA_ERR_BAD_LENGTH);
        return;
    }
    uint8_t err = check_tag(c, false, &op, 1, data + 1);
    if (err) {
        emit_simple(conn, op, err);
        return;
    }
    session_t *s = &g_ota.s;
    switch (op) {
    case BLE_OTA_OP_ABORT:
        if (s->live && s->state == BLE_OTA_SESSION_FINISHING) err = BLE_OTA_ERR_INVALID_STATE;
        else if (s->live && s->state == BLE_OTA_SESSION_RECEIVING && s->owner != conn) err = BLE_OTA_ERR_BUSY;
        else if (s->live) ota_session_end(BLE_OTA_ERR_ABORTED, "aborted by the client");
        break;
    case BLE_OTA_OP_CONFIRM:
    case BLE_OTA_OP_ROLLBACK:
        if (g_ota.ota_state != BLE_OTA_IMG_PENDING_VERIFY) {
            err = BLE_OTA_ERR_NOT_PENDING;
            break;
        }
        if (g_ota.pending_cmd || g_ota.reboot != REBOOT_NONE) {
            err = BLE_OTA_ERR_BUSY;
            break;
        }
        /* esp_ota_mark_app_valid_cancel_rollback erases and writes otadata (and burns the secure version
         * eFuse with anti-rollback); esp_ota_check_rollback_is_possible validates the whole other image
         * (esp_ota_ops.c:686-740). Neither may stall the BLE host task: the writer does it and answers. */
        g_ota.pending_cmd = op;
        g_ota.pending_conn = conn;
        P->writer_kick(P->ctx);
        return;
    case BLE_OTA_OP_REBOOT:
        schedule_reboot(REBOOT_RESTART);
        break;
    default:
        break;
    }
    emit_simple(conn, op, err);
}

/* PROVISION (PROTOCOL.md §E): physical presence at boot is the proof, so no tag. The writer stores the
 * key (an NVS write must not run in the BLE host task) and answers. Lock held. */
static void handle_provision(conn_slot_t *c, const uint8_t *data, size_t len)
{
    uint8_t err = BLE_OTA_OK;
    if (len != BLE_OTA_PROVISION_LEN) err = BLE_OTA_ERR_BAD_LENGTH;
    else if (!ota_provision_window_open()) err = BLE_OTA_ERR_INVALID_STATE;
    else if (g_ota.pending_cmd) err = BLE_OTA_ERR_BUSY; /* one command carried out by the writer at a time */
    if (err) {
        emit_simple(c->conn, BLE_OTA_OP_PROVISION, err);
        return;
    }
    memcpy(g_ota.provision_key, data + 1, sizeof g_ota.provision_key);
    g_ota.pending_cmd = BLE_OTA_OP_PROVISION;
    g_ota.pending_conn = c->conn;
    P->writer_kick(P->ctx);
}

/* MANIFEST (PROTOCOL.md §2.4): the signed manifest alone, before BEGIN, untagged (it proves itself). The
 * checks that need no BEGIN answer at once; the ECDSA verify is queued on the writer, so the response goes
 * out when this callback returns (NimBLE answers the write then too) and the verify overlaps the host's
 * CHALLENGE and BEGIN. Lock held. */
static void handle_manifest(conn_slot_t *c, const uint8_t *data, size_t len)
{
    const uint8_t *raw = NULL;
    uint16_t raw_len = 0;
    uint8_t err;
    /* 0x09 alone (revision 2.3) commits the bytes this connection staged on Data; they are consumed
     * whatever the result, and then checked exactly as 0x09 || manifest, the length rule included */
    size_t staged_len = 0;
    const uint8_t *staged = len == BLE_OTA_MANIFEST_COMMIT_LEN ? ota_staging_take(c->conn, &staged_len) : NULL;
    ota_staging_drop(c->conn);
    bool whole = staged ? ble_ota_check_manifest_len(staged, staged_len) : ble_ota_decode_manifest_cmd(data, len, &raw, &raw_len);
    if (staged) {
        raw = staged;
        raw_len = (uint16_t)staged_len;
    }
    if (!whole) {
        ota_unstage_manifest(c->conn);
        err = BLE_OTA_ERR_BAD_LENGTH;
    } else {
        err = ota_stage_manifest(c->conn, raw, raw_len);
    }
    emit_simple(c->conn, BLE_OTA_OP_MANIFEST, err);
}

int ble_ota_core_on_control_write(ble_ota_conn_t conn, const uint8_t *data, size_t len)
{
    if (len == 0 || len > BLE_OTA_CONTROL_MAX_LEN) return BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN;
    /* The app may confirm itself (esp_ota_mark_app_valid_cancel_rollback): read the state fresh where it
     * decides (BEGIN: INVALID_STATE while pending; CONFIRM / ROLLBACK: NOT_PENDING). */
    bool state_matters = data[0] == BLE_OTA_OP_BEGIN || data[0] == BLE_OTA_OP_CONFIRM || data[0] == BLE_OTA_OP_ROLLBACK;
    int state = state_matters ? P->app_state(P->ctx) : -1;
    ota_lock();
    if (state >= 0 && !g_ota.pending_cmd) g_ota.ota_state = (uint8_t)state;
    conn_slot_t *c = ota_conn_find(conn);
    if (!c) {
        /* more connections than slots: nothing can be authenticated or tracked for it */
        emit_simple(conn, data[0], BLE_OTA_ERR_BUSY);
        ota_unlock();
        ota_flush();
        return 0;
    }
    switch (data[0]) {
    case BLE_OTA_OP_CHALLENGE: {
        uint8_t out[BLE_OTA_CHALLENGE_RSP_LEN];
        if (len != 1) {
            emit_simple(conn, data[0], BLE_OTA_ERR_BAD_LENGTH);
            break;
        }
        P->random(P->ctx, c->nonce, sizeof c->nonce);
        c->nonce_valid = true;
        ota_emit(conn, out, ble_ota_encode_challenge_rsp(0, c->nonce, ble_ota_core_caps(), out));
        break;
    }
    case BLE_OTA_OP_BEGIN: handle_begin(c, data, len); break;
    case BLE_OTA_OP_END: handle_end(c, data, len); break;
    case BLE_OTA_OP_ABORT:
    case BLE_OTA_OP_CONFIRM:
    case BLE_OTA_OP_ROLLBACK:
    case BLE_OTA_OP_REBOOT: handle_tagged(c, data, len); break;
    case BLE_OTA_OP_PROVISION: handle_provision(c, data, len); break;
    case BLE_OTA_OP_MANIFEST: handle_manifest(c, data, len); break;
    default: {
        uint8_t out[3];
        ota_emit(conn, out, ble_ota_encode_unknown_rsp(data[0], out));
        break;
    }
    }
    ota_unlock();
    ota_flush();
    return 0;
}

static void emit_nak(ble_ota_conn_t conn, uint8_t err, uint32_t expected)
{
    uint8_t out[6];
    ota_emit(conn, out, ble_ota_encode_data_nak(err, expected, out));
}

/* Copy an accepted payload into the ring at its transfer offset (offset-addressed ring). */
static void ring_put(uint32_t offset, const uint8_t *p, size_t len)
{
    uint32_t window = g_ota.cfg.window;
    uint32_t pos = offset % window;
    size_t first = len < window - pos ? len : window - pos;
    memcpy(g_ota.s.ring + pos, p, first);
    memcpy(g_ota.s.ring, p + first, len - first);
}

/* Checks in the PROTOCOL.md §3 order: EMPTY_WRITE, staging (offset bit31), NO_SESSION, OVERSIZED, DUPLICATE, GAP, OUT_OF_WINDOW. */
void ble_ota_core_on_data_write(ble_ota_conn_t conn, const uint8_t *data, size_t len)
{
    ota_lock();
    session_t *s = &g_ota.s;
    /* still "own" while FINISHING: every transfer byte is in, so late writes get DUPLICATE / OUT_OF_WINDOW */
    bool own = s->live && s->state != BLE_OTA_SESSION_SUSPENDED && s->owner == conn;
    uint32_t nak_offset;
    if (len <= BLE_OTA_DATA_HEADER_LEN) {
        emit_nak(conn, BLE_OTA_ERR_EMPTY_WRITE, own ? s->expected : 0);
    } else if (ble_ota_get_u32(data) & BLE_OTA_STAGING_OFFSET_FLAG) {
        /* manifest staging (revision 2.3): before the session rules, no transfer offset has bit31 */
        uint32_t manifest_offset = ble_ota_get_u32(data) & ~BLE_OTA_STAGING_OFFSET_FLAG;
        if (ota_staging_write(conn, manifest_offset, data + BLE_OTA_DATA_HEADER_LEN, len - BLE_OTA_DATA_HEADER_LEN, &nak_offset))
            emit_nak(conn, BLE_OTA_ERR_BAD_LENGTH, nak_offset);
    } else if (!own) {
        emit_nak(conn, BLE_OTA_ERR_NO_SESSION, 0);
    } else {
        uint32_t offset = ble_ota_get_u32(data);
        size_t payload = len - BLE_OTA_DATA_HEADER_LEN;
        uint64_t end = (uint64_t)offset + payload;
        if (payload > s->chunk) {
            emit_nak(conn, BLE_OTA_ERR_OVERSIZED, s->expected);
        } else if (offset < s->expected) {
            if (!s->dup_nak_sent) emit_nak(conn, BLE_OTA_ERR_DUPLICATE, s->expected);
            s->dup_nak_sent = true;
        } else if (offset > s->expected) {
            /* a chunk past a gap is dropped whether or not it also lies past the window */
            if (!s->gap_nak_sent) emit_nak(conn, BLE_OTA_ERR_GAP, s->expected);
            s->gap_nak_sent = true;
        } else if (end > s->req.transfer_size || end > (uint64_t)s->acked + g_ota.cfg.window) {
            emit_nak(conn, BLE_OTA_ERR_OUT_OF_WINDOW, s->expected);
        } else {
            ring_put(offset, data + BLE_OTA_DATA_HEADER_LEN, payload);
            s->expected += (uint32_t)payload;
            s->dup_nak_sent = s->gap_nak_sent = false;
            P->writer_kick(P->ctx);
        }
    }
    ota_unlock();
    ota_flush();
}
