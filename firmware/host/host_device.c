/* Host port of the BLE OTA core: esp_ota_*-like behaviour over host_flash, zlib, SHA-256, virtual time. */
#include "host_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

#include "esp_image.h"
#include "sha256.h"

#define RESET_POWERON 1
#define RESET_SW 3
#define INFLATE_OUT 32768
#define HOST_ERASE_AHEAD 262144 /* CONFIG_BLE_OTA_ERASE_AHEAD_BYTES default */

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
    uint32_t ota_size, ota_written, ota_erased, ota_erase_end;
    uint64_t rng;
    /* a boot in progress: flash work adds to boot_ms instead of being reported (host_device.h) */
    bool booting;
    double boot_ms;
    /* device time at which the flash work reported so far ends (the writer is busy until then; with
     * flash_time_is_device_time the core's clock reads it while it is ahead of now; lib/sim/twin-device.ts
     * delays notifications alike) */
    double busy_until;
    bool cut_reported; /* HOST_EV_CUT sent for the armed cut that hit */
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

static void flash_event(host_device_t *d, const char *kind, double ms)
{
    if (d->booting) {
        d->boot_ms += ms;
        return;
    }
    d->busy_until = (d->busy_until > d->now ? d->busy_until : d->now) + ms;
    host_event_t ev = {.type = HOST_EV_FLASH, .text = kind, .ms = ms};
    emit(d, &ev);
}

static void on_flash_op(void *arg, host_op_kind_t kind, uint32_t bytes, double ms)
{
    (void)bytes;
    /* NVS writes are reported apart: they are the update record's bookkeeping, not the update's slot. */
    const char *name = kind == HOST_OP_NVS ? "nvs"
                       : (kind == HOST_OP_ERASE || (kind == HOST_OP_OTADATA && ms >= HOST_SECTOR_ERASE_MS)) ? "erase"
                                                                                                           : "program";
    flash_event(arg, name, ms);
}

/* esp_image_verify as ESP_IMAGE_VERIFY does it for an app in a partition, chip revision included. */
static bool slot_image_ok(host_device_t *d, int index, esp_image_info_t *info)
{
    esp_image_info_t tmp;
    if (!info) info = &tmp;
    return esp_image_verify(host_flash_partition(d->f, index), d->f->psize, d->o.chip_id, true, info) == ESP_IMAGE_OK &&
           esp_image_chip_rev_ok(info, d->o.chip_rev);
}

/* A whole-image verification read (host_flash.h HOST_VERIFY_BYTES_PER_MS). */
static double verify_ms(size_t bytes) { return host_verify_ms(bytes); }

/* Bytes the bootloader reads loading slot index: the image when it verifies; else up to the last
 * programmed byte (a half-written image is read until its segments run into erased flash). */
static size_t slot_read_len(host_device_t *d, int index, bool ok, const esp_image_info_t *info)
{
    if (ok) return info->total_len;
    const uint8_t *p = host_flash_partition(d->f, index);
    size_t n = d->f->psize;
    while (n > 0 && p[n - 1] == 0xFF) n--;
    return n;
}

/* ---------------- otadata, as esp_ota_ops.c and bootloader_common_loader.c keep it ---------------- */

static bool entry_invalid(const host_otadata_t *e) /* bootloader_common_ota_select_invalid */
{
    return e->seq == 0xFFFFFFFFu || e->state == BLE_OTA_IMG_INVALID || e->state == BLE_OTA_IMG_ABORTED;
}

static bool entry_crc_ok(const host_otadata_t *e) { return e->crc == host_otadata_crc(e->seq); }

static bool entry_valid(const host_otadata_t *e) { return !entry_invalid(e) && entry_crc_ok(e); }

/* bootloader_common_select_otadata(max = true) over the valid entries; -1 when none. */
static int active_entry(const host_otadata_t e[2])
{
    bool v0 = entry_valid(&e[0]), v1 = entry_valid(&e[1]);
    if (v0 && v1) return e[0].seq >= e[1].seq ? 0 : 1;
    return v0 ? 0 : v1 ? 1 : -1;
}

