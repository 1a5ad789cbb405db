/* Host port of the BLE OTA core: esp_ota_*-like behaviour over host_flash, zlib, SHA-256, virtual time. */
#include "host_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "esp_image.h"
#include "sha256.h"

#define RESET_POWERON 1
#define RESET_SW 3
#define INFLATE_OUT 32768

struct host_device {
    host_device_opts_t o;
    host_flash_t *f;
    ble_ota_port_t port;
    int running;
    unsigned boots;
    uint8_t reset_reason;
    uint32_t now;
    bool timer_armed;
    uint32_t timer_deadline;
    bool reboot_requested;
    char reboot_reason[40];
    /* esp_ota handle */
    bool ota_open;
    uint32_t ota_size, ota_written, ota_erased;
    uint64_t rng;
};

typedef struct {
    z_stream z;
    uint8_t out[INFLATE_OUT];
} host_inflate_t;

typedef struct {
    bool hmac;
    sha256_ctx_t sha;
    hmac_sha256_ctx_t mac;
} host_digest_t;

static void emit(host_device_t *d, const host_event_t *ev)
{
    if (d->o.on_event) d->o.on_event(d->o.event_arg, ev);
}

static void logf_(host_device_t *d, const char *msg)
{
    host_event_t ev = {.type = HOST_EV_LOG, .text = msg};
    emit(d, &ev);
}

static int other(const host_device_t *d) { return 1 - d->running; }

static bool slot_image_ok(host_device_t *d, int index, esp_image_info_t *info)
{
    return esp_image_verify(host_flash_partition(d->f, index), d->f->psize, d->o.chip_id, true, info) == ESP_IMAGE_OK;
}

/* ---------------- port functions ---------------- */

static void p_lock(void *ctx) { (void)ctx; }
static void p_unlock(void *ctx) { (void)ctx; }
static void p_writer_kick(void *ctx) { (void)ctx; /* drained synchronously after each event */ }

static int p_ota_target(void *ctx, uint32_t *size, char label[17])
{
    host_device_t *d = ctx;
    *size = d->f->psize;
    snprintf(label, 17, "ota_%d", other(d));
    return 0;
}

static int p_ota_begin(void *ctx, uint32_t image_size)
{
    host_device_t *d = ctx;
    if (image_size > d->f->psize) return -1;
    const host_slot_t *running = &d->f->slots[d->running];
    if (running->seq != 0 && running->state == BLE_OTA_IMG_PENDING_VERIFY) { /* rollback enabled, as on a device */
        logf_(d, "esp_ota_begin: running app is PENDING_VERIFY (ESP_ERR_OTA_ROLLBACK_INVALID_STATE)");
        return -1;
    }
    d->ota_open = true;
    d->ota_size = image_size;
    d->ota_written = 0;
    d->ota_erased = 0;
    return 0;
}

static int p_ota_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    host_device_t *d = ctx;
    if (!d->ota_open || offset != d->ota_written || offset + (uint64_t)len > d->f->psize) return -1;
    while (d->ota_erased < offset + len) { /* erase sector by sector ahead of the write position */
        if (host_flash_erase(d->f, other(d), d->ota_erased, HOST_SECTOR) != 0) return -1;
        d->ota_erased += HOST_SECTOR;
    }
    if (host_flash_write(d->f, other(d), offset, data, len) != 0) return -1;
    d->ota_written += (uint32_t)len;
    return 0;
}

static int p_ota_end(void *ctx)
{
    host_device_t *d = ctx;
    if (!d->ota_open) return BLE_OTA_END_FLASH_ERROR;
    d->ota_open = false;
    esp_image_info_t info;
    esp_image_result_t r =
        esp_image_verify(host_flash_partition(d->f, other(d)), d->ota_written, d->o.chip_id, true, &info);
    if (r != ESP_IMAGE_OK) {
        char msg[80];
        snprintf(msg, sizeof msg, "esp_ota_end: image invalid (%s)", esp_image_result_name(r));
        logf_(d, msg);
        return BLE_OTA_END_INVALID_IMAGE;
    }
    return BLE_OTA_END_OK;
}

static void p_ota_abort(void *ctx) { ((host_device_t *)ctx)->ota_open = false; }

static int p_ota_set_boot(void *ctx)
{
    host_device_t *d = ctx;
    int t = other(d);
    if (!slot_image_ok(d, t, NULL)) return -1;
    host_slot_t saved = d->f->slots[t];
    uint32_t max = d->f->slots[0].seq > d->f->slots[1].seq ? d->f->slots[0].seq : d->f->slots[1].seq;
    d->f->slots[t].seq = max + 1;
    d->f->slots[t].state = BLE_OTA_IMG_NEW;
    if (host_flash_save_otadata(d->f) == 0) return 0;
    d->f->slots[t] = saved; /* the otadata write failed: boot selection unchanged */
    return -1;
}

