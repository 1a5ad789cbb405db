/* Core lifecycle, first-boot bookkeeping, Status / advertisement, notification outbox and timers. */
#include <stdlib.h>
#include <string.h>

#include "ble_ota_internal.h"

ota_core_t g_ota;

static ble_ota_diagnostics_fn s_diag_fn;
static void *s_diag_arg;

#define P (g_ota.port)

void ble_ota_config_default(ble_ota_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_chunk = 491; /* 2 x 251 - 11: two full LL PDUs at ATT MTU 517 (PROTOCOL.md §2.2) */
    cfg->window = 16384;
    cfg->ack_interval = 4096;
    cfg->resume_timeout_ms = 60000;
    cfg->reboot_delay_ms = 300;
    cfg->policy = BLE_OTA_POLICY_AUTO;
    cfg->deflate = true;
}

void ble_ota_core_set_diagnostics(ble_ota_diagnostics_fn fn, void *arg)
{
    s_diag_fn = fn;
    s_diag_arg = arg;
}

const char *ble_ota_chip_name(uint16_t chip_id)
{
    switch (chip_id) {
    case 0: return "esp32";
    case 2: return "esp32s2";
    case 5: return "esp32c3";
    case 9: return "esp32s3";
    case 12: return "esp32c2";
    case 13: return "esp32c6";
    case 16: return "esp32h2";
    case 18: return "esp32p4";
    default: return "unknown";
    }
}

void ota_lock(void)
{
    if (P->lock) P->lock(P->ctx);
}

void ota_unlock(void)
{
    if (P->unlock) P->unlock(P->ctx);
}

void ota_log(const char *msg)
{
    if (P->log) P->log(P->ctx, msg);
}

/* Bounded copy that always terminates (truncation is intended: fixed protocol fields). */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool deadline_passed(uint32_t now, uint32_t deadline) { return (int32_t)(now - deadline) >= 0; }

conn_slot_t *ota_conn_find(ble_ota_conn_t conn)
{
    for (int i = 0; i < BLE_OTA_MAX_CONNECTIONS; i++)
        if (g_ota.conns[i].used && g_ota.conns[i].conn == conn) return &g_ota.conns[i];
    return NULL;
}

void ota_emit(ble_ota_conn_t conn, const uint8_t *data, size_t len)
{
    if (conn == BLE_OTA_CONN_NONE || g_ota.outbox_count >= BLE_OTA_OUTBOX_LEN || len > BLE_OTA_NOTIFY_MAX) return;
    outbox_msg_t *m = &g_ota.outbox[g_ota.outbox_count++];
    m->conn = conn;
    m->chr = BLE_OTA_CHR_CONTROL;
    m->len = (uint8_t)len;
    memcpy(m->data, data, len);
}

/* Status bytes 16..19 (session_offset) move with every ACK; they alone do not warrant a notification. */
static bool status_changed(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, 16) != 0 || memcmp(a + 20, b + 20, BLE_OTA_STATUS_LEN - 20) != 0;
}

void ota_flush(void)
{
    for (;;) {
        outbox_msg_t m;
        uint8_t status[BLE_OTA_STATUS_LEN];
        bool send_status = false;
        ota_lock();
        if (g_ota.outbox_count > 0) {
            m = g_ota.outbox[0];
            memmove(&g_ota.outbox[0], &g_ota.outbox[1], (g_ota.outbox_count - 1) * sizeof m);
            g_ota.outbox_count--;
        } else {
            ble_ota_status_t st;
            ota_build_status(&st);
            ble_ota_encode_status(&st, status);
            if (!g_ota.status_sent || status_changed(status, g_ota.last_status)) {
                memcpy(g_ota.last_status, status, sizeof status);
                g_ota.status_sent = true;
                send_status = true;
            }
            m.len = 0;
        }
        ota_unlock();
        if (m.len > 0) {
            P->notify(P->ctx, m.conn, m.chr, m.data, m.len);
            continue;
        }
        if (send_status) P->notify(P->ctx, BLE_OTA_CONN_NONE, BLE_OTA_CHR_STATUS, status, sizeof status);
        return;
    }
}


