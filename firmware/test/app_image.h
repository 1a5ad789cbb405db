/* Synthetic but valid ESP app images (header, app descriptor, segments, checksum, appended SHA-256). */
#ifndef FW_TEST_APP_IMAGE_H
#define FW_TEST_APP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint16_t chip_id;
    const char *version;
    const char *project_name;
    uint32_t secure_version;
    size_t size;   /* approximate total size (rounded to segment rules) */
    uint32_t seed; /* varies the content */
    uint16_t min_chip_rev_full, max_chip_rev_full; /* major * 100 + minor; 0 = not set */
} app_image_spec_t;

/** Returns a malloc'd image and its length in *len. */
uint8_t *app_image_build(const app_image_spec_t *spec, size_t *len);
/** Re-seal an edited image: recompute checksum and appended SHA-256 (body_len from esp_image_verify). */
void app_image_reseal(uint8_t *img, size_t len);
/** Read a whole file; NULL when missing. */
uint8_t *read_file(const char *path, size_t *len);

#endif
