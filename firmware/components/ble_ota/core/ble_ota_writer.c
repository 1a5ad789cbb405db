/*
 * Writer context: verifies manifest signatures (a staged one at once, BEGIN's own as the session's first
 * job), takes transfer bytes out of the ring, inflates, applies a delta patch, hashes the decoded image,
 * runs the early header checks, writes flash through the port and finishes END. Flash work never runs on
 * the BLE side.
 */
#include <string.h>

#include "ble_ota_internal.h"

#define P (g_ota.port)

/* Drop the writer's per-session state; esp_ota_abort when an update was begun (outside the lock). */
uint32_t ble_ota_erase_end(uint32_t image_size, uint32_t partition_size)
{
    const uint32_t sector = 4096u, block = 65536u, tail_sectors_for_block = 4u;
    uint32_t sector_end = (uint32_t)(((uint64_t)image_size + sector - 1u) / sector * sector);
    uint64_t block_end = ((uint64_t)image_size + block - 1u) / block * block;
    uint32_t tail = sector_end % block;
    if (tail != 0u && tail / sector >= tail_sectors_for_block && block_end <= partition_size) {
        return (uint32_t)block_end;
    }
    return sector_end;
}

static void writer_teardown(void)
{
    writer_t *w = &g_ota.w;
    if (w->sha) P->digest_finish(P->ctx, w->sha, NULL);
    if (w->inflate) P->inflate_free(P->ctx, w->inflate);
    if (w->ota_open) P->ota_abort(P->ctx);
    w->sha = NULL;
    w->inflate = NULL;
    w->ota_open = false;
    w->active = false;
}

/* Adopt what BEGIN reserved for this session (lock held). */
static uint8_t writer_setup(void)
{
    writer_t *w = &g_ota.w;
    session_t *s = &g_ota.s;
    w->active = true;
    w->decoded = 0;
    w->header_done = false;
    w->inflate_done = false;
    w->manifest = s->manifest;
    w->sha = s->reserved_sha;
    w->inflate = s->reserved_inflate;
    s->reserved_sha = s->reserved_inflate = NULL;
    bool inflated = w->req.encoding == BLE_OTA_ENCODING_DEFLATE || w->req.encoding == BLE_OTA_ENCODING_DELTA;
    if (!w->sha || (inflated && !w->inflate)) return BLE_OTA_ERR_INTERNAL;
    if (w->req.encoding == BLE_OTA_ENCODING_DELTA)
        ble_ota_patch_init(&w->patch, g_ota.app.running_image_len, w->req.image_size);
    return BLE_OTA_OK;
}

/* Decoded image bytes: hash, hold back the first 288 for the checks, then write. */
static uint8_t consume_decoded(const uint8_t *p, size_t len)
{
    writer_t *w = &g_ota.w;
    if ((uint64_t)w->decoded + len > w->req.image_size) return BLE_OTA_ERR_DECODE_FAILED;
    P->digest_update(P->ctx, w->sha, p, len);
    if (!w->header_done) {
        size_t take = BLE_OTA_HEADER_CHECK_LEN - w->decoded;
        if (take > len) take = len;
        memcpy(w->header + w->decoded, p, take);
        w->decoded += (uint32_t)take;
        p += take;
        len -= take;
        if (w->decoded == w->req.image_size && w->decoded < BLE_OTA_HEADER_CHECK_LEN)
            return BLE_OTA_ERR_NOT_APP_IMAGE; /* too short to hold the headers and an app descriptor */
        if (w->decoded < BLE_OTA_HEADER_CHECK_LEN) return BLE_OTA_OK;
        uint8_t err = ota_check_image_header(w->header, &g_ota.app, g_ota.cfg.allow_downgrade, &w->manifest);
        if (err) return err;
        /* Only now is the target partition touched. */
        if (P->ota_begin(P->ctx, w->req.image_size) != 0) return BLE_OTA_ERR_FLASH_ERROR;
        w->ota_open = true;
        w->header_done = true;
        if (P->ota_write(P->ctx, 0, w->header, BLE_OTA_HEADER_CHECK_LEN) != 0) return BLE_OTA_ERR_FLASH_ERROR;
    }
    if (len == 0) return BLE_OTA_OK;
    if (P->ota_write(P->ctx, w->decoded, p, len) != 0) return BLE_OTA_ERR_FLASH_ERROR;
    w->decoded += (uint32_t)len;
    return BLE_OTA_OK;
}

static int read_base(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    (void)ctx;
    return P->base_read(P->ctx, offset, dst, len);
}

/* Inflated patch bytes through the applier (base bytes read from the running image), its output on to the
 * hash, the header checks and flash. */
