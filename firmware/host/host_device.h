/*
 * A simulated device on the host: the portable core + the host port (host_flash storage, zlib inflate,
 * own SHA-256, virtual clock). The writer runs synchronously after every event; reboots (END, ROLLBACK,
 * REBOOT, diagnostics failure) and power loss re-run the simulated bootloader and ble_ota_core_init.
 * The core is a singleton, so only one host_device exists at a time.
 */
#ifndef HOST_DEVICE_H
#define HOST_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ble_ota_core.h"
#include "host_flash.h"

/* HOST_EV_FLASH: a flash operation or other modeled busy time; text = "erase" | "program" (the BLE host
 * task stalls for ms: the cache is off) | "crypto" (BEGIN's manifest check: SHA-256 + ECDSA P-256 verify
 * computed in the BLE host task, which is busy for ms) | "verify" (esp_ota_end / set boot read the image: the writer is
 * busy, BLE is not) | "boot" (reset to application start: HOST_BOOT_MS + the boot's verification reads and
 * flash writes, which are not reported on their own). */
/* HOST_EV_CUT: an armed power cut (host_flash_t app_cut_at) hit; the device stays off-line and does nothing
 * more until host_device_power_loss (the simulator's power-off) reboots it. */
typedef enum { HOST_EV_NOTIFY, HOST_EV_REBOOT, HOST_EV_LOG, HOST_EV_FLASH, HOST_EV_CUT } host_event_type_t;

typedef struct {
    host_event_type_t type;
    ble_ota_conn_t conn;
    ble_ota_chr_t chr;
    const uint8_t *data;
    size_t len;
    const char *text; /* reboot reason / log line / flash operation */
    double ms;        /* HOST_EV_FLASH: modeled duration */
} host_event_t;

typedef void (*host_event_fn)(void *arg, const host_event_t *ev);

typedef struct {
    const char *state_dir;          /* NULL: memory only */
    uint16_t chip_id;
    const uint8_t *running_image;   /* installed into ota_0 on the first start */
    size_t running_image_len;
    uint32_t partition_size;        /* default 0x1E0000 */
    bool has_fleet_key;
    uint8_t fleet_key[32];          /* provisioned as NVS fleet_key (legacy shared key) */
    bool has_device_key;
    uint8_t device_key[32];         /* provisioned as NVS device_key (per-device session key) */
    uint8_t release_keys[4][65];    /* provisioned as NVS rel_key<i> when release_key_mask bit i */
    uint8_t release_key_mask;
    uint8_t device_id[6];           /* esp_read_mac(ESP_MAC_BASE) of the simulated chip */
    bool provision_button;          /* the provisioning action is done at every boot */
    bool signed_required;           /* CONFIG_SECURE_SIGNED_ON_UPDATE: esp_ota_end wants a signature block */
    uint32_t release_floor;         /* provisioned as NVS rel_floor when non-zero */
    ble_ota_config_t cfg;           /* ble_ota_config_default() when zeroed (window == 0) */
    bool diagnostics_fail;
    bool ble_fails;                 /* the BLE stack never comes up (no ble_ota_core_on_ble_ready) */
    uint16_t chip_rev;              /* efuse chip revision, major * 100 + minor */
    /* The core's clock includes the flash work reported so far (the twin binary): a reboot delay or
     * timeout armed after flash work counts from its end, as on the device where the writer task arms
     * it once that work is done. false (the host tests): the clock moves only with host_device_tick. */
    bool flash_time_is_device_time;
    host_event_fn on_event;
    void *event_arg;
} host_device_opts_t;

typedef struct host_device host_device_t;

/** Open storage, install the running image on a fresh state, boot. NULL with a message on stderr. */
host_device_t *host_device_create(const host_device_opts_t *opts);
void host_device_destroy(host_device_t *d);

void host_device_connect(host_device_t *d, ble_ota_conn_t conn, uint16_t mtu);
void host_device_disconnect(host_device_t *d, ble_ota_conn_t conn);
/** Returns the ATT status (0 = success). */
int host_device_control(host_device_t *d, ble_ota_conn_t conn, const uint8_t *data, size_t len);
/** run_writer false leaves the bytes in the ring (tests of the window). */
void host_device_data(host_device_t *d, ble_ota_conn_t conn, const uint8_t *data, size_t len, bool run_writer);
void host_device_run_writer(host_device_t *d);
/** Let ms of device time pass: timers fire (resume timeout, delayed reboot). */
void host_device_tick(host_device_t *d, uint32_t ms);
/** Whether the core has a timer armed; *in_ms: device time until it fires (0: due now). */
bool host_device_next_timer(const host_device_t *d, uint32_t *in_ms);
/** Power cut now: RAM lost, flash + NVS kept; boots again. */
void host_device_power_loss(host_device_t *d);
/** Schedule a power cut after n more mutating flash/NVS operations (the device reboots after the event
 *  that hit it). */
void host_device_cut_power_after(host_device_t *d, long n);

/** Install image into the other slot the way another installer does (seed firmware, Wi-Fi OTA:
 *  esp_ota_begin/write/end + esp_ota_set_boot_partition, no record of ours), then restart. 0 on success. */
int host_device_install_other(host_device_t *d, const uint8_t *image, size_t len);
/** nvs_flash_erase(): every key gone (the fleet key too), then a restart. */
void host_device_erase_nvs(host_device_t *d);
/** The fixed part of a boot (ROM, bootloader, app start, NimBLE up), without flash work: the device
 *  model's BOOT_TIME_MS (lib/sim/device/machine.ts). The "boot" event adds the boot's flash work to it. */
#define HOST_BOOT_MS 300.0

host_flash_t *host_device_flash(host_device_t *d);
/** Whether the provisioning action is done at the next boots. */
void host_device_set_provision_button(host_device_t *d, bool pressed);
/** Modeled duration of BEGIN's manifest check (SHA-256 + ECDSA P-256 verify) on chip_id, ms. */
double host_manifest_check_ms(uint16_t chip_id);
/** The host port's ECDSA P-256 verify (mbedTLS): 0 when sig (r || s) is valid for hash under pubkey (SEC1). */
int host_ecdsa_p256_verify(const uint8_t pubkey[65], const uint8_t hash[32], const uint8_t sig[64]);
/** The host port table (tests call its esp_ota_*-like functions directly). */
const ble_ota_port_t *host_device_port(const host_device_t *d);
/** Index (0/1) of the partition running now. */
int host_device_running(const host_device_t *d);
unsigned host_device_boots(const host_device_t *d);

#endif
