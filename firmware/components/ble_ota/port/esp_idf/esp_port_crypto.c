/* Random bytes (hardware RNG) and SHA-256 / HMAC-SHA256 through Mbed TLS's md API (hardware SHA on ESP32). */
#include <stdlib.h>
#include <string.h>
#include "esp_random.h"
#include "mbedtls/md.h"
#include "esp_port_priv.h"

typedef struct {
    mbedtls_md_context_t md;
    bool hmac;
} digest_t;

static void fill_random(void *ctx, uint8_t *buf, size_t len)
{
    /* True random while the radio runs (BLE is on whenever the core is). */
    esp_fill_random(buf, len);
}

static void *digest_start(void *ctx, const uint8_t *key, size_t key_len)
{
    digest_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    d->hmac = key != NULL;
    mbedtls_md_init(&d->md);
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    int rc = mbedtls_md_setup(&d->md, info, d->hmac ? 1 : 0);
    if (rc == 0) {
        rc = d->hmac ? mbedtls_md_hmac_starts(&d->md, key, key_len) : mbedtls_md_starts(&d->md);
    }
    if (rc != 0) {
        mbedtls_md_free(&d->md);
        free(d);
        return NULL;
    }
    return d;
}

static void digest_update(void *ctx, void *handle, const uint8_t *data, size_t len)
{
    digest_t *d = handle;
    if (d->hmac) {
        mbedtls_md_hmac_update(&d->md, data, len);
    } else {
        mbedtls_md_update(&d->md, data, len);
    }
}

static void digest_finish(void *ctx, void *handle, uint8_t out[32])
{
    digest_t *d = handle;
    uint8_t result[32];
    int rc = d->hmac ? mbedtls_md_hmac_finish(&d->md, result) : mbedtls_md_finish(&d->md, result);
    if (out != NULL) {
        if (rc == 0) {
            memcpy(out, result, sizeof(result));
        } else {
            /* A failed hash must never match an announced digest or a tag by accident. */
            esp_fill_random(out, 32);
        }
    }
    mbedtls_md_free(&d->md);
    free(d);
}

void ble_ota_esp_crypto_fill(ble_ota_port_t *port)
{
    port->random = fill_random;
    port->digest_start = digest_start;
    port->digest_update = digest_update;
    port->digest_finish = digest_finish;
}