static uint8_t apply_patch(const uint8_t *in, size_t len)
{
    writer_t *w = &g_ota.w;
    for (;;) {
        size_t used = 0, made = 0;
        ble_ota_patch_result_t r = ble_ota_patch_feed(&w->patch, in, len, &used, w->patch_out, sizeof w->patch_out,
                                                      &made, read_base, NULL);
        if (made) {
            uint8_t err = consume_decoded(w->patch_out, made);
            if (err) return err;
        }
        if (r == BLE_OTA_PATCH_INVALID) { /* which rule the patch broke: for the device log */
            ota_log(ble_ota_patch_reason_str(ble_ota_patch_reason(&w->patch)));
            return BLE_OTA_ERR_PATCH_INVALID;
        }
        if (r == BLE_OTA_PATCH_READ_FAILED) return BLE_OTA_ERR_FLASH_ERROR;
        in += used;
        len -= used;
        if (r != BLE_OTA_PATCH_OK) return BLE_OTA_OK; /* MORE or DONE: every input byte taken */
    }
}

static uint8_t process_transfer(const uint8_t *in, size_t len)
{
    writer_t *w = &g_ota.w;
    if (w->req.encoding == BLE_OTA_ENCODING_RAW) return consume_decoded(in, len);
    bool delta = w->req.encoding == BLE_OTA_ENCODING_DELTA;
    for (;;) {
        if (w->inflate_done) return len ? BLE_OTA_ERR_DECODE_FAILED : BLE_OTA_OK; /* bytes after the stream end */
        size_t consumed = 0, out_len = 0;
        const uint8_t *out = NULL;
        int rc = P->inflate_step(P->ctx, w->inflate, in, len, &consumed, &out, &out_len);
        if (rc == BLE_OTA_INFLATE_ERROR || consumed > len) return BLE_OTA_ERR_DECODE_FAILED;
        if (out_len) {
            uint8_t err = delta ? apply_patch(out, out_len) : consume_decoded(out, out_len);
            if (err) return err;
        }
        in += consumed;
        len -= consumed;
        if (rc == BLE_OTA_INFLATE_DONE) w->inflate_done = true;
        else if (consumed == 0 && out_len == 0) return BLE_OTA_OK; /* needs more input */
    }
}

/* END, after every transfer byte was processed: §4.1 step 5. */
static uint8_t finish(void)
{
    writer_t *w = &g_ota.w;
    uint8_t digest[32];
    bool delta = w->req.encoding == BLE_OTA_ENCODING_DELTA;
    bool inflated = w->req.encoding == BLE_OTA_ENCODING_DEFLATE || delta;
    if (inflated && !w->inflate_done) {
        /* flush a stream whose final block has been fed but not yet reported */
        uint8_t err = process_transfer(NULL, 0);
        if (err) return err;
    }
    /* a patch that ends early (the image incomplete, or its last record's seek missing): SIZE_MISMATCH */
    if (w->decoded != w->req.image_size || (delta && !ble_ota_patch_finished(&w->patch)))
        return BLE_OTA_ERR_SIZE_MISMATCH;
    if (inflated && !w->inflate_done) return BLE_OTA_ERR_DECODE_FAILED;
    P->digest_finish(P->ctx, w->sha, digest);
    w->sha = NULL;
    if (memcmp(digest, w->req.sha256, 32) != 0) return BLE_OTA_ERR_HASH_MISMATCH;
    w->ota_open = false;
    int rc = P->ota_end(P->ctx);
    if (rc == BLE_OTA_END_FLASH_ERROR) return BLE_OTA_ERR_FLASH_ERROR;
    if (rc != BLE_OTA_END_OK) return BLE_OTA_ERR_VALIDATION_FAILED;
    /* The record names the target BEFORE the boot switch: a power cut between the two then reads as
     * "interrupted before boot switch", and a cut after it as the first boot of our image. */
    char label[17] = "";
    uint32_t psize = 0;
    P->ota_target(P->ctx, &psize, label); /* still the partition just written: boot changes at reboot */
    ota_lock();
    ota_record_t *r = &g_ota.rec;
    r->stage = REC_STAGE_INSTALLED;
    r->installed = false;
    r->boot_count = 0;
    memcpy(r->target_label, label, sizeof r->target_label);
    ota_record_set(BLE_OTA_ERR_INTERNAL, "switching the boot partition");
    ota_unlock();
    ota_persist_record();
    /* esp_ota_set_boot_partition validates the image before it touches otadata; ports whose ota_end closed
     * the handle without validating (nothing left to flush) report an invalid image here. */
    rc = P->ota_set_boot(P->ctx);
    if (rc == BLE_OTA_END_INVALID_IMAGE) return BLE_OTA_ERR_VALIDATION_FAILED;
    if (rc != 0) return BLE_OTA_ERR_SET_BOOT_FAILED;
    return BLE_OTA_OK;
}

