/*
 * Simulated device storage: two OTA app partitions + otadata (boot selection and image states) in
 * flash.bin, and NVS key/values in nvs.bin, in a state directory (or in memory only). NOR semantics:
 * erase sets 0xFF, writes can only clear bits. A power cut can be scheduled after N mutating operations:
 * from then on nothing reaches flash (RAM state is lost by the device on the following boot).
 */
#ifndef HOST_FLASH_H
#define HOST_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_SECTOR 4096
#define HOST_NVS_MAX_KEYS 16
#define HOST_NVS_MAX_VALUE 128

typedef struct {
    uint32_t seq;  /* 0 = never selected */
    uint8_t state; /* ble_ota_img_state_t */
} host_slot_t;

typedef struct {
    char key[16];
    uint8_t len;
    uint8_t value[HOST_NVS_MAX_VALUE];
} host_nvs_entry_t;

typedef struct {
    char *dir;                 /* NULL: memory only */
    uint32_t psize;            /* bytes per app partition */
    uint8_t *mem;              /* otadata sector + ota_0 + ota_1 */
    host_slot_t slots[2];
    host_nvs_entry_t nvs[HOST_NVS_MAX_KEYS];
    unsigned nvs_count;
    long cut_after;            /* mutating ops left before the power cut; -1 never */
    bool power_lost;
    bool fail_writes;          /* fault injection: every flash write/erase fails */
    bool fail_otadata;         /* fault injection: otadata writes fail (esp_ota_set_boot_partition) */
    unsigned erase_ops, write_ops;
    unsigned long ops_total;   /* mutating operations that reached flash/NVS */
} host_flash_t;

/** Open (or create) the storage. psize is used when creating; an existing flash.bin keeps its own. */
host_flash_t *host_flash_open(const char *dir, uint32_t psize);
void host_flash_close(host_flash_t *f);
bool host_flash_is_new(const host_flash_t *f); /* no app was ever installed */

uint8_t *host_flash_partition(host_flash_t *f, int index);
/** One mutating operation may happen (power on, not cut yet); counts it. */
bool host_flash_op(host_flash_t *f);
int host_flash_erase(host_flash_t *f, int index, uint32_t offset, uint32_t len);
int host_flash_write(host_flash_t *f, int index, uint32_t offset, const uint8_t *data, size_t len);
int host_flash_save_otadata(host_flash_t *f);

int host_nvs_get(host_flash_t *f, const char *key, void *buf, size_t *len);
int host_nvs_set(host_flash_t *f, const char *key, const void *buf, size_t len);

#endif