void ota_rearm_timer(void)
{
    uint32_t now = P->now_ms(P->ctx);
    bool any = false;
    uint32_t next = 0;
    if (g_ota.s.live && g_ota.s.state == BLE_OTA_SESSION_SUSPENDED) {
        next = g_ota.s.resume_deadline;
        any = true;
    }
    if (g_ota.reboot != REBOOT_NONE && !g_ota.reboot_due && (!any || (int32_t)(g_ota.reboot_deadline - next) < 0)) {
        next = g_ota.reboot_deadline;
        any = true;
    }
    if (!any) {
        P->timer_arm(P->ctx, 0);
        return;
    }
    uint32_t delay = deadline_passed(now, next) ? 1 : next - now;
    P->timer_arm(P->ctx, delay);
}

void ota_record_set(uint8_t result, const char *message)
{
    g_ota.rec.valid = true;
    g_ota.rec.result = result;
    copy_str(g_ota.rec.message, sizeof g_ota.rec.message, message);
    g_ota.rec_dirty = true;
}

void ota_session_release(void)
{
    session_t *s = &g_ota.s;
    if (s->reserved_sha) P->digest_finish(P->ctx, s->reserved_sha, NULL);
    if (s->reserved_inflate) P->inflate_free(P->ctx, s->reserved_inflate);
    s->reserved_sha = s->reserved_inflate = NULL;
    free(s->ring);
    s->ring = NULL;
}

void ota_session_end(uint8_t result, const char *message)
{
    session_t *s = &g_ota.s;
    if (!s->live) return;
    ota_session_release();
    s->live = false;
    s->state = BLE_OTA_SESSION_IDLE;
    s->owner = BLE_OTA_CONN_NONE;
    g_ota.rec.stage = REC_STAGE_DONE;
    ota_record_set(result, message);
    ota_rearm_timer();
    P->writer_kick(P->ctx); /* the writer drops its state (esp_ota_abort) and persists the record */
}

void ota_persist_record(void)
{
    uint8_t blob[BLE_OTA_RECORD_BLOB_LEN];
    ota_lock();
    bool dirty = g_ota.rec_dirty;
    if (dirty) ota_record_serialize(&g_ota.rec, blob);
    g_ota.rec_dirty = false;
    ota_unlock();
    if (dirty && P->kv_set(P->ctx, "record", blob, sizeof blob) != 0) ota_log("ble_ota: could not persist the update record");
}

bool ota_provision_window_open(void)
{
    return g_ota.provision_open && !deadline_passed(P->now_ms(P->ctx), g_ota.provision_until);
}

void ota_raise_release_floor(uint32_t release)
{
    uint8_t buf[4];
    ota_lock();
    bool raise = release > g_ota.release_floor;
    if (raise) g_ota.release_floor = release;
    ota_unlock();
    if (!raise) return;
    ble_ota_put_u32(buf, release);
    if (P->kv_set(P->ctx, "rel_floor", buf, sizeof buf) != 0) ota_log("ble_ota: could not persist the release floor");
}

/* Delta needs the inflater (the patch is a zlib stream), a port that reads the running image and its
 * length as esp_image_verify reports it (the bounds of every base read). */
bool ota_delta_supported(void)
{
    return g_ota.cfg.deflate && g_ota.port->base_read && g_ota.app.running_image_len > 0;
}

uint16_t ble_ota_core_caps(void)
{
    const ble_ota_config_t *c = &g_ota.cfg;
    uint16_t caps = BLE_OTA_CAP_RESUME | BLE_OTA_CAP_MANIFEST_CMD | BLE_OTA_CAP_MANIFEST_STAGING;
    if (c->deflate) caps |= BLE_OTA_CAP_DEFLATE;
    if (ota_delta_supported()) caps |= BLE_OTA_CAP_DELTA;
    if (g_ota.has_key || c->require_fleet_key) caps |= BLE_OTA_CAP_FLEET_KEY;
    if (c->resume_timeout_ms == 0) caps &= (uint16_t)~BLE_OTA_CAP_RESUME;
    if (c->policy == BLE_OTA_POLICY_HOST) caps |= BLE_OTA_CAP_HOST_CONFIRM;
    if (!c->allow_downgrade) caps |= BLE_OTA_CAP_ANTI_DOWNGRADE;
    if (c->signed_images) caps |= BLE_OTA_CAP_SIGNED;
    if (g_ota.release_key_mask) caps |= BLE_OTA_CAP_MANIFEST_REQUIRED;
    if (ota_provision_window_open()) caps |= BLE_OTA_CAP_PROVISION_WINDOW;
    if (c->allow_unauthenticated) caps |= BLE_OTA_CAP_UNAUTHENTICATED;
    else if (!g_ota.has_key && !g_ota.release_key_mask) caps |= BLE_OTA_CAP_NOT_PROVISIONED;
    return caps;
}

