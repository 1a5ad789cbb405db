/* Small SHA-256 / HMAC-SHA256 (FIPS 180-4, RFC 2104) for the host port; no external library. */
#ifndef HOST_SHA256_H
#define HOST_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t used;
} sha256_ctx_t;

void sha256_init(sha256_ctx_t *c);
void sha256_update(sha256_ctx_t *c, const uint8_t *data, size_t len);
void sha256_final(sha256_ctx_t *c, uint8_t out[32]);
void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

typedef struct {
    sha256_ctx_t inner;
    uint8_t opad_key[64];
} hmac_sha256_ctx_t;

void hmac_sha256_init(hmac_sha256_ctx_t *c, const uint8_t *key, size_t key_len);
void hmac_sha256_update(hmac_sha256_ctx_t *c, const uint8_t *data, size_t len);
void hmac_sha256_final(hmac_sha256_ctx_t *c, uint8_t out[32]);

#endif