static int entry_slot(const host_otadata_t *e) { return (int)((e->seq - 1) % 2); }

static int write_entry(host_device_t *d, int i, uint32_t seq, uint32_t state)
{
    host_otadata_t e = {.seq = seq, .state = state, .crc = host_otadata_crc(seq)};
    return host_otadata_write(d->f, i, &e);
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

static int p_app_state(void *ctx);

/* esp_ota_begin (esp_ota_ops.c:114-172) with the ESP-IDF port's erase-ahead (esp_port_flash.c): the
 * first erase unit now, then what each write needs, and while the writer waits for data one unit at a
 * time up to ERASE_AHEAD bytes in front of the write position; 64 KiB blocks where aligned and wholly
 * needed, up to ble_ota_erase_end (a last block whole when that is faster than its sectors). */
static uint32_t next_erase_len(uint32_t from, uint32_t end)
{
    return from % HOST_BLOCK == 0 && end - from >= HOST_BLOCK ? HOST_BLOCK : HOST_SECTOR;
}

static int erase_until(host_device_t *d, uint32_t want)
{
    if (want > d->ota_erase_end) want = d->ota_erase_end;
    while (d->ota_erased < want) {
        uint32_t len = next_erase_len(d->ota_erased, d->ota_erase_end);
        if (host_flash_erase(d->f, other(d), d->ota_erased, len) != 0) return -1;
        d->ota_erased += len;
    }
    return 0;
}

static int p_ota_begin(void *ctx, uint32_t image_size)
{
    host_device_t *d = ctx;
    if (image_size > d->f->psize) return -1;
    if (p_app_state(ctx) == BLE_OTA_IMG_PENDING_VERIFY) { /* rollback enabled, as on a device */
        logf_(d, "esp_ota_begin: running app is PENDING_VERIFY (ESP_ERR_OTA_ROLLBACK_INVALID_STATE)");
        return -1;
    }
    d->ota_open = true;
    d->ota_size = image_size;
    d->ota_written = 0;
    d->ota_erased = 0;
    d->ota_erase_end = ble_ota_erase_end(image_size, d->f->psize);
    return erase_until(d, next_erase_len(0, d->ota_erase_end));
}

static int p_ota_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    host_device_t *d = ctx;
    if (!d->ota_open || offset != d->ota_written || offset + (uint64_t)len > d->f->psize) return -1;
    uint32_t need = offset + (uint32_t)len;
    if (erase_until(d, need) != 0) return -1;
    if (host_flash_write(d->f, other(d), offset, data, len) != 0) return -1;
    d->ota_written += (uint32_t)len;
    return 0;
}

/* The port's idle erase-ahead: one unit. The writer is idle only once the flash work reported so far is
 * over in device time (busy_until); until then, not now (host_device_tick asks again). */
static int p_ota_erase_ahead(void *ctx)
{
    host_device_t *d = ctx;
    if (!d->ota_open || d->busy_until > d->now || d->ota_erased >= d->ota_erase_end ||
        d->ota_erased - d->ota_written >= HOST_ERASE_AHEAD)
        return 0;
    return erase_until(d, d->ota_erased + next_erase_len(d->ota_erased, d->ota_erase_end)) == 0 ? 1 : -1;
}

/* The ESP-IDF port's ota_end (esp_port_flash.c): esp_ota_abort, no validation, when esp_ota_end would
 * have nothing to flush (size a multiple of 16); esp_ota_set_boot_partition validates next. Otherwise
 * esp_ota_end, which validates (esp_ota_ops.c:319-362). */
