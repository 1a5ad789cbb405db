/*
 * Simulated device storage: otadata (two sectors, one esp_ota_select_entry_t each, as ESP-IDF keeps
 * them) + two OTA app partitions in flash.bin, and NVS key/values in nvs.bin, in a state directory (or in
 * memory only). NOR semantics: erase sets 0xFF, writes can only clear bits. A power cut can be scheduled
 * after N mutating operations: from then on nothing reaches flash (RAM state is lost by the device on the
 * following boot). Every mutating operation reports its modeled duration (W25Q32-class timing, the same
 * figures as lib/sim/device/flash-timing.ts) to on_op, so the twin can stall the device's BLE host.
 */
#ifndef HOST_FLASH_H
#define HOST_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_SECTOR 4096
#define HOST_BLOCK 65536
#define HOST_PAGE 256
#define HOST_NVS_MAX_KEYS 16
#define HOST_NVS_MAX_VALUE 128

/* W25Q32-class typical times (datasheet; lib/sim/device/flash-timing.ts uses the same). A program is
 * charged by its bytes at the page rate (0.4 ms per 256 B), whatever its alignment: where ESP-IDF's
 * 64-byte commands split depends on the pieces the writer takes, i.e. on task scheduling. */
#define HOST_SECTOR_ERASE_MS 45.0
#define HOST_BLOCK_ERASE_MS 150.0
#define HOST_PAGE_PROGRAM_MS 0.4
/* esp_flash_write: one cache-disabled window per CONFIG_SPI_FLASH_WRITE_CHUNK_SIZE (default 8192,
 * components/spi_flash/Kconfig:282-284, esp_flash_api.c:1061-1100): one reported operation each. */
#define HOST_WRITE_CHUNK 8192
/* Whole-image verification reads (esp_image_verify, esp_partition_get_sha256), bytes per ms: ESP-IDF's
 * CI floor for 2 KB reads of the main flash, the lower of ESP32-C3 (6536 * 1000 B/s, LEGACY_RD_2KB, v4.4
 * components/idf_test/include/esp32c3/idf_performance_target.h:50) and ESP32 (6650 * 1000 B/s, RD_2KB,
 * v4.4 components/idf_test/include/esp32/idf_performance_target.h:74); the device model uses the same. */
#define HOST_VERIFY_BYTES_PER_MS 6536.0
/* NVS: 32-byte entries, 126 per 4 KiB page (nvs_flash.rst:200-202, 236); a page that fills costs a
 * sector erase (lib/sim/device/flash-work.ts nvsWriteMs, the same rule). */
#define HOST_NVS_ENTRY 32
#define HOST_NVS_ENTRIES_PER_PAGE 126

/** esp_ota_select_entry_t (esp_flash_partitions.h): 32 bytes at the start of each otadata sector. */
typedef struct {
    uint32_t seq;   /* 0xFFFFFFFF: blank */
    uint32_t state; /* esp_ota_img_states_t; 0xFFFFFFFF = ESP_OTA_IMG_UNDEFINED */
    uint32_t crc;   /* over seq (bootloader_common_ota_select_crc) */
} host_otadata_t;

#define HOST_OTA_STATE_UNDEFINED 0xFFFFFFFFu

typedef struct {
    char key[16];
    uint8_t len;
    uint8_t value[HOST_NVS_MAX_VALUE];
} host_nvs_entry_t;

typedef enum { HOST_OP_ERASE, HOST_OP_PROGRAM, HOST_OP_OTADATA, HOST_OP_NVS } host_op_kind_t;

typedef void (*host_op_fn)(void *arg, host_op_kind_t kind, uint32_t bytes, double ms);