static void p_app_info(void *ctx, ble_ota_app_info_t *out)
{
    host_device_t *d = ctx;
    esp_image_info_t info;
    memset(out, 0, sizeof *out);
    const uint8_t *img = host_flash_partition(d->f, d->running);
    slot_image_ok(d, d->running, &info);
    snprintf(out->version, sizeof out->version, "%s", info.version);
    snprintf(out->project_name, sizeof out->project_name, "%s", info.project_name);
    snprintf(out->idf_version, sizeof out->idf_version, "%s", info.idf_version);
    out->secure_version = info.secure_version;
    out->chip_id = d->o.chip_id;
    sha256(img, info.body_len, out->running_sha256); /* esp_partition_get_sha256: through the checksum byte */
    snprintf(out->partition_label, sizeof out->partition_label, "ota_%d", d->running);
    out->reset_reason = d->reset_reason;
}

static int p_app_state(void *ctx)
{
    host_device_t *d = ctx;
    const host_slot_t *s = &d->f->slots[d->running];
    return s->seq == 0 ? BLE_OTA_IMG_UNDEFINED : s->state;
}

static int p_app_mark_valid(void *ctx)
{
    host_device_t *d = ctx;
    host_slot_t *s = &d->f->slots[d->running];
    if (s->seq == 0 || s->state == BLE_OTA_IMG_VALID) return 0;
    s->state = BLE_OTA_IMG_VALID;
    return host_flash_save_otadata(d->f);
}

static bool p_app_rollback_possible(void *ctx)
{
    host_device_t *d = ctx;
    const host_slot_t *s = &d->f->slots[other(d)];
    return s->seq != 0 && s->state != BLE_OTA_IMG_INVALID && s->state != BLE_OTA_IMG_ABORTED &&
           slot_image_ok(d, other(d), NULL);
}

static void request_reboot(host_device_t *d, const char *reason)
{
    d->reboot_requested = true;
    snprintf(d->reboot_reason, sizeof d->reboot_reason, "%s", reason);
}

static int p_app_rollback_and_reboot(void *ctx)
{
    host_device_t *d = ctx;
    if (!p_app_rollback_possible(ctx)) return -1;
    d->f->slots[d->running].state = BLE_OTA_IMG_INVALID;
    host_flash_save_otadata(d->f);
    request_reboot(d, "rollback");
    return 0;
}

static void p_restart(void *ctx) { request_reboot(ctx, "restart"); }

static int p_kv_get(void *ctx, const char *key, void *buf, size_t *len)
{
    return host_nvs_get(((host_device_t *)ctx)->f, key, buf, len);
}

static int p_kv_set(void *ctx, const char *key, const void *buf, size_t len)
{
    return host_nvs_set(((host_device_t *)ctx)->f, key, buf, len);
}

static void p_random(void *ctx, uint8_t *buf, size_t len)
{
    host_device_t *d = ctx;
    FILE *fp = fopen("/dev/urandom", "rb");
    size_t got = fp ? fread(buf, 1, len, fp) : 0;
    if (fp) fclose(fp);
    for (size_t i = got; i < len; i++) { /* fallback: xorshift */
        d->rng ^= d->rng << 13;
        d->rng ^= d->rng >> 7;
        d->rng ^= d->rng << 17;
        buf[i] = (uint8_t)d->rng;
    }
}

static void *p_digest_start(void *ctx, const uint8_t *key, size_t key_len)
{
    (void)ctx;
    host_digest_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->hmac = key != NULL;
    if (h->hmac) hmac_sha256_init(&h->mac, key, key_len);
    else sha256_init(&h->sha);
    return h;
}

static void p_digest_update(void *ctx, void *handle, const uint8_t *data, size_t len)
{
    (void)ctx;
    host_digest_t *h = handle;
    if (h->hmac) hmac_sha256_update(&h->mac, data, len);
    else sha256_update(&h->sha, data, len);
}

static void p_digest_finish(void *ctx, void *handle, uint8_t out[32])
{
    (void)ctx;
    host_digest_t *h = handle;
    uint8_t tmp[32];
    if (h->hmac) hmac_sha256_final(&h->mac, out ? out : tmp);
    else sha256_final(&h->sha, out ? out : tmp);
    free(h);
}

static void *p_inflate_start(void *ctx)
{
    (void)ctx;
    host_inflate_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (inflateInit(&s->z) != Z_OK) {
        free(s);
        return NULL;
    }
    return s;
}

