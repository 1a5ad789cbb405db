/* Simulated flash + NVS for the host port; see host_flash.h. */
#include "host_flash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLASH_MAGIC 0x4154444Fu /* "OTDA": header sector of flash.bin */
#define OTADATA_AT HOST_SECTOR /* otadata sector i at OTADATA_AT + i * HOST_SECTOR */
#define APPS_AT (3 * HOST_SECTOR)

#include <zlib.h>

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static size_t flash_len(const host_flash_t *f) { return APPS_AT + 2 * (size_t)f->psize; }

static char *path_in(const host_flash_t *f, const char *name)
{
    size_t n = strlen(f->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", f->dir, name);
    return p;
}

/* Mirror a range of the in-memory flash to flash.bin. */
static void persist_range(host_flash_t *f, size_t offset, size_t len)
{
    if (!f->dir) return;
    if (f->fd < 0) { /* kept open: one write per flash operation (the campaign reads the file meanwhile) */
        char *p = path_in(f, "flash.bin");
        f->fd = open(p, O_WRONLY | O_CREAT, 0644);
        free(p);
        if (f->fd < 0) return;
    }
    if (pwrite(f->fd, f->mem + offset, len, (off_t)offset) != (ssize_t)len) perror("flash.bin");
}

static void load_nvs(host_flash_t *f)
{
    char *p = path_in(f, "nvs.bin");
    FILE *fp = fopen(p, "rb");
    free(p);
    if (!fp) return;
    host_nvs_entry_t e;
    uint8_t klen;
    while (f->nvs_count < HOST_NVS_MAX_KEYS && fread(&klen, 1, 1, fp) == 1 && klen < sizeof e.key) {
        memset(&e, 0, sizeof e);
        if (fread(e.key, 1, klen, fp) != klen || fread(&e.len, 1, 1, fp) != 1 || e.len > HOST_NVS_MAX_VALUE ||
            fread(e.value, 1, e.len, fp) != e.len)
            break;
        f->nvs[f->nvs_count++] = e;
    }
    fclose(fp);
}

host_flash_t *host_flash_open(const char *dir, uint32_t psize)
{
    host_flash_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->cut_after = -1;
    f->fd = -1;
    f->psize = psize;
    if (dir) {
        f->dir = strdup(dir);
        mkdir(dir, 0755);
        char *p = path_in(f, "flash.bin");
        FILE *fp = fopen(p, "rb");
        free(p);
        if (fp) {
            uint8_t head[8];
            if (fread(head, 1, 8, fp) == 8 && get32(head) == FLASH_MAGIC) f->psize = get32(head + 4);
            fclose(fp);
        }
    }
    f->mem = malloc(flash_len(f));
    if (!f->mem) {
        host_flash_close(f);
        return NULL;
    }
    memset(f->mem, 0xFF, flash_len(f));
    if (f->dir) {
        char *p = path_in(f, "flash.bin");
        FILE *fp = fopen(p, "rb");
        free(p);
        if (fp) {
            size_t got = fread(f->mem, 1, flash_len(f), fp);
            (void)got;
            fclose(fp);
        }
        load_nvs(f);
    }
    return f;
}

void host_flash_close(host_flash_t *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    free(f->dir);
    free(f->mem);
    free(f);
}

bool host_flash_is_new(const host_flash_t *f) { return get32(f->mem) != FLASH_MAGIC; }

void host_flash_format(host_flash_t *f)
{
    memset(f->mem, 0xFF, HOST_SECTOR);
    put32(f->mem, FLASH_MAGIC);
    put32(f->mem + 4, f->psize);
    persist_range(f, 0, HOST_SECTOR);
}

uint8_t *host_flash_partition(host_flash_t *f, int index) { return f->mem + APPS_AT + (size_t)index * f->psize; }

bool host_flash_op(host_flash_t *f)
{
    if (f->power_lost) return false;
    if (f->cut_after == 0) {
        f->power_lost = true;
        f->cut_op = f->attempt;
        return false;
    }
    if (f->cut_after > 0) f->cut_after--;
    f->ops_total++;
    return true;
}

static void report(host_flash_t *f, host_op_kind_t kind, uint32_t bytes, double ms)
{
    if (f->on_op) f->on_op(f->op_arg, kind, bytes, ms);
}

/* A program of len bytes: charged by bytes at the page rate (host_flash.h). */
static double program_ms(size_t len) { return (double)len * HOST_PAGE_PROGRAM_MS / HOST_PAGE; }

/* esp_partition_write: one report per HOST_WRITE_CHUNK window. */
static void report_program(host_flash_t *f, host_op_kind_t kind, size_t len)
{
    for (size_t at = 0; at < len; at += HOST_WRITE_CHUNK) {
        size_t n = len - at < HOST_WRITE_CHUNK ? len - at : HOST_WRITE_CHUNK;
        report(f, kind, (uint32_t)n, program_ms(n));
    }
}

double host_verify_ms(size_t bytes) { return (double)bytes / HOST_VERIFY_BYTES_PER_MS; }
double host_read_ms(size_t bytes) { return HOST_READ_CALL_MS + (double)bytes / HOST_VERIFY_BYTES_PER_MS; }

/* The armed app-partition faults (host_flash.h): -1 the operation fails, power on; 0 power is lost at it
 * (*land bytes of a program land); 1 it happens. */
static int app_fault_gate(host_flash_t *f, size_t len, size_t *land)
{
    *land = 0;
    if (f->power_lost) return 0;
    f->app_ops++;
    if (f->app_fail_at && f->app_ops == f->app_fail_at) {
        f->app_fail_at = 0;
        return -1;
    }
    if (f->app_cut_at && f->app_ops == f->app_cut_at) {
        f->app_cut_at = 0;
        f->power_lost = true;
        f->cut_fired = true;
        f->cut_op = f->attempt;
        *land = f->torn_bytes < len ? f->torn_bytes : len;
        return 0;
    }
    return 1;
}

int host_flash_erase(host_flash_t *f, int index, uint32_t offset, uint32_t len)
{
    if (f->fail_writes) return -1;
    if (offset % HOST_SECTOR || len % HOST_SECTOR || offset + (uint64_t)len > f->psize) return -1;
    f->attempt = HOST_OP_ERASE;
    size_t land;
    int gate = app_fault_gate(f, 0, &land); /* an interrupted erase erases nothing (pessimistic, flash-faults.ts) */
    if (gate < 0) return -1;
    if (gate == 0) return 0;
    if (!host_flash_op(f)) return 0; /* power is gone: nothing happens, nobody is left to notice */
    f->erase_ops++;
    size_t at = APPS_AT + (size_t)index * f->psize + offset;
    memset(f->mem + at, 0xFF, len);
    persist_range(f, at, len);
    /* esp_flash_erase_region: one command (and cache-disabled window) per 64 KiB block where aligned and
     * wholly inside, else per 4 KiB sector (esp_flash_api.c:657-690) */
    while (len > 0) {
        uint32_t step = offset % HOST_BLOCK == 0 && len >= HOST_BLOCK ? HOST_BLOCK : HOST_SECTOR;
        report(f, HOST_OP_ERASE, step, step == HOST_BLOCK ? HOST_BLOCK_ERASE_MS : HOST_SECTOR_ERASE_MS);
        offset += step;
        len -= step;
    }
    return 0;
}

int host_flash_write(host_flash_t *f, int index, uint32_t offset, const uint8_t *data, size_t len)
{
    if (f->fail_writes) return -1;
    if (offset + (uint64_t)len > f->psize) return -1;
    f->attempt = HOST_OP_PROGRAM;
    size_t land;
    int gate = app_fault_gate(f, len, &land);
    if (gate < 0) return -1;
    if (gate == 0) len = land; /* a torn write: its first bytes land, then the power is gone */
    else if (!host_flash_op(f)) return 0;
    if (len == 0) return 0;
    f->write_ops++;
    size_t at = APPS_AT + (size_t)index * f->psize + offset;
    for (size_t i = 0; i < len; i++) f->mem[at + i] &= data[i]; /* NOR: bits only go 1 -> 0 */
    persist_range(f, at, len);
    report_program(f, HOST_OP_PROGRAM, len);
    return 0;
}

uint32_t host_otadata_crc(uint32_t seq)
{
    uint8_t b[4];
    put32(b, seq);
    return (uint32_t)crc32(0, b, 4);
}

void host_otadata_read(const host_flash_t *f, host_otadata_t out[2])
{
    for (int i = 0; i < 2; i++) {
        const uint8_t *o = f->mem + OTADATA_AT + (size_t)i * HOST_SECTOR;
        out[i].seq = get32(o);
        out[i].state = get32(o + 24); /* after ota_seq and seq_label[20] */
        out[i].crc = get32(o + 28);
    }
}

int host_otadata_write(host_flash_t *f, int i, const host_otadata_t *e)
{
    if (f->fail_otadata || f->fail_writes) return -1;
    uint8_t *o = f->mem + OTADATA_AT + (size_t)i * HOST_SECTOR;
    f->attempt = HOST_OP_OTADATA;
    if (!host_flash_op(f)) return 0;
    memset(o, 0xFF, HOST_SECTOR);
    persist_range(f, OTADATA_AT + (size_t)i * HOST_SECTOR, HOST_SECTOR);
    report(f, HOST_OP_OTADATA, HOST_SECTOR, HOST_SECTOR_ERASE_MS);
    /* rewrite_ota_seq (esp_ota_ops.c:364-378) returns the error of the entry's esp_partition_write */
    if (f->otadata_fail_in && --f->otadata_fail_in == 0) return -1;
    if (!host_flash_op(f)) return 0;
    uint8_t entry[32];
    memset(entry, 0xFF, sizeof entry);
    put32(entry, e->seq);
    put32(entry + 24, e->state);
    put32(entry + 28, e->crc);
    for (size_t k = 0; k < sizeof entry; k++) o[k] &= entry[k];
    persist_range(f, OTADATA_AT + (size_t)i * HOST_SECTOR, sizeof entry);
    report(f, HOST_OP_OTADATA, sizeof entry, program_ms(sizeof entry));
    return 0;
}

static int save_nvs(host_flash_t *f)
{
    if (!f->dir) return 0;
    char *p = path_in(f, "nvs.bin"), *tmp = path_in(f, "nvs.bin.tmp");
    FILE *fp = p && tmp ? fopen(tmp, "wb") : NULL;
    int rc = fp ? 0 : -1;
    for (unsigned i = 0; fp && i < f->nvs_count; i++) {
        uint8_t klen = (uint8_t)strlen(f->nvs[i].key);
        fwrite(&klen, 1, 1, fp);
        fwrite(f->nvs[i].key, 1, klen, fp);
        fwrite(&f->nvs[i].len, 1, 1, fp);
        fwrite(f->nvs[i].value, 1, f->nvs[i].len, fp);
    }
    if (fp && (fclose(fp) != 0 || rename(tmp, p) != 0)) rc = -1;
    free(p);
    free(tmp);
    return rc;
}

int host_nvs_get(host_flash_t *f, const char *key, void *buf, size_t *len)
{
    for (unsigned i = 0; i < f->nvs_count; i++) {
        if (strcmp(f->nvs[i].key, key) != 0) continue;
        size_t n = f->nvs[i].len < *len ? f->nvs[i].len : *len;
        memcpy(buf, f->nvs[i].value, n);
        *len = f->nvs[i].len;
        return 0;
    }
    return -1;
}

int host_nvs_set(host_flash_t *f, const char *key, const void *buf, size_t len)
{
    if (len > HOST_NVS_MAX_VALUE || strlen(key) >= sizeof f->nvs[0].key) return -1;
    /* nvs_set_blob / nvs_commit return the flash error; the previous value stays (nvs_flash.rst:158) */
    if (!f->power_lost && f->nvs_fail_in && --f->nvs_fail_in == 0) return -1;
    f->attempt = HOST_OP_NVS;
    if (!host_flash_op(f)) return 0;
    unsigned i = 0;
    while (i < f->nvs_count && strcmp(f->nvs[i].key, key) != 0) i++;
    if (i == f->nvs_count) {
        if (f->nvs_count == HOST_NVS_MAX_KEYS) return -1;
        f->nvs_count++;
        memset(&f->nvs[i], 0, sizeof f->nvs[i]);
        snprintf(f->nvs[i].key, sizeof f->nvs[i].key, "%s", key);
    }
    f->nvs[i].len = (uint8_t)len;
    memcpy(f->nvs[i].value, buf, len);
    /* nvs_set_blob + nvs_commit: a page that fills is reclaimed (an erase), then the data item (a header
     * entry + the data entries), the blob index entry and two 4-byte state-bitmap updates */
    unsigned long entries = 1 + (len + HOST_NVS_ENTRY - 1) / HOST_NVS_ENTRY + 1;
    if ((f->nvs_entries + entries) / HOST_NVS_ENTRIES_PER_PAGE != f->nvs_entries / HOST_NVS_ENTRIES_PER_PAGE)
        report(f, HOST_OP_ERASE, HOST_SECTOR, HOST_SECTOR_ERASE_MS);
    f->nvs_entries += entries;
    const size_t writes[4] = {(entries - 1) * HOST_NVS_ENTRY, HOST_NVS_ENTRY, 4, 4};
    for (int k = 0; k < 4; k++) report_program(f, HOST_OP_NVS, writes[k]);
    return save_nvs(f);
}

void host_nvs_erase_all(host_flash_t *f)
{
    f->nvs_count = 0;
    f->nvs_entries = 0;
    save_nvs(f);
}
