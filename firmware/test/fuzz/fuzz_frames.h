/*
 * Valid-frame helpers for the fuzzer: a fixed set of app images (valid ones and ones built to fail one
 * specific check), their deflate transfers, and protocol frames with correct HMAC tags, so that random
 * operation sequences get past authentication and the header checks into the deep states of the core.
 */
#ifndef FUZZ_FRAMES_H
#define FUZZ_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ble_ota_codec.h"

#define FUZZ_CHIP_ID 5             /* esp32c3 */
#define FUZZ_PARTITION_SIZE 65536  /* small slots keep one execution fast */
#define FUZZ_RUNNING_SECURE_VERSION 1

/* Delta transfers of each image: the patch, the patch cut short (SIZE_MISMATCH at END), a patch whose
 * second record reads past the base (PATCH_INVALID in the transfer). */
enum { FUZZ_DELTA_GOOD = 0, FUZZ_DELTA_SHORT, FUZZ_DELTA_OUTSIDE, FUZZ_DELTA_VARIANTS };

/* Signed manifests (PROTOCOL.md §12, no allow-list, release 1) of each image with the fuzz release key:
 * good, its signature broken (SESSION_ABORTED MANIFEST_INVALID from the writer's verify), and signed for
 * another app_version (MANIFEST_MISMATCH at the header check). */
enum { FUZZ_MANIFEST_GOOD = 0, FUZZ_MANIFEST_BAD_SIGNATURE, FUZZ_MANIFEST_OTHER_VERSION, FUZZ_MANIFEST_VARIANTS };
#define FUZZ_MANIFEST_LEN 224

/* What each image is built to exercise. */
typedef enum {
    FUZZ_IMG_GOOD = 0,        /* v2.0.0, secure_version 1: installs */
    FUZZ_IMG_GOOD_NEWER,      /* v3.0.0, secure_version 2: installs (another image for resume / replace) */
    FUZZ_IMG_DOWNGRADE,       /* secure_version 0 < running's 1: DOWNGRADE unless allowed */
    FUZZ_IMG_BAD_CHECKSUM,    /* header checks pass, body corrupted after sealing: VALIDATION_FAILED at END */
    FUZZ_IMG_WRONG_CHIP,      /* chip id of an ESP32-S3: WRONG_CHIP */
    FUZZ_IMG_WRONG_CHIP_REV,  /* min_chip_rev_full 5.0: WRONG_CHIP_REVISION */
    FUZZ_IMG_NOT_APP,         /* no image magic: NOT_APP_IMAGE */
    FUZZ_IMG_TINY,            /* shorter than the headers: NOT_APP_IMAGE at the end of the transfer */
    FUZZ_IMG_COUNT
} fuzz_image_id_t;

typedef struct {
    uint8_t *image;
    size_t image_len;
    uint8_t sha256[32]; /* of image: what BEGIN declares */
    uint8_t *deflated;  /* zlib stream of image */
    size_t deflated_len;
    /* encoding 2: zlib streams of patches against the running image (records of up to 1 KiB: diff bytes
     * where the base reaches, extra bytes beyond, seek 0) */
    uint8_t *delta[FUZZ_DELTA_VARIANTS];
    size_t delta_len[FUZZ_DELTA_VARIANTS];
    uint8_t manifest[FUZZ_MANIFEST_VARIANTS][FUZZ_MANIFEST_LEN];
} fuzz_image_t;

/** Build every image once (process start). false when memory or zlib fails. */
bool fuzz_images_init(void);
const fuzz_image_t *fuzz_image(unsigned id);
/** The image the simulated device runs from its first start (v1.0.0, secure_version 1). */
const fuzz_image_t *fuzz_running_image(void);

/** The release public key (SEC1, 65 bytes) that signs the manifests; NVS rel_key0 when the input asks. */
extern uint8_t FUZZ_RELEASE_KEY[65];

/** The fleet key the device is provisioned with when the input asks for one. */
extern const uint8_t FUZZ_FLEET_KEY[32];

/** Tag of a tagged command (ABORT/CONFIRM/ROLLBACK/REBOOT): HMAC("BLEOTA2-CMD" || nonce || op)[0..16). */
void fuzz_cmd_tag(const uint8_t nonce[16], uint8_t op, uint8_t tag[16]);
/** Tag of BEGIN: HMAC("BLEOTA2-BEGIN" || nonce || begin[1..44])[0..16), written into frame[45..60]. */
void fuzz_begin_tag(const uint8_t nonce[16], uint8_t frame[BLE_OTA_BEGIN_LEN]);

#endif