static int p_inflate_step(void *ctx, void *handle, const uint8_t *in, size_t in_len, size_t *consumed,
                          const uint8_t **out, size_t *out_len)
{
    (void)ctx;
    host_inflate_t *s = handle;
    s->z.next_in = (Bytef *)(uintptr_t)in;
    s->z.avail_in = (uInt)in_len;
    s->z.next_out = s->out;
    s->z.avail_out = sizeof s->out;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    *consumed = in_len - s->z.avail_in;
    *out = s->out;
    *out_len = sizeof s->out - s->z.avail_out;
    if (rc == Z_STREAM_END) return BLE_OTA_INFLATE_DONE;
    if (rc == Z_OK || rc == Z_BUF_ERROR) return BLE_OTA_INFLATE_MORE;
    return BLE_OTA_INFLATE_ERROR;
}

static void p_inflate_free(void *ctx, void *handle)
{
    (void)ctx;
    host_inflate_t *s = handle;
    inflateEnd(&s->z);
    free(s);
}

static uint32_t p_now_ms(void *ctx) { return ((host_device_t *)ctx)->now; }

static void p_timer_arm(void *ctx, uint32_t delay_ms)
{
    host_device_t *d = ctx;
    d->timer_armed = delay_ms != 0;
    d->timer_deadline = d->now + delay_ms;
}

static void p_notify(void *ctx, ble_ota_conn_t conn, ble_ota_chr_t chr, const uint8_t *data, size_t len)
{
    host_device_t *d = ctx;
    if (d->f->power_lost) return; /* a dead radio sends nothing */
    host_event_t ev = {.type = HOST_EV_NOTIFY, .conn = conn, .chr = chr, .data = data, .len = len};
    emit(d, &ev);
}

static void p_log(void *ctx, const char *msg) { logf_(ctx, msg); }

/* ---------------- device lifecycle ---------------- */

static bool diag_hook(void *arg, char *msg, size_t size)
{
    host_device_t *d = arg;
    snprintf(msg, size, "%s", d->o.diagnostics_fail ? "simulated diagnostics failure" : "simulated diagnostics ok");
    return !d->o.diagnostics_fail;
}

/* The simulated bootloader (rollback enabled): highest sequence first, NEW -> PENDING_VERIFY,
 * a PENDING_VERIFY image that boots again unconfirmed -> ABORTED, invalid images skipped. */
static int bootloader_select(host_device_t *d)
{
    host_flash_t *f = d->f;
    int order[2] = {0, 1};
    if (f->slots[1].seq > f->slots[0].seq) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int k = 0; k < 2; k++) {
        int i = order[k];
        host_slot_t *s = &f->slots[i];
        if (s->seq == 0 || s->state == BLE_OTA_IMG_INVALID || s->state == BLE_OTA_IMG_ABORTED) continue;
        if (s->state == BLE_OTA_IMG_PENDING_VERIFY) {
            s->state = BLE_OTA_IMG_ABORTED;
            host_flash_save_otadata(f);
            continue;
        }
        if (!slot_image_ok(d, i, NULL)) continue;
        if (s->state == BLE_OTA_IMG_NEW) {
            s->state = BLE_OTA_IMG_PENDING_VERIFY;
            host_flash_save_otadata(f);
        }
        return i;
    }
    for (int i = 0; i < 2; i++)
        if (slot_image_ok(d, i, NULL)) return i;
    return -1;
}

static bool boot(host_device_t *d)
{
    d->running = bootloader_select(d);
    if (d->running < 0) {
        fprintf(stderr, "host device: no bootable app image\n");
        return false;
    }
    d->boots++;
    d->ota_open = false;
    d->timer_armed = false;
    ble_ota_core_set_diagnostics(diag_hook, d);
    if (ble_ota_core_init(&d->o.cfg, &d->port) != 0) {
        fprintf(stderr, "host device: ble_ota_core_init failed\n");
        return false;
    }
    return true;
}

static void reboot_now(host_device_t *d, const char *reason, uint8_t reset_reason)
{
    host_event_t ev = {.type = HOST_EV_REBOOT, .text = reason};
    ble_ota_core_deinit();
    emit(d, &ev);
    d->reboot_requested = false;
    if (d->f->power_lost) { /* power comes back */
        d->f->power_lost = false;
        d->f->cut_after = -1;
    }
    d->reset_reason = reset_reason;
    boot(d);
}

/* After every event: run the writer (the "task") and carry out reboots and power cuts it caused. */
static void settle(host_device_t *d)
{
    for (int guard = 0; guard < 16; guard++) {
        while (!d->f->power_lost && !d->reboot_requested && ble_ota_core_writer_pending()) ble_ota_core_writer_run();
        if (d->f->power_lost) reboot_now(d, "power_loss", RESET_POWERON);
        else if (d->reboot_requested) reboot_now(d, d->reboot_reason, RESET_SW);
        else return;
    }
}

