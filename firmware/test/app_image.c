/* Synthetic app images for the host tests; layout from ../shared/vectors/SOURCES.md. */
#include "app_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Checksum position and final length for an image whose segments end at pos. */
static size_t seal(uint8_t *img, size_t pos)
{
    uint8_t cs = 0xEF;
    size_t p = 24;
    for (unsigned s = 0; s < img[1]; s++) {
        uint32_t n = get32(img + p + 4);
        for (uint32_t i = 0; i < n; i++) cs ^= img[p + 8 + i];
        p += 8 + n;
    }
    (void)pos;
    size_t at = p + (15 - p % 16);
    memset(img + p, 0, at - p);
    img[at] = cs;
    sha256(img, at + 1, img + at + 1);
    return at + 1 + 32;
}

uint8_t *app_image_build(const app_image_spec_t *spec, size_t *len)
{
    size_t total = spec->size < 1024 ? 1024 : spec->size;
    size_t seg2 = (total - 24 - 8 - 256 - 8 - 64) & ~(size_t)3;
    uint8_t *img = calloc(1, total + 256);
    if (!img) return NULL;
    img[0] = 0xE9;
    img[1] = 2; /* segments: DROM with the app descriptor, then code */
    img[2] = 2;
    img[3] = 0x20;
    put32(img + 4, 0x40080000);
    img[12] = (uint8_t)spec->chip_id;
    img[13] = (uint8_t)(spec->chip_id >> 8);
    img[15] = (uint8_t)spec->min_chip_rev_full;
    img[16] = (uint8_t)(spec->min_chip_rev_full >> 8);
    img[17] = (uint8_t)spec->max_chip_rev_full;
    img[18] = (uint8_t)(spec->max_chip_rev_full >> 8);
    img[23] = 1; /* hash appended */
    uint8_t *s1 = img + 24;
    put32(s1, 0x3f400020);
    put32(s1 + 4, 256);
    uint8_t *desc = s1 + 8;
    put32(desc, 0xABCD5432);
    put32(desc + 4, spec->secure_version);
    snprintf((char *)desc + 16, 32, "%s", spec->version);
    snprintf((char *)desc + 48, 32, "%s", spec->project_name ? spec->project_name : "ble_ota_test");
    memcpy(desc + 80, "12:00:00", 8);
    memcpy(desc + 96, "Jan  1 2025", 11);
    memcpy(desc + 112, "v5.3.2", 6);
    uint8_t *s2 = desc + 256;
    put32(s2, 0x40080000);
    put32(s2 + 4, (uint32_t)seg2);
    /* compressible but not trivial: short repeated phrases mixed with noise */
    uint32_t x = spec->seed * 2654435761u + 12345;
    for (size_t i = 0; i < seg2; i++) {
        x = x * 1103515245u + 12345;
        s2[8 + i] = (i / 64) % 3 == 0 ? (uint8_t)(x >> 16) : (uint8_t)("ble ota firmware "[i % 17] + (i / 1024) % 5);
    }
    *len = seal(img, 0);
    return img;
}

void app_image_reseal(uint8_t *img, size_t len)
{
    (void)len;
    seal(img, 0);
}

uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}
