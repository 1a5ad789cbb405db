/*
 * zlib (RFC 1950) streaming inflate with the miniz tinfl decoder in the chip ROM (`#include "miniz.h"`
 * declares the ROM functions; no library is linked). Output goes into a 32 KiB ring that doubles as the
 * LZ77 dictionary, which is what tinfl needs when the output buffer is not the whole image.
 */
#include <stdlib.h>
#include "miniz.h"
#include "esp_port_priv.h"

typedef struct {
    tinfl_decompressor tinfl;
    uint8_t dict[TINFL_LZ_DICT_SIZE];
    size_t dict_ofs;   /**< next output position in the ring */
    bool done;         /**< stream end seen; DONE is reported on the call after its last output */
    bool failed;
} inflater_t;

static void *inflate_start(void *ctx)
{
    inflater_t *inf = malloc(sizeof(*inf)); /* about 43 KiB: allocated per deflate session only */
    if (inf == NULL) {
        return NULL;
    }
    tinfl_init(&inf->tinfl);
    inf->dict_ofs = 0;
    inf->done = false;
    inf->failed = false;
    return inf;
}

static int inflate_step(void *ctx, void *handle, const uint8_t *in, size_t in_len, size_t *consumed,
                        const uint8_t **out, size_t *out_len)
{
    inflater_t *inf = handle;
    *consumed = 0;
    *out = NULL;
    *out_len = 0;
    if (inf->failed) {
        return BLE_OTA_INFLATE_ERROR;
    }
    if (inf->done) {
        return BLE_OTA_INFLATE_DONE;
    }
    size_t in_bytes = in_len;
    size_t out_bytes = TINFL_LZ_DICT_SIZE - inf->dict_ofs; /* up to the end of the ring */
    /* HAS_MORE_INPUT: the transfer arrives in pieces; the end is the zlib trailer, not the input's end. */
    tinfl_status status = tinfl_decompress(&inf->tinfl, in, &in_bytes, inf->dict, inf->dict + inf->dict_ofs,
                                           &out_bytes, TINFL_FLAG_PARSE_ZLIB_HEADER | TINFL_FLAG_HAS_MORE_INPUT);
    *consumed = in_bytes;
    *out = inf->dict + inf->dict_ofs;
    *out_len = out_bytes;
    inf->dict_ofs = (inf->dict_ofs + out_bytes) & (TINFL_LZ_DICT_SIZE - 1);
    if (status < TINFL_STATUS_DONE) { /* FAILED, ADLER32_MISMATCH, BAD_PARAM */
        inf->failed = true;
        *out_len = 0;
        return BLE_OTA_INFLATE_ERROR;
    }
    if (status == TINFL_STATUS_DONE) {
        inf->done = true;
        /* Hand over the last output first; the next call reports DONE. */
        return out_bytes > 0 ? BLE_OTA_INFLATE_MORE : BLE_OTA_INFLATE_DONE;
    }
    return BLE_OTA_INFLATE_MORE;
}

static void inflate_free(void *ctx, void *handle)
{
    free(handle);
}

void ble_ota_esp_inflate_fill(ble_ota_port_t *port)
{
    port->inflate_start = inflate_start;
    port->inflate_step = inflate_step;
    port->inflate_free = inflate_free;
}