static int p_ota_end(void *ctx)
{
    host_device_t *d = ctx;
    if (!d->ota_open) return BLE_OTA_END_FLASH_ERROR;
    d->ota_open = false;
    if (d->ota_size % 16 == 0) return BLE_OTA_END_OK;
    esp_image_info_t info;
    flash_event(d, "verify", verify_ms(d->ota_written));
    esp_image_result_t r =
        esp_image_verify(host_flash_partition(d->f, other(d)), d->ota_written, d->o.chip_id, true, &info);
    if (r != ESP_IMAGE_OK || !esp_image_chip_rev_ok(&info, d->o.chip_rev)) {
        char msg[80];
        snprintf(msg, sizeof msg, "esp_ota_end: image invalid (%s)", r != ESP_IMAGE_OK ? esp_image_result_name(r) : "chip revision");
        logf_(d, msg);
        return BLE_OTA_END_INVALID_IMAGE;
    }
    if (d->o.signed_required &&
        !esp_image_has_signature_block(host_flash_partition(d->f, other(d)), d->ota_written, &info)) {
        logf_(d, "esp_ota_end: no secure boot signature block (CONFIG_SECURE_SIGNED_ON_UPDATE)");
        return BLE_OTA_END_INVALID_IMAGE;
    }
    return BLE_OTA_END_OK;
}

/* The ESP-IDF port's base_read (esp_port_flash.c): esp_partition_read of the running slot, with the cache
 * off for the read (the host is held as for a program), at the flash read rate (host_flash.h). */
static int p_base_read(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    host_device_t *d = ctx;
    if ((uint64_t)offset + len > d->f->psize) return -1;
    flash_event(d, "read", host_read_ms(len));
    memcpy(dst, host_flash_partition(d->f, d->running) + offset, len);
    return 0;
}

static void p_ota_abort(void *ctx) { ((host_device_t *)ctx)->ota_open = false; }

/* esp_ota_set_boot_partition -> esp_rewrite_ota_data (esp_ota_ops.c:390-478): validate the image, then
 * write the entry that is NOT active with the next sequence number for the slot and state NEW. */
static int set_boot_slot(host_device_t *d, int slot)
{
    esp_image_info_t info;
    flash_event(d, "verify", verify_ms(d->ota_written));
    if (!slot_image_ok(d, slot, &info)) {
        logf_(d, "esp_ota_set_boot_partition: image invalid (ESP_ERR_OTA_VALIDATE_FAILED)");
        return BLE_OTA_END_INVALID_IMAGE;
    }
    /* esp_ota_set_boot_partition verifies through esp_image_verify like esp_ota_end (esp_ota_ops.c
     * v5.3.2 :443 image_validate -> :97 esp_image_verify), which checks the signature block when signed apps
     * are required (esp_image_format.c :957-981): an unsigned image is refused here as well. */
    if (d->o.signed_required && !esp_image_has_signature_block(host_flash_partition(d->f, slot), d->f->psize, &info)) {
        logf_(d, "esp_ota_set_boot_partition: no secure boot signature block (ESP_ERR_OTA_VALIDATE_FAILED)");
        return BLE_OTA_END_INVALID_IMAGE;
    }
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    int active = active_entry(e);
    if (active >= 0) {
        uint32_t seq = e[active].seq, i = 0;
        while (seq > (uint32_t)(slot + 1) % 2 + i * 2) i++;
        return write_entry(d, active ^ 1, (uint32_t)(slot + 1) % 2 + i * 2, BLE_OTA_IMG_NEW) ? BLE_OTA_END_FLASH_ERROR : 0;
    }
    return write_entry(d, 0, (uint32_t)slot + 1, BLE_OTA_IMG_NEW) ? BLE_OTA_END_FLASH_ERROR : 0;
}

static int p_ota_set_boot(void *ctx)
{
    host_device_t *d = ctx;
    return set_boot_slot(d, other(d));
}

/* The ESP-IDF port's running-app hash cache (esp_port_app.c running_hash): NVS blob "app_sha" = ELF
 * SHA-256 + partition label + partition SHA-256. esp_partition_get_sha256 reads the whole image
 * (bootloader_common.c:143-166), so it runs once per installed app, not at every boot. */
#define APP_SHA_KEY "app_sha"
#define APP_SHA_LEN (32 + 16 + 32)