static const char *error_message(uint8_t err)
{
    switch (err) {
    case BLE_OTA_ERR_NOT_APP_IMAGE: return "not an app image";
    case BLE_OTA_ERR_WRONG_CHIP: return "image is for another chip";
    case BLE_OTA_ERR_DOWNGRADE: return "secure_version lower than running";
    case BLE_OTA_ERR_DECODE_FAILED: return "deflate stream corrupt";
    case BLE_OTA_ERR_SIZE_MISMATCH: return "decoded size differs";
    case BLE_OTA_ERR_HASH_MISMATCH: return "SHA-256 mismatch";
    case BLE_OTA_ERR_VALIDATION_FAILED: return "image validation failed";
    case BLE_OTA_ERR_FLASH_ERROR: return "flash erase/write failed";
    case BLE_OTA_ERR_SET_BOOT_FAILED: return "set boot partition failed";
    case BLE_OTA_ERR_MANIFEST_MISMATCH: return "image differs from its manifest";
    case BLE_OTA_ERR_MANIFEST_INVALID: return "manifest signature invalid";
    case BLE_OTA_ERR_PATCH_INVALID: return "delta patch invalid";
    case BLE_OTA_OK: return "installed";
    default: return "internal error";
    }
}

/* A session of generation gen failed in the writer (lock held): tell the client, back to IDLE. */
static void fail_session(uint32_t gen, uint8_t err)
{
    session_t *s = &g_ota.s;
    if (!s->live || s->gen != gen) return;
    uint8_t out[2];
    if (s->state == BLE_OTA_SESSION_FINISHING) ota_emit(s->owner, out, ble_ota_encode_end_rsp(err, 0, out));
    else ota_emit(s->owner, out, ble_ota_encode_session_aborted(err, out));
    ota_session_end(err, error_message(err));
}

/* Take the next piece of the ring (lock held); returns its length and queues a DATA_ACK when due. */
static size_t take_from_ring(void)
{
    session_t *s = &g_ota.s;
    uint32_t window = g_ota.cfg.window;
    uint32_t n = s->expected - s->acked;
    uint32_t interval = g_ota.cfg.ack_interval;
    uint32_t to_next_ack = s->last_ack_sent + interval - s->acked; /* ACKs land on exact interval steps */
    if (n > BLE_OTA_WORK_LEN) n = BLE_OTA_WORK_LEN;
    if (n > to_next_ack) n = to_next_ack;
    uint32_t pos = s->acked % window;
    uint32_t first = n < window - pos ? n : window - pos;
    memcpy(g_ota.w.work, s->ring + pos, first);
    memcpy(g_ota.w.work + first, s->ring, n - first);
    s->acked += n;
    if (s->acked == s->req.transfer_size || s->acked - s->last_ack_sent >= interval) {
        uint8_t out[5];
        s->last_ack_sent = s->acked;
        if (s->state == BLE_OTA_SESSION_RECEIVING || s->state == BLE_OTA_SESSION_FINISHING)
            ota_emit(s->owner, out, ble_ota_encode_data_ack(s->acked, out));
    }
    return n;
}

bool ble_ota_core_writer_pending(void)
{
    if (!g_ota.initialised) return false;
    ota_lock();
    const session_t *s = &g_ota.s;
    const writer_t *w = &g_ota.w;
    bool pending = g_ota.rec_dirty || g_ota.reboot_due || g_ota.pending_cmd || g_ota.auto_confirm_due ||
                   (w->active && (!s->live || w->gen != s->gen)) || (s->live && !w->active) ||
                   (s->live && s->expected != s->acked) || (s->live && s->state == BLE_OTA_SESSION_FINISHING) ||
                   (s->live && w->active && w->gen == s->gen && (w->manifest.verify_pending || w->manifest.signature_invalid)) ||
                   (g_ota.staged.present && g_ota.staged.expect.verify_pending);
    ota_unlock();
    return pending;
}

static void emit_simple(ble_ota_conn_t conn, uint8_t op, uint8_t err)
{
    uint8_t out[2];
    ota_emit(conn, out, ble_ota_encode_simple_rsp(op, err, out));
}

/* esp_ota_mark_app_valid_cancel_rollback with the record around it: CONFIRMING before, CONFIRMED after.
 * conn: who asked (CONFIRM), or BLE_OTA_CONN_NONE for the auto policy. */