typedef struct {
    char *dir;                 /* NULL: memory only */
    int fd;                    /* flash.bin, opened at the first write (-1: not yet) */
    uint32_t psize;            /* bytes per app partition */
    uint8_t *mem;              /* header sector + 2 otadata sectors + ota_0 + ota_1 */
    host_nvs_entry_t nvs[HOST_NVS_MAX_KEYS];
    unsigned nvs_count;
    long cut_after;            /* mutating ops left before the power cut; -1 never */
    bool power_lost;
    bool fail_writes;          /* fault injection: every flash write/erase fails */
    bool fail_otadata;         /* fault injection: otadata writes fail (esp_ota_set_boot_partition) */
    unsigned erase_ops, write_ops;
    unsigned long ops_total;   /* mutating operations that reached flash/NVS */
    unsigned long nvs_entries; /* NVS entries written since the namespace was last erased (page erases) */
    host_op_kind_t attempt;    /* kind of the operation being attempted */
    host_op_kind_t cut_op;     /* kind of the operation the power cut hit */
    host_op_fn on_op;
    void *op_arg;
    /* Faults the simulator arms (twin "fault" request, docs/FAULTS.md), app-partition operations counted
     * over both slots, one per host_flash_erase / host_flash_write call (0: not armed): */
    unsigned long app_ops;     /* erase/program calls on the app partitions while powered */
    unsigned long app_cut_at;  /* power is lost at this one: it does not land (a program: torn_bytes do) */
    uint32_t torn_bytes;
    bool cut_fired;            /* app_cut_at hit; cleared by whoever powers the device off */
    unsigned long app_fail_at; /* this one returns an error, power stays on (ESP_ERR_FLASH_OP_FAIL) */
    unsigned otadata_fail_in;  /* the n-th otadata write from now fails: its erase lands, the entry does not */
    unsigned nvs_fail_in;      /* the n-th NVS write from now fails: nothing changes (NVS keeps the old value) */
    unsigned diag_cut_in;      /* power is lost during the n-th first-boot diagnostics from now (host_device.c) */
} host_flash_t;

/** Open (or create) the storage. psize is used when creating; an existing flash.bin keeps its own. */
host_flash_t *host_flash_open(const char *dir, uint32_t psize);
void host_flash_close(host_flash_t *f);
bool host_flash_is_new(const host_flash_t *f); /* the storage was never formatted */
/** Mark the storage formatted (first start, after the running image was installed). */
void host_flash_format(host_flash_t *f);

uint8_t *host_flash_partition(host_flash_t *f, int index);
/** One mutating operation may happen (power on, not cut yet); counts it. */
bool host_flash_op(host_flash_t *f);
/** Erase [offset, offset+len) of app partition index: one operation, 64 KiB blocks where aligned. */
int host_flash_erase(host_flash_t *f, int index, uint32_t offset, uint32_t len);
int host_flash_write(host_flash_t *f, int index, uint32_t offset, const uint8_t *data, size_t len);

/** Both otadata entries as stored (a blank or half-written sector reads as all 0xFF). */
void host_otadata_read(const host_flash_t *f, host_otadata_t out[2]);
/** ESP-IDF's write_otadata / rewrite_ota_seq: erase sector i (one operation), then write the entry
 *  (another operation); a power cut between the two leaves the sector blank. */
int host_otadata_write(host_flash_t *f, int i, const host_otadata_t *e);
uint32_t host_otadata_crc(uint32_t seq);

int host_nvs_get(host_flash_t *f, const char *key, void *buf, size_t *len);
/** Store and commit: one operation (the entry reaches flash whole or not at all, as NVS guarantees),
 *  reported as the writes of the blob entries, the index entry and two 4-byte state updates. */
int host_nvs_set(host_flash_t *f, const char *key, const void *buf, size_t len);
/** nvs_flash_erase: every key gone (the tests' "NVS erased"). */
void host_nvs_erase_all(host_flash_t *f);
/** Time of a whole-image verification read of bytes. */
double host_verify_ms(size_t bytes);
/* One esp_partition_read call (delta base bytes): a fixed cost per call, taken pessimistically from the
 * slowest CI floor for 4-byte reads, ESP32 35200 B/s (RD_4B, v4.4 components/idf_test/include/esp32/
 * idf_performance_target.h:68; ESP32-C3 179000 B/s, LEGACY_RD_4B, v4.4 .../esp32c3/...:44), i.e. 4 / 35.2
 * ms per call, plus the bytes at the 2 KB read rate above. The cache is off meanwhile (esp_flash_read). */
#define HOST_READ_CALL_MS (4.0 / 35.2)
/** Time of one base read of bytes. */
double host_read_ms(size_t bytes);

#endif