static void running_hash(host_device_t *d, const esp_image_info_t *info, uint8_t out[32])
{
    uint8_t cache[APP_SHA_LEN], want[48];
    memset(want, 0, sizeof want);
    memcpy(want, info->elf_sha256, 32);
    snprintf((char *)want + 32, 16, "ota_%d", d->running);
    size_t len = sizeof cache;
    if (host_nvs_get(d->f, APP_SHA_KEY, cache, &len) == 0 && len == sizeof cache && memcmp(cache, want, sizeof want) == 0) {
        memcpy(out, cache + 48, 32);
        return;
    }
    flash_event(d, "verify", verify_ms(info->total_len));
    sha256(host_flash_partition(d->f, d->running), info->body_len, out); /* through the checksum byte */
    memcpy(cache, want, sizeof want);
    memcpy(cache + 48, out, 32);
    host_nvs_set(d->f, APP_SHA_KEY, cache, sizeof cache);
}

static void p_app_info(void *ctx, ble_ota_app_info_t *out)
{
    host_device_t *d = ctx;
    esp_image_info_t info;
    memset(out, 0, sizeof *out);
    slot_image_ok(d, d->running, &info);
    snprintf(out->version, sizeof out->version, "%s", info.version);
    snprintf(out->project_name, sizeof out->project_name, "%s", info.project_name);
    snprintf(out->idf_version, sizeof out->idf_version, "%s", info.idf_version);
    out->secure_version = info.secure_version;
    out->chip_id = d->o.chip_id;
    running_hash(d, &info, out->running_sha256);
    snprintf(out->partition_label, sizeof out->partition_label, "ota_%d", d->running);
    out->reset_reason = d->reset_reason;
    out->chip_rev_full = d->o.chip_rev;
    memcpy(out->device_id, d->o.device_id, sizeof out->device_id);
    out->running_image_len = (uint32_t)info.total_len; /* esp_image_get_metadata image_len (esp_port_app.c) */
}

/* esp_ota_get_state_partition (esp_ota_ops.c:837-869): the first entry with a good CRC that maps to
 * the partition; none: ESP_ERR_NOT_FOUND, reported as undefined. */
static int p_app_state(void *ctx)
{
    host_device_t *d = ctx;
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    for (int i = 0; i < 2; i++)
        if (e[i].seq != 0xFFFFFFFFu && entry_slot(&e[i]) == d->running && entry_crc_ok(&e[i]))
            return e[i].state <= BLE_OTA_IMG_ABORTED ? (int)e[i].state : BLE_OTA_IMG_UNDEFINED;
    return BLE_OTA_IMG_UNDEFINED;
}

/* esp_ota_mark_app_valid_cancel_rollback -> esp_ota_current_ota_is_workable(true) (esp_ota_ops.c:742-786):
 * rewrites the ACTIVE entry in place (erase, then write): a power cut between the two blanks it. */
static int p_app_mark_valid(void *ctx)
{
    host_device_t *d = ctx;
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    int active = active_entry(e);
    if (active < 0) return -1; /* "Running firmware is factory" */
    if (e[active].state == BLE_OTA_IMG_VALID) return 0;
    return write_entry(d, active, e[active].seq, BLE_OTA_IMG_VALID);
}

/* esp_ota_check_rollback_is_possible (esp_ota_ops.c:686-740): the entry other than the active one is
 * valid and its image verifies (no factory app in this partition table). */
static bool p_app_rollback_possible(void *ctx)
{
    host_device_t *d = ctx;
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    int active = active_entry(e);
    if (active < 0) return false;
    const host_otadata_t *last = &e[active ^ 1];
    if (!entry_valid(last)) return false;
    esp_image_info_t info;
    bool ok = slot_image_ok(d, entry_slot(last), &info);
    flash_event(d, "verify", verify_ms(slot_read_len(d, entry_slot(last), ok, &info)));
    return ok;
}

static void request_reboot(host_device_t *d, const char *reason)
{
    d->reboot_requested = true;
    snprintf(d->reboot_reason, sizeof d->reboot_reason, "%s", reason);
}