void ota_build_status(ble_ota_status_t *st)
{
    memset(st, 0, sizeof *st);
    st->format = BLE_OTA_STATUS_FORMAT;
    st->proto_version = BLE_OTA_PROTO_VERSION;
    st->caps = ble_ota_core_caps();
    st->ota_state = g_ota.ota_state;
    st->confirm_policy = (uint8_t)g_ota.cfg.policy;
    st->session_state = g_ota.s.live ? (uint8_t)g_ota.s.state : BLE_OTA_SESSION_IDLE;
    st->reset_reason = g_ota.app.reset_reason;
    st->boot_count = g_ota.rec.installed ? g_ota.rec.boot_count : 0;
    st->chip_id = g_ota.app.chip_id;
    st->secure_version = g_ota.app.secure_version;
    st->session_offset = g_ota.s.live ? g_ota.s.acked : 0;
    copy_str(st->running_partition, sizeof st->running_partition, g_ota.app.partition_label);
    copy_str(st->app_version, sizeof st->app_version, g_ota.app.version);
    copy_str(st->project_name, sizeof st->project_name, g_ota.app.project_name);
    copy_str(st->idf_version, sizeof st->idf_version, g_ota.app.idf_version);
    memcpy(st->running_sha256, g_ota.app.running_sha256, 32);
    if (g_ota.rec.valid) {
        st->last_result = g_ota.rec.result;
        st->last_flags = (uint8_t)(g_ota.rec.flags | BLE_OTA_LAST_RECORD_VALID);
        memcpy(st->last_sha256, g_ota.rec.sha256, 32);
        copy_str(st->last_message, sizeof st->last_message, g_ota.rec.message);
    } else {
        st->last_result = 0xFF;
    }
    char label[17];
    if (P->ota_target(P->ctx, &st->update_partition_size, label) != 0) st->update_partition_size = 0;
    st->release_floor = g_ota.release_floor;
    memcpy(st->device_id, g_ota.app.device_id, sizeof st->device_id);
    st->release_key_ids = g_ota.release_key_mask;
}

size_t ble_ota_core_read_status(uint8_t buf[BLE_OTA_STATUS_LEN])
{
    ble_ota_status_t st;
    int state = P->app_state(P->ctx); /* fresh: the app may have confirmed itself */
    ota_lock();
    if (!g_ota.pending_cmd) g_ota.ota_state = (uint8_t)state; /* not while our own otadata write runs */
    ota_build_status(&st);
    ota_unlock();
    return ble_ota_encode_status(&st, buf);
}

size_t ble_ota_core_build_mfg_data(uint8_t buf[BLE_OTA_MFG_DATA_LEN])
{
    ble_ota_adv_t adv;
    ota_lock();
    const ota_record_t *r = &g_ota.rec;
    adv.flags = (uint8_t)(g_ota.ota_state & 0x07);
    if (r->valid && (r->flags & BLE_OTA_LAST_ROLLED_BACK)) adv.flags |= 0x08;
    if (r->valid && (r->flags & BLE_OTA_LAST_DIAG_RAN) && !(r->flags & BLE_OTA_LAST_DIAG_PASSED)) adv.flags |= 0x10;
    if (g_ota.s.live) adv.flags |= 0x20;
    if (g_ota.cfg.policy == BLE_OTA_POLICY_HOST) adv.flags |= 0x40;
    if (ble_ota_core_caps() & BLE_OTA_CAP_FLEET_KEY) adv.flags |= 0x80;
    memcpy(adv.sha_prefix, g_ota.app.running_sha256, 4);
    ble_ota_parse_version(g_ota.app.version, adv.version);
    ota_unlock();
    return ble_ota_encode_mfg(&adv, buf);
}

const ble_ota_app_info_t *ble_ota_core_app_info(void) { return &g_ota.app; }

ble_ota_session_state_t ble_ota_core_session_state(void)
{
    return g_ota.s.live ? g_ota.s.state : BLE_OTA_SESSION_IDLE;
}

