/* Random bytes (hardware RNG), SHA-256 / HMAC-SHA256 through Mbed TLS's md API (hardware SHA on ESP32) and
 * the ECDSA P-256 verify of release manifests (Mbed TLS ecdsa/ecp: the ECC peripheral where the chip has
 * one and CONFIG_MBEDTLS_HARDWARE_ECC is on, software otherwise). */
#include <stdlib.h>
#include <string.h>
#include "esp_random.h"
#include "mbedtls/bignum.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
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

/* Public Mbed TLS 3.x functions only (no MBEDTLS_PRIVATE members): group, point and r/s as separate objects. */
static int ecdsa_p256_verify(void *ctx, const uint8_t pubkey[65], const uint8_t hash[32], const uint8_t sig[64])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0) {
        rc = mbedtls_ecp_point_read_binary(&grp, &q, pubkey, 65);
    }
    if (rc == 0) {
        rc = mbedtls_ecp_check_pubkey(&grp, &q);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary(&r, sig, 32);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary(&s, sig + 32, 32);
    }
    if (rc == 0) {
        rc = mbedtls_ecdsa_verify(&grp, hash, 32, &q, &r, &s);
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc == 0 ? 0 : -1;
}

void ble_ota_esp_crypto_fill(ble_ota_port_t *port)
{
    port->ecdsa_p256_verify = ecdsa_p256_verify;
    port->random = fill_random;
    port->digest_start = digest_start;
    port->digest_update = digest_update;
    port->digest_finish = digest_finish;
}