/* esp_ota_mark_app_invalid_rollback_and_reboot: the active entry -> INVALID, then esp_restart. */
static int p_app_rollback_and_reboot(void *ctx)
{
    host_device_t *d = ctx;
    if (!p_app_rollback_possible(ctx)) return -1;
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    int active = active_entry(e);
    if (write_entry(d, active, e[active].seq, BLE_OTA_IMG_INVALID) != 0) return -1;
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

/* Modeled time of BEGIN's manifest check on the chip (docs/TWIN.md "manifest check"): one ECDSA P-256
 * verify (IDF_PERFORMANCE_MAX_ECDSA_P256_VERIFY_OP, components/idf_test/include/<chip>/
 * idf_performance_target.h, v5.3.2) + SHA-256 of <= 352 bytes at IDF_PERFORMANCE_MIN_SHA256_THROUGHPUT_MBSEC.
 * Chips without the ECC peripheral (esp32, esp32s2, esp32c3, esp32s3: no SOC_ECC_SUPPORTED) have no figure;
 * they verify in software: pessimistically twice the slowest figure (esp32h2, 67 ms). */
double host_manifest_check_ms(uint16_t chip_id)
{
    double verify_us, sha_mbsec;
    switch (chip_id) {
    case 12: verify_us = 49000, sha_mbsec = 14; break;   /* esp32c2 */
    case 13: verify_us = 27000, sha_mbsec = 14; break;   /* esp32c6: no SHA figure, the c2's (lowest RISC-V) */
    case 16: verify_us = 67000, sha_mbsec = 90; break;   /* esp32h2 */
    case 0: verify_us = 134000, sha_mbsec = 6; break;    /* esp32 */
    default: verify_us = 134000, sha_mbsec = 90; break;  /* esp32s2, esp32c3, esp32s3, others */
    }
    return verify_us / 1000.0 + 352.0 / (sha_mbsec * 1000.0);
}

/* ECDSA P-256 verify with mbedTLS (the ESP-IDF port does the same with its mbedTLS 3.x). */
int host_ecdsa_p256_verify(const uint8_t pubkey[65], const uint8_t hash[32], const uint8_t sig[64])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0) rc = mbedtls_ecp_point_read_binary(&grp, &q, pubkey, 65);
    if (rc == 0) rc = mbedtls_ecp_check_pubkey(&grp, &q);
    if (rc == 0) rc = mbedtls_mpi_read_binary(&r, sig, 32);
    if (rc == 0) rc = mbedtls_mpi_read_binary(&s, sig + 32, 32);
    if (rc == 0) rc = mbedtls_ecdsa_verify(&grp, hash, 32, &q, &r, &s);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc == 0 ? 0 : -1;
}

static int p_ecdsa_p256_verify(void *ctx, const uint8_t pubkey[65], const uint8_t hash[32], const uint8_t sig[64])
{
    host_device_t *d = ctx;
    flash_event(d, "crypto", host_manifest_check_ms(d->o.chip_id));
    return host_ecdsa_p256_verify(pubkey, hash, sig);
}

static bool p_provision_requested(void *ctx) { return ((host_device_t *)ctx)->o.provision_button; }

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

static uint32_t p_now_ms(void *ctx)
{
    host_device_t *d = ctx;
    return d->o.flash_time_is_device_time && d->busy_until > d->now ? (uint32_t)d->busy_until : d->now;
}

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
    if (d->f->diag_cut_in && --d->f->diag_cut_in == 0) { /* an armed cut while the diagnostics run */
        d->f->power_lost = true;
        d->f->cut_fired = true;
    }
    snprintf(msg, size, "%s", d->o.diagnostics_fail ? "simulated diagnostics failure" : "simulated diagnostics ok");
    return !d->o.diagnostics_fail;
}

/* The bootloader with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, as bootloader_utility.c (v5.3.2) does it:
 * bootloader_utility_get_selected_boot_partition (:322-413) marks every PENDING_VERIFY entry ABORTED,
 * picks the valid entry with the highest sequence and turns NEW into PENDING_VERIFY (each an otadata
 * erase + write, :253-263); bootloader_utility_load_boot_image (:481-529) then tries that slot, then the
 * ones below it, then the ones above, and boots the first image that verifies (chip revision included).
 * With both entries blank it starts from ota_0 and writes seq = slot + 1, VALID (set_actual_ota_seq, :434). */