/* Runs the diagnostics hook and records the outcome (stage BOOTED). */
static void run_diagnostics(void)
{
    ota_record_t *r = &g_ota.rec;
    char msg[33] = "no diagnostics hook";
    bool pass = true;
    if (s_diag_fn) {
        msg[0] = '\0';
        pass = s_diag_fn(s_diag_arg, msg, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        if (msg[0] == '\0') copy_str(msg, sizeof msg, pass ? "diagnostics passed" : "diagnostics failed");
    }
    r->stage = REC_STAGE_BOOTED;
    r->flags |= BLE_OTA_LAST_DIAG_RAN;
    if (pass) r->flags |= BLE_OTA_LAST_DIAG_PASSED;
    copy_str(r->message, sizeof r->message, msg);
    if (!pass) r->result = BLE_OTA_ERR_DIAGNOSTICS_FAILED;
    g_ota.rec_dirty = true;
}

/* The confirm policy for a pending image whose diagnostics ran. Returns true when rebooting. */
static bool apply_policy(void)
{
    ota_record_t *r = &g_ota.rec;
    if (g_ota.cfg.policy != BLE_OTA_POLICY_AUTO) return false;
    if (r->flags & BLE_OTA_LAST_DIAG_PASSED) {
        /* The BLE stack is part of the diagnostics: confirm only once it advertises (on_ble_ready). */
        g_ota.confirm_after_ble = true;
        return false;
    }
    ota_persist_record();
    if (P->app_rollback_possible(P->ctx) && P->app_rollback_and_reboot(P->ctx) == 0) return true;
    copy_str(r->message, sizeof r->message, "diagnostics failed, no rollback image");
    g_ota.rec_dirty = true;
    return false;
}

static bool counts_as_boot(void) { return g_ota.app.reset_reason != BLE_OTA_RESET_DEEPSLEEP; }

/* First boot of a new image: the bootloader just turned it NEW -> PENDING_VERIFY (bootloader_utility.c
 * :390-394; any PENDING_VERIFY entry it finds at boot becomes ABORTED, :340-347), whoever installed it.
 * Returns true when rebooting (rollback). */
static bool first_boot_of_pending_image(void)
{
    ota_record_t *r = &g_ota.rec;
    bool on_target = r->valid && strcmp(g_ota.app.partition_label, r->target_label) == 0;
    bool ours = on_target && r->stage >= REC_STAGE_INSTALLED;
    if (!ours) { /* seed firmware, Wi-Fi OTA, esptool, NVS erased: no record of ours names this image */
        memset(r, 0, sizeof *r);
        r->valid = true;
        r->flags = BLE_OTA_LAST_OTHER_INSTALLER;
        r->stage = REC_STAGE_INSTALLED;
        copy_str(r->target_label, sizeof r->target_label, g_ota.app.partition_label);
        copy_str(r->message, sizeof r->message, "installed by another installer");
    }
    if (r->stage == REC_STAGE_INSTALLED) {
        r->installed = true;
        r->flags |= BLE_OTA_LAST_INSTALLED;
        r->boot_count = 1;
    } else {
        /* The same pending image started again without the bootloader's otadata pass (a deep-sleep
         * wake with CONFIG_BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP, or no image to fall back to). */
        if (counts_as_boot() && r->boot_count < 0xFFFF) r->boot_count++;
        if (r->stage != REC_STAGE_BOOTED) r->flags |= BLE_OTA_LAST_INTERRUPTED;
        if (r->stage == REC_STAGE_CONFIRMING) {
            r->stage = REC_STAGE_BOOTED;
            g_ota.rec_dirty = true;
        }
        if (r->stage == REC_STAGE_BOOTED) return apply_policy();
    }
    r->stage = REC_STAGE_DIAGNOSING;
    copy_str(r->message, sizeof r->message, "first-boot diagnostics running");
    g_ota.rec_dirty = true;
    ota_persist_record();
    run_diagnostics();
    ota_persist_record();
    return apply_policy();
}

/* The record names an image that is not running: the bootloader went back to the previous one. */
static void rolled_back(const char *why)
{
    ota_record_t *r = &g_ota.rec;
    r->flags |= BLE_OTA_LAST_ROLLED_BACK;
    if (r->result == BLE_OTA_OK) r->result = BLE_OTA_ERR_ROLLED_BACK;
    if (!(r->flags & BLE_OTA_LAST_DIAG_RAN) || (r->flags & BLE_OTA_LAST_DIAG_PASSED) ||
        (r->flags & BLE_OTA_LAST_INTERRUPTED))
        copy_str(r->message, sizeof r->message, why);
    r->stage = REC_STAGE_DONE;
    g_ota.rec_dirty = true;
}

/* Boot bookkeeping of the update record (PROTOCOL.md §4.4, §6). Returns true when rebooting. */
static bool account_boot(void)
{
    ota_record_t *r = &g_ota.rec;
    if (g_ota.ota_state == BLE_OTA_IMG_PENDING_VERIFY) return first_boot_of_pending_image();
    if (!r->valid) return false;
    bool on_target = strcmp(g_ota.app.partition_label, r->target_label) == 0;
    if (r->installed && r->stage != REC_STAGE_INSTALLED && counts_as_boot() && r->boot_count < 0xFFFF) {
        r->boot_count++;
        g_ota.rec_dirty = true;
    }
    switch (r->stage) {
    case REC_STAGE_IN_PROGRESS:
        r->stage = REC_STAGE_DONE;
        r->flags |= BLE_OTA_LAST_INTERRUPTED;
        copy_str(r->message, sizeof r->message, "interrupted by a reboot");
        g_ota.rec_dirty = true;
        return false;
    case REC_STAGE_INSTALLED:
        if (!(r->flags & BLE_OTA_LAST_INSTALLED) && !on_target) {
            /* power lost between the INSTALLED record and the end of esp_ota_set_boot_partition */
            r->stage = REC_STAGE_DONE;
            r->flags |= BLE_OTA_LAST_INTERRUPTED;
            copy_str(r->message, sizeof r->message, "interrupted before boot switch");
            g_ota.rec_dirty = true;
            return false;
        }
        if (on_target) {
            /* Booted without PENDING_VERIFY: rollback is off in the bootloader (set_new_state_otadata,
             * esp_ota_ops.c:104-112). Diagnostics run for the record; there is nothing to confirm. */
            r->installed = true;
            r->flags |= BLE_OTA_LAST_INSTALLED;
            r->boot_count = 1;
            run_diagnostics();
            r->stage = REC_STAGE_DONE;
            ota_raise_release_floor(r->release); /* runs as valid: nothing will confirm it */
            return false;
        }
        rolled_back("rolled back to the previous image");
        return false;
    case REC_STAGE_DIAGNOSING:
    case REC_STAGE_BOOTED:
    case REC_STAGE_CONFIRMING:
        if (on_target) { /* no longer pending: confirmed (by us, or by the app itself) */
            if (g_ota.ota_state == BLE_OTA_IMG_VALID) {
                r->flags |= BLE_OTA_LAST_CONFIRMED;
                ota_raise_release_floor(r->release);
            }
            r->stage = REC_STAGE_DONE;
            g_ota.rec_dirty = true;
            return false;
        }
        if (r->stage == REC_STAGE_DIAGNOSING) {
            r->flags |= BLE_OTA_LAST_INTERRUPTED;
            rolled_back("restarted during diagnostics");
        } else if (r->stage == REC_STAGE_CONFIRMING) {
            r->flags |= BLE_OTA_LAST_INTERRUPTED;
            rolled_back("restarted while confirming");
        } else {
            rolled_back("rolled back to the previous image");
        }
        return false;
    default:
        return false;
    }
}

/* Session key (device_key, else the legacy fleet_key), release public keys (NVS rel_key0..3, else the
 * built-in ones) and the release floor (PROTOCOL.md §D, §E). */
static void load_keys(void)
{
    size_t len = sizeof g_ota.key;
    g_ota.has_key = P->kv_get(P->ctx, "device_key", g_ota.key, &len) == 0 && len == sizeof g_ota.key;
    len = sizeof g_ota.key;
    if (!g_ota.has_key)
        g_ota.has_key = P->kv_get(P->ctx, "fleet_key", g_ota.key, &len) == 0 && len == sizeof g_ota.key;
    for (int i = 0; i < BLE_OTA_MAX_RELEASE_KEYS; i++) {
        char name[] = "rel_key0";
        name[7] = (char)('0' + i);
        len = BLE_OTA_RELEASE_KEY_LEN;
        if (P->kv_get(P->ctx, name, g_ota.release_keys[i], &len) == 0 && len == BLE_OTA_RELEASE_KEY_LEN &&
            g_ota.release_keys[i][0] == 0x04)
            g_ota.release_key_mask |= (uint8_t)(1u << i);
    }
    if (!g_ota.release_key_mask) {
        size_t n = g_ota.cfg.embedded_release_keys_len / BLE_OTA_RELEASE_KEY_LEN;
        for (size_t i = 0; i < n && i < BLE_OTA_MAX_RELEASE_KEYS; i++) {
            const uint8_t *k = g_ota.cfg.embedded_release_keys + i * BLE_OTA_RELEASE_KEY_LEN;
            if (k[0] != 0x04) continue;
            memcpy(g_ota.release_keys[i], k, BLE_OTA_RELEASE_KEY_LEN);
            g_ota.release_key_mask |= (uint8_t)(1u << i);
        }
    }
    uint8_t floor[4];
    len = sizeof floor;
    if (P->kv_get(P->ctx, "rel_floor", floor, &len) == 0 && len == sizeof floor) g_ota.release_floor = ble_ota_get_u32(floor);
}

int ble_ota_core_init(const ble_ota_config_t *cfg, const ble_ota_port_t *port)
{
    if (!cfg || !port || cfg->window < 2048 || cfg->ack_interval == 0 || cfg->max_chunk < 1) return -1;
    memset(&g_ota, 0, sizeof g_ota);
    g_ota.cfg = *cfg;
    g_ota.port = port;
    g_ota.s.owner = BLE_OTA_CONN_NONE;
    g_ota.pending_conn = BLE_OTA_CONN_NONE;
    port->app_info(port->ctx, &g_ota.app);
    g_ota.ota_state = (uint8_t)port->app_state(port->ctx);
    load_keys();
    if (cfg->provision_window_ms && port->provision_requested && port->provision_requested(port->ctx)) {
        g_ota.provision_open = true;
        g_ota.provision_until = port->now_ms(port->ctx) + cfg->provision_window_ms;
        ota_log("ble_ota: provisioning window open");
    }
    size_t len;
    uint8_t blob[BLE_OTA_RECORD_BLOB_LEN];
    len = sizeof blob;
    if (port->kv_get(port->ctx, "record", blob, &len) == 0) ota_record_parse(blob, len, &g_ota.rec);
    g_ota.initialised = true;
    bool rebooting = account_boot();
    ota_persist_record(); /* only when the boot changed it */
    /* Status notifications report changes from here on, not the boot state itself. */
    ble_ota_status_t st;
    ota_build_status(&st);
    ble_ota_encode_status(&st, g_ota.last_status);
    g_ota.status_sent = true;
    (void)rebooting; /* the port reboots after init returns */
    return 0;
}

void ble_ota_core_deinit(void)
{
    if (!g_ota.initialised) return;
    if (g_ota.w.sha) P->digest_finish(P->ctx, g_ota.w.sha, NULL);
    if (g_ota.w.inflate) P->inflate_free(P->ctx, g_ota.w.inflate);
    ota_session_release();
    memset(&g_ota, 0, sizeof g_ota);
}

void ble_ota_core_on_ble_ready(void)
{
    if (!g_ota.initialised) return;
    ota_lock();
    g_ota.ble_ready = true;
    if (g_ota.confirm_after_ble) {
        g_ota.confirm_after_ble = false;
        g_ota.auto_confirm_due = true;
        P->writer_kick(P->ctx);
    }
    ota_unlock();
}

void ble_ota_core_on_timer(void)
{
    ota_lock();
    uint32_t now = P->now_ms(P->ctx);
    session_t *s = &g_ota.s;
    if (s->live && s->state == BLE_OTA_SESSION_SUSPENDED && deadline_passed(now, s->resume_deadline))
        ota_session_end(BLE_OTA_ERR_SESSION_TIMEOUT, "resume timeout");
    if (g_ota.reboot != REBOOT_NONE && !g_ota.reboot_due && deadline_passed(now, g_ota.reboot_deadline)) {
        g_ota.reboot_due = true; /* the writer persists the record first, then reboots */
        P->writer_kick(P->ctx);
    }
    ota_rearm_timer();
    ota_unlock();
    ota_flush();
}