static void do_confirm(ble_ota_conn_t conn)
{
    ota_record_t *r = &g_ota.rec;
    ota_lock();
    if (r->valid) {
        r->stage = REC_STAGE_CONFIRMING;
        g_ota.rec_dirty = true;
    }
    ota_unlock();
    ota_persist_record();
    int rc = P->app_mark_valid(P->ctx);
    int state = P->app_state(P->ctx);
    ota_lock();
    g_ota.ota_state = (uint8_t)state;
    uint32_t release = 0;
    if (r->valid) {
        r->stage = rc == 0 ? REC_STAGE_DONE : REC_STAGE_BOOTED;
        if (rc == 0) r->flags |= BLE_OTA_LAST_CONFIRMED;
        if (rc == 0) release = r->release;
        g_ota.rec_dirty = true;
    }
    ota_unlock();
    ota_persist_record();
    if (release) ota_raise_release_floor(release);
    ota_lock();
    if (conn != BLE_OTA_CONN_NONE) emit_simple(conn, BLE_OTA_OP_CONFIRM, rc == 0 ? BLE_OTA_OK : BLE_OTA_ERR_INTERNAL);
    ota_unlock();
    ota_flush();
}

/* ROLLBACK: the other image must validate (esp_ota_check_rollback_is_possible); the record says so
 * before the response; the reboot follows after the reboot delay. */
static void do_rollback(ble_ota_conn_t conn)
{
    bool possible = P->app_rollback_possible(P->ctx);
    ota_lock();
    uint8_t err = BLE_OTA_OK;
    if (!possible) {
        err = BLE_OTA_ERR_NO_ROLLBACK_IMAGE;
    } else if (g_ota.rec.valid && g_ota.rec.result == BLE_OTA_OK) {
        ota_record_set(BLE_OTA_ERR_ROLLED_BACK, "rollback requested by the host");
    }
    ota_unlock();
    ota_persist_record();
    ota_lock();
    if (possible) {
        g_ota.reboot = REBOOT_ROLLBACK;
        g_ota.reboot_deadline = P->now_ms(P->ctx) + g_ota.cfg.reboot_delay_ms;
        ota_rearm_timer();
    }
    emit_simple(conn, BLE_OTA_OP_ROLLBACK, err);
    ota_unlock();
    ota_flush();
}

/* PROVISION accepted on the BLE side: store the session key (NVS device_key), then answer. */
static void do_provision(ble_ota_conn_t conn)
{
    uint8_t key[32];
    ota_lock();
    memcpy(key, g_ota.provision_key, sizeof key);
    ota_unlock();
    int rc = P->kv_set(P->ctx, "device_key", key, sizeof key);
    ota_lock();
    if (rc == 0) {
        memcpy(g_ota.key, key, sizeof key);
        g_ota.has_key = true;
    }
    memset(g_ota.provision_key, 0, sizeof g_ota.provision_key);
    emit_simple(conn, BLE_OTA_OP_PROVISION, rc == 0 ? BLE_OTA_OK : BLE_OTA_ERR_INTERNAL);
    ota_unlock();
    memset(key, 0, sizeof key);
    ota_flush();
}

/* The reboot delay passed: restart or roll back (the record was persisted first). */
static void do_reboot(reboot_action_t action)
{
    if (action == REBOOT_ROLLBACK) {
        if (P->app_rollback_and_reboot(P->ctx) != 0) P->restart(P->ctx);
    } else {
        P->restart(P->ctx);
    }
}