static int bootloader_select(host_device_t *d)
{
    host_otadata_t e[2];
    host_otadata_read(d->f, e);
    for (int i = 0; i < 2; i++) {
        if (e[i].state == BLE_OTA_IMG_PENDING_VERIFY) {
            e[i].state = BLE_OTA_IMG_ABORTED;
            host_otadata_write(d->f, i, &e[i]);
        }
    }
    int start = 0;
    bool initial = false;
    if (entry_invalid(&e[0]) && entry_invalid(&e[1])) {
        initial = (e[0].seq == 0xFFFFFFFFu || !entry_crc_ok(&e[0])) && (e[1].seq == 0xFFFFFFFFu || !entry_crc_ok(&e[1]));
    } else {
        int active = active_entry(e);
        if (active >= 0) {
            start = entry_slot(&e[active]);
            if (e[active].state == BLE_OTA_IMG_NEW) {
                e[active].state = BLE_OTA_IMG_PENDING_VERIFY;
                host_otadata_write(d->f, active, &e[active]);
            }
        }
    }
    int order[2] = {start, start == 0 ? 1 : -1}; /* down to 0 first, then up */
    if (start == 1) order[1] = 0;
    for (int k = 0; k < 2; k++) {
        int i = order[k];
        if (i < 0) continue;
        esp_image_info_t info;
        bool ok = slot_image_ok(d, i, &info);
        flash_event(d, "verify", verify_ms(slot_read_len(d, i, ok, &info))); /* every boot loads and verifies */
        if (!ok) continue;
        if (initial) write_entry(d, 0, (uint32_t)i + 1, BLE_OTA_IMG_VALID);
        return i;
    }
    return -1;
}

/* Reset to application start (lib/sim/device/machine.ts bootTimeMs, the same formula): HOST_BOOT_MS +
 * the bootloader's verification read of each image it loads (every boot: CONFIG_BOOTLOADER_SKIP_VALIDATE_*
 * default n, components/bootloader/Kconfig.projbuild:407-414) + its otadata writes + the running-app hash
 * and its NVS cache write when the cache does not name the app. Reported as one "boot" event. */
static bool boot(host_device_t *d)
{
    d->booting = true;
    d->boot_ms = HOST_BOOT_MS;
    d->running = bootloader_select(d);
    if (d->running >= 0) {
        esp_image_info_t info;
        uint8_t sha[32];
        slot_image_ok(d, d->running, &info);
        running_hash(d, &info, sha);
    }
    d->booting = false;
    flash_event(d, "boot", d->boot_ms);
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
    /* nimble_port_init, services, host task, advertising: the binding reports the stack up */
    if (!d->reboot_requested && !d->f->power_lost && !d->o.ble_fails) ble_ota_core_on_ble_ready();
    return true;
}