host_device_t *host_device_create(const host_device_opts_t *opts)
{
    host_device_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->o = *opts;
    if (d->o.cfg.window == 0) ble_ota_config_default(&d->o.cfg);
    if (d->o.partition_size == 0) d->o.partition_size = 0x1E0000;
    d->rng = 0x9E3779B97F4A7C15ull;
    d->f = host_flash_open(opts->state_dir, d->o.partition_size);
    if (!d->f) {
        fprintf(stderr, "host device: cannot open storage\n");
        free(d);
        return NULL;
    }
    if (host_flash_is_new(d->f)) {
        if (!opts->running_image || opts->running_image_len > d->f->psize ||
            esp_image_verify(opts->running_image, opts->running_image_len, opts->chip_id, true, NULL) != ESP_IMAGE_OK) {
            fprintf(stderr, "host device: the running image is not a valid app image for chip id %u\n", opts->chip_id);
            host_flash_close(d->f);
            free(d);
            return NULL;
        }
        host_flash_erase(d->f, 0, 0, (uint32_t)((opts->running_image_len + HOST_SECTOR - 1) / HOST_SECTOR * HOST_SECTOR));
        host_flash_write(d->f, 0, 0, opts->running_image, opts->running_image_len);
        d->f->slots[0].seq = 1;
        d->f->slots[0].state = BLE_OTA_IMG_VALID;
        host_flash_save_otadata(d->f);
    }
    if (opts->has_fleet_key) host_nvs_set(d->f, "fleet_key", opts->fleet_key, 32);
    d->f->erase_ops = d->f->write_ops = 0;
    d->port = (ble_ota_port_t){
        .ctx = d, .lock = p_lock, .unlock = p_unlock, .writer_kick = p_writer_kick,
        .ota_target = p_ota_target, .ota_begin = p_ota_begin, .ota_write = p_ota_write, .ota_end = p_ota_end,
        .ota_abort = p_ota_abort, .ota_set_boot = p_ota_set_boot, .app_info = p_app_info, .app_state = p_app_state,
        .app_mark_valid = p_app_mark_valid, .app_rollback_possible = p_app_rollback_possible,
        .app_rollback_and_reboot = p_app_rollback_and_reboot, .restart = p_restart, .kv_get = p_kv_get,
        .kv_set = p_kv_set, .random = p_random, .digest_start = p_digest_start, .digest_update = p_digest_update,
        .digest_finish = p_digest_finish, .inflate_start = p_inflate_start, .inflate_step = p_inflate_step,
        .inflate_free = p_inflate_free, .now_ms = p_now_ms, .timer_arm = p_timer_arm, .notify = p_notify,
        .log = p_log,
    };
    d->reset_reason = RESET_POWERON;
    if (!boot(d)) {
        host_device_destroy(d);
        return NULL;
    }
    settle(d);
    return d;
}

void host_device_destroy(host_device_t *d)
{
    if (!d) return;
    ble_ota_core_deinit();
    host_flash_close(d->f);
    free(d);
}

void host_device_connect(host_device_t *d, ble_ota_conn_t conn, uint16_t mtu)
{
    ble_ota_core_on_connect(conn, mtu);
    settle(d);
}

void host_device_disconnect(host_device_t *d, ble_ota_conn_t conn)
{
    ble_ota_core_on_disconnect(conn);
    settle(d);
}

int host_device_control(host_device_t *d, ble_ota_conn_t conn, const uint8_t *data, size_t len)
{
    int att = ble_ota_core_on_control_write(conn, data, len);
    settle(d);
    return att;
}

void host_device_data(host_device_t *d, ble_ota_conn_t conn, const uint8_t *data, size_t len, bool run_writer)
{
    ble_ota_core_on_data_write(conn, data, len);
    if (run_writer) settle(d);
}

void host_device_run_writer(host_device_t *d) { settle(d); }

void host_device_tick(host_device_t *d, uint32_t ms)
{
    uint32_t end = d->now + ms;
    while (d->timer_armed && (int32_t)(end - d->timer_deadline) >= 0) {
        d->now = d->timer_deadline;
        d->timer_armed = false;
        ble_ota_core_on_timer();
        settle(d);
    }
    d->now = end;
}

void host_device_power_loss(host_device_t *d)
{
    d->f->power_lost = true;
    settle(d);
}

void host_device_cut_power_after(host_device_t *d, long n) { d->f->cut_after = n; }

host_flash_t *host_device_flash(host_device_t *d) { return d->f; }
const ble_ota_port_t *host_device_port(const host_device_t *d) { return &d->port; }
int host_device_running(const host_device_t *d) { return d->running; }
unsigned host_device_boots(const host_device_t *d) { return d->boots; }