void ble_ota_core_writer_run(void)
{
    if (!g_ota.initialised) return;
    writer_t *w = &g_ota.w;
    session_t *s = &g_ota.s;
    for (;;) {
        ota_persist_record();
        ota_lock();
        if (g_ota.reboot_due) {
            reboot_action_t action = g_ota.reboot;
            g_ota.reboot_due = false;
            g_ota.reboot = REBOOT_NONE;
            bool dirty = g_ota.rec_dirty;
            ota_unlock();
            if (dirty) ota_persist_record();
            ota_flush();
            do_reboot(action);
            return; /* the device restarts (a host port reboots after this call) */
        }
        if (g_ota.pending_cmd) {
            uint8_t op = g_ota.pending_cmd;
            ble_ota_conn_t conn = g_ota.pending_conn;
            ota_unlock();
            if (op == BLE_OTA_OP_CONFIRM) do_confirm(conn);
            else if (op == BLE_OTA_OP_PROVISION) do_provision(conn);
            else do_rollback(conn);
            ota_lock();
            g_ota.pending_cmd = 0;
            g_ota.pending_conn = BLE_OTA_CONN_NONE;
            ota_unlock();
            continue;
        }
        if (g_ota.auto_confirm_due) {
            g_ota.auto_confirm_due = false;
            bool pending = g_ota.ota_state == BLE_OTA_IMG_PENDING_VERIFY && !g_ota.pending_cmd;
            if (pending) g_ota.pending_cmd = BLE_OTA_OP_CONFIRM; /* BEGIN / CONFIRM meanwhile: BUSY */
            ota_unlock();
            if (pending) {
                do_confirm(BLE_OTA_CONN_NONE);
                ota_lock();
                g_ota.pending_cmd = 0;
                ota_unlock();
            }
            continue;
        }
        if (w->active && (!s->live || w->gen != s->gen)) {
            ota_unlock();
            writer_teardown();
            continue;
        }
        if (s->live && !w->active) {
            w->gen = s->gen;
            w->req = s->req;
            uint8_t err = writer_setup();
            if (err) fail_session(w->gen, err);
            ota_unlock();
            ota_flush();
            continue;
        }
        if (s->live && w->active && w->gen == s->gen && (w->manifest.verify_pending || w->manifest.signature_invalid)) {
            /* The session's first job, before any ring byte can lead to a flash write: the ECDSA verify
             * BEGIN left out (the BLE side keeps filling the ring meanwhile; ACKs wait for the writer), or
             * the verdict of a staged manifest verified before BEGIN. */
            uint32_t gen = w->gen;
            manifest_expect_t expect = w->manifest;
            bool valid = !expect.signature_invalid;
            if (expect.verify_pending) {
                ota_unlock();
                valid = ota_verify_manifest(&expect);
                ota_lock();
            }
            w->manifest.verify_pending = false;
            w->manifest.signature_invalid = false;
            if (!valid) fail_session(gen, BLE_OTA_ERR_MANIFEST_INVALID);
            ota_unlock();
            ota_flush();
            continue;
        }
        if (s->live && s->expected != s->acked) {
            uint32_t gen = w->gen;
            size_t n = take_from_ring();
            ota_unlock();
            ota_flush();
            uint8_t err = process_transfer(w->work, n);
            if (err) {
                ota_lock();
                fail_session(gen, err);
                ota_unlock();
                ota_flush();
            }
            continue;
        }
        if (s->live && s->state == BLE_OTA_SESSION_FINISHING) {
            uint32_t gen = w->gen;
            ota_unlock();
            uint8_t err = finish();
            if (!err) { /* esp_ota_end closed the handle; drop the decoder outside the lock */
                if (w->sha) P->digest_finish(P->ctx, w->sha, NULL);
                if (w->inflate) P->inflate_free(P->ctx, w->inflate);
                w->sha = NULL;
                w->inflate = NULL;
            }
            ota_lock();
            if (err) {
                fail_session(gen, err);
            } else if (s->live && s->gen == gen) {
                uint8_t out[6];
                ble_ota_conn_t owner = s->owner;
                ota_session_release();
                s->live = false;
                s->state = BLE_OTA_SESSION_IDLE;
                s->owner = BLE_OTA_CONN_NONE;
                w->active = false;
                ota_record_t *r = &g_ota.rec;
                r->installed = true;
                r->flags |= BLE_OTA_LAST_INSTALLED;
                ota_record_set(BLE_OTA_OK, "installed, waiting for first boot");
                ota_unlock();
                ota_persist_record(); /* the END response goes out once the record says so */
                ota_lock();
                ota_emit(owner, out, ble_ota_encode_end_rsp(0, s->req.image_size, out));
                if (s->end_flags & BLE_OTA_END_FLAG_REBOOT) {
                    g_ota.reboot = REBOOT_RESTART;
                    g_ota.reboot_deadline = P->now_ms(P->ctx) + g_ota.cfg.reboot_delay_ms;
                }
                ota_rearm_timer();
            }
            ota_unlock();
            ota_flush();
            continue;
        }
        ota_unlock();
        /* A manifest staged with MANIFEST (§2.4): verified while the host goes on with CHALLENGE and BEGIN. */
        if (ota_verify_staged_manifest()) {
            ota_flush();
            continue;
        }
        ota_lock();
        /* Nothing queued: use the wait for more data to erase ahead, one unit at a time, so the ring is
         * looked at between two erases (the NimBLE host fills it meanwhile). */
        bool idle_erase = s->live && w->active && w->gen == s->gen && w->ota_open && s->state == BLE_OTA_SESSION_RECEIVING;
        ota_unlock();
        ota_flush();
        if (idle_erase && P->ota_erase_ahead && P->ota_erase_ahead(P->ctx) > 0) continue;
        if (!g_ota.rec_dirty) return;
    }
}