static void reboot_now(host_device_t *d, const char *reason, uint8_t reset_reason)
{
    host_event_t ev = {.type = HOST_EV_REBOOT, .text = reason};
    ble_ota_core_deinit();
    emit(d, &ev);
    d->reboot_requested = false;
    d->busy_until = 0;
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
        if (d->f->power_lost && d->f->cut_fired) { /* an armed cut: the simulator powers the device off */
            if (!d->cut_reported) {
                d->cut_reported = true;
                host_event_t ev = {.type = HOST_EV_CUT, .text = "cut"};
                emit(d, &ev);
            }
            return;
        }
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
    d->o.cfg.signed_images = d->o.cfg.signed_images || d->o.signed_required;
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
        /* as esptool leaves a device: the app in ota_0, otadata blank (the bootloader then writes seq 1) */
        host_flash_format(d->f);
        host_flash_erase(d->f, 0, 0, (uint32_t)((opts->running_image_len + HOST_SECTOR - 1) / HOST_SECTOR * HOST_SECTOR));
        host_flash_write(d->f, 0, 0, opts->running_image, opts->running_image_len);
    }
    d->f->on_op = on_flash_op;
    d->f->op_arg = d;
    if (opts->has_fleet_key) host_nvs_set(d->f, "fleet_key", opts->fleet_key, 32);
    if (opts->has_device_key) host_nvs_set(d->f, "device_key", opts->device_key, 32);
    if (opts->release_floor) {
        uint8_t floor[4] = {(uint8_t)opts->release_floor, (uint8_t)(opts->release_floor >> 8),
                            (uint8_t)(opts->release_floor >> 16), (uint8_t)(opts->release_floor >> 24)};
        host_nvs_set(d->f, "rel_floor", floor, sizeof floor);
    }
    for (int i = 0; i < 4; i++) {
        char name[] = "rel_key0";
        name[7] = (char)('0' + i);
        if (opts->release_key_mask & (1u << i)) host_nvs_set(d->f, name, opts->release_keys[i], 65);
    }
    d->f->nvs_entries = 0; /* provisioning is not the device's own NVS traffic (the model writes no key) */
    d->f->erase_ops = d->f->write_ops = 0;
    d->port = (ble_ota_port_t){
        .ctx = d, .lock = p_lock, .unlock = p_unlock, .writer_kick = p_writer_kick,
        .ota_target = p_ota_target, .ota_begin = p_ota_begin, .ota_write = p_ota_write, .ota_end = p_ota_end,
        .ota_abort = p_ota_abort, .base_read = p_base_read, .ota_erase_ahead = p_ota_erase_ahead, .ota_set_boot = p_ota_set_boot, .app_info = p_app_info, .app_state = p_app_state,
        .app_mark_valid = p_app_mark_valid, .app_rollback_possible = p_app_rollback_possible,
        .app_rollback_and_reboot = p_app_rollback_and_reboot, .restart = p_restart, .kv_get = p_kv_get,
        .kv_set = p_kv_set, .random = p_random, .digest_start = p_digest_start, .digest_update = p_digest_update,
        .digest_finish = p_digest_finish, .ecdsa_p256_verify = p_ecdsa_p256_verify,
        .provision_requested = p_provision_requested, .inflate_start = p_inflate_start, .inflate_step = p_inflate_step,
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
    ble_ota_core_on_data_len(conn, 251); /* simulated links use data length extension */
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
    /* The writer task wakes up when its flash work is over: idle erase-ahead (p_ota_erase_ahead). */
    if (!d->f->power_lost && !d->reboot_requested) {
        ble_ota_core_writer_run();
        settle(d);
    }
}

bool host_device_next_timer(const host_device_t *d, uint32_t *in_ms)
{
    if (!d->timer_armed) return false;
    int32_t left = (int32_t)(d->timer_deadline - d->now);
    *in_ms = left > 0 ? (uint32_t)left : 0;
    return true;
}

void host_device_power_loss(host_device_t *d)
{
    d->f->cut_fired = false;
    d->cut_reported = false;
    d->f->power_lost = true;
    settle(d);
}

void host_device_cut_power_after(host_device_t *d, long n) { d->f->cut_after = n; }

int host_device_install_other(host_device_t *d, const uint8_t *image, size_t len)
{
    const ble_ota_port_t *p = &d->port;
    if (p->ota_begin(p->ctx, (uint32_t)len) != 0) return -1;
    for (size_t off = 0; off < len; off += 4096) {
        size_t n = len - off < 4096 ? len - off : 4096;
        if (p->ota_write(p->ctx, (uint32_t)off, image + off, n) != 0) return -1;
    }
    if (p->ota_end(p->ctx) != BLE_OTA_END_OK || p->ota_set_boot(p->ctx) != 0) return -1;
    request_reboot(d, "restart");
    settle(d);
    return 0;
}

void host_device_erase_nvs(host_device_t *d)
{
    host_nvs_erase_all(d->f);
    request_reboot(d, "restart");
    settle(d);
}

host_flash_t *host_device_flash(host_device_t *d) { return d->f; }
void host_device_set_provision_button(host_device_t *d, bool pressed) { d->o.provision_button = pressed; }
const ble_ota_port_t *host_device_port(const host_device_t *d) { return &d->port; }
int host_device_running(const host_device_t *d) { return d->running; }
unsigned host_device_boots(const host_device_t *d) { return d->boots; }
