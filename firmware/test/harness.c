/* Test harness implementation; see harness.h. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "app_image.h"
#include "sha256.h"

harness_t H;
static uint8_t *s_running;

static void on_event(void *arg, const host_event_t *ev)
{
    (void)arg;
    if (ev->type == HOST_EV_NOTIFY && ev->chr == BLE_OTA_CHR_CONTROL) {
        if (ev->len > H.longest_control) H.longest_control = ev->len;
        if (H.note_count < NOTE_MAX && ev->len <= BLE_OTA_NOTIFY_MAX) {
            note_t *n = &H.notes[H.note_count++];
            n->conn = ev->conn;
            n->len = (uint8_t)ev->len;
            memcpy(n->data, ev->data, ev->len);
        }
    } else if (ev->type == HOST_EV_NOTIFY) {
        H.status_notifications++;
    } else if (ev->type == HOST_EV_REBOOT) {
        H.reboots++;
        snprintf(H.last_reboot, sizeof H.last_reboot, "%s", ev->text);
    } else if (getenv("FW_TEST_LOG")) {
        fprintf(stderr, "      log: %s\n", ev->text);
    }
}

uint8_t *h_image(uint16_t chip, const char *version, uint32_t secure_version, size_t size, uint32_t seed, size_t *len)
{
    app_image_spec_t spec = {.chip_id = chip, .version = version, .secure_version = secure_version, .size = size, .seed = seed};
    return app_image_build(&spec, len);
}

uint8_t *h_start_with_image(host_device_opts_t *o, size_t size, size_t *len)
{
    if (!h_start(o)) return NULL;
    return h_image(5, "2.0.0", 1, size, 3, len);
}

host_device_opts_t h_default_opts(void)
{
    host_device_opts_t o;
    memset(&o, 0, sizeof o);
    size_t len;
    free(s_running);
    s_running = h_image(5, "1.0.0", 1, 60000, 1, &len);
    o.chip_id = 5;
    o.running_image = s_running;
    o.running_image_len = len;
    o.partition_size = 512 * 1024;
    ble_ota_config_default(&o.cfg);
    /* The tests of transfer, resume, boot and power behaviour use the development opt-out unless they
     * set a key; test_security.c covers the secure default (allow_unauthenticated false). */
    o.cfg.allow_unauthenticated = true;
    memcpy(o.device_id, "\x24\x0a\xc4\x12\x34\x56", 6);
    return o;
}

void h_stop(void)
{
    if (H.dev) host_device_destroy(H.dev);
    H.dev = NULL;
}

bool h_start(host_device_opts_t *opts)
{
    h_stop();
    memset(&H, 0, sizeof H);
    opts->on_event = on_event;
    H.has_key = opts->has_fleet_key;
    memcpy(H.key, opts->fleet_key, 32);
    H.dev = host_device_create(opts);
    if (!H.dev) return false;
    if (!opts->ble_fails) host_device_connect(H.dev, 1, 247); /* no central reaches a dead BLE stack */
    h_clear();
    return true;
}

void h_clear(void) { H.note_count = 0; }

bool h_pop(ble_ota_conn_t conn, note_t *out)
{
    for (unsigned i = 0; i < H.note_count; i++) {
        if (H.notes[i].conn != conn) continue;
        *out = H.notes[i];
        memmove(&H.notes[i], &H.notes[i + 1], (H.note_count - i - 1) * sizeof H.notes[0]);
        H.note_count--;
        return true;
    }
    return false;
}

bool h_find(ble_ota_conn_t conn, uint8_t op, note_t *out)
{
    while (h_pop(conn, out))
        if (out->data[0] == op) return true;
    return false;
}

uint8_t h_rsp_err(ble_ota_conn_t conn, uint8_t op)
{
    note_t n;
    if (!h_find(conn, (uint8_t)(op | 0x80), &n) || n.len < 2) return 0xEE;
    return n.data[1];
}

int h_control(ble_ota_conn_t conn, const uint8_t *data, size_t len) { return host_device_control(H.dev, conn, data, len); }

uint8_t h_challenge(ble_ota_conn_t conn)
{
    uint8_t op = BLE_OTA_OP_CHALLENGE;
    note_t n;
    h_control(conn, &op, 1);
    if (!h_find(conn, 0x81, &n) || n.len < 2) return 0xEE;
    if (n.data[1] == 0 && n.len == BLE_OTA_CHALLENGE_RSP_LEN) memcpy(H.nonce, n.data + 2, 16);
    return n.data[1];
}

static void hmac16(const char *label, const uint8_t *msg, size_t len, uint8_t out[16])
{
    hmac_sha256_ctx_t c;
    uint8_t mac[32];
    hmac_sha256_init(&c, H.key, 32);
    hmac_sha256_update(&c, (const uint8_t *)label, strlen(label));
    hmac_sha256_update(&c, H.nonce, 16);
    hmac_sha256_update(&c, msg, len);
    hmac_sha256_final(&c, mac);
    memcpy(out, mac, 16);
}

uint8_t h_tagged(ble_ota_conn_t conn, uint8_t op, bool with_tag)
{
    uint8_t cmd[17] = {op};
    if (H.has_key && with_tag) {
        h_challenge(conn);
        hmac16("BLEOTA2-CMD", &op, 1, cmd + 1);
    }
    h_control(conn, cmd, sizeof cmd);
    return h_rsp_err(conn, op);
}

begin_t h_begin_for(const uint8_t *image, size_t len, const uint8_t *transfer, size_t transfer_len, uint8_t encoding)
{
    (void)transfer;
    begin_t b = {.image_size = (uint32_t)len, .transfer_size = (uint32_t)transfer_len, .encoding = encoding,
                 .flags = BLE_OTA_BEGIN_FLAG_RESUME, .chunk = 508};
    sha256(image, len, b.sha256);
    return b;
}

uint8_t h_begin(ble_ota_conn_t conn, const begin_t *b, bool auth, uint16_t *chunk, uint32_t *resume_offset)
{
    ble_ota_begin_req_t req = {.image_size = b->image_size, .transfer_size = b->transfer_size, .encoding = b->encoding,
                               .flags = b->flags, .chunk_size = b->chunk};
    memcpy(req.sha256, b->sha256, 32);
    memcpy(req.base_sha256, b->base_sha256, 32);
    uint8_t buf[BLE_OTA_CONTROL_MAX_LEN + 64];
    ble_ota_encode_begin(&req, buf);
    size_t n_manifest = b->manifest_len < sizeof buf - BLE_OTA_BEGIN_LEN ? b->manifest_len : sizeof buf - BLE_OTA_BEGIN_LEN;
    if (b->manifest) memcpy(buf + BLE_OTA_BEGIN_LEN, b->manifest, n_manifest);
    if (H.has_key && auth) {
        h_challenge(conn);
        hmac16("BLEOTA2-BEGIN", buf + BLE_OTA_BEGIN_MAC_OFFSET, BLE_OTA_BEGIN_MAC_LEN, buf + BLE_OTA_BEGIN_TAG_OFFSET);
    }
    h_control(conn, buf, BLE_OTA_BEGIN_LEN + n_manifest);
    note_t n;
    if (!h_find(conn, 0x82, &n)) return 0xEE;
    if (n.data[1] == 0 && n.len == 16) {
        if (chunk) *chunk = ble_ota_get_u16(n.data + 2);
        if (resume_offset) *resume_offset = ble_ota_get_u32(n.data + 12);
    }
    return n.data[1];
}

uint8_t h_begin_image(ble_ota_conn_t conn, const uint8_t *image, size_t len, uint16_t *chunk)
{
    begin_t b = h_begin_for(image, len, image, len, 0);
    return h_begin(conn, &b, true, chunk, NULL);
}

void h_data(ble_ota_conn_t conn, uint32_t offset, const uint8_t *payload, size_t len)
{
    uint8_t buf[4 + 1024];
    ble_ota_put_u32(buf, offset);
    memcpy(buf + 4, payload, len);
    host_device_data(H.dev, conn, buf, len + 4, true);
}

/* Error of a SESSION_ABORTED among pending notifications (0 = none); leaves the others in place. */
static uint8_t aborted_err(ble_ota_conn_t conn)
{
    for (unsigned i = 0; i < H.note_count; i++)
        if (H.notes[i].conn == conn && H.notes[i].data[0] == BLE_OTA_OP_SESSION_ABORTED) return H.notes[i].data[1];
    return 0;
}

uint8_t h_send(ble_ota_conn_t conn, const uint8_t *transfer, uint32_t from, uint32_t to, uint16_t chunk)
{
    for (uint32_t off = from; off < to; off += chunk) {
        uint32_t n = to - off < chunk ? to - off : chunk;
        h_data(conn, off, transfer + off, n);
        uint8_t err = aborted_err(conn);
        if (err) return err;
        if (H.note_count > NOTE_MAX - 8) { /* keep only what matters */
            note_t keep[8];
            unsigned k = 0;
            for (unsigned i = 0; i < H.note_count && k < 8; i++)
                if (H.notes[i].data[0] != BLE_OTA_OP_DATA_ACK) keep[k++] = H.notes[i];
            memcpy(H.notes, keep, k * sizeof keep[0]);
            H.note_count = k;
        }
    }
    return 0;
}

uint8_t h_end(ble_ota_conn_t conn, uint8_t flags)
{
    uint8_t cmd[2] = {BLE_OTA_OP_END, flags};
    h_control(conn, cmd, 2);
    return h_rsp_err(conn, BLE_OTA_OP_END);
}

uint8_t *h_deflate(const uint8_t *data, size_t len, size_t *out_len)
{
    uLongf n = compressBound(len);
    uint8_t *out = malloc(n);
    if (!out || compress2(out, &n, data, len, 9) != Z_OK) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

uint8_t h_update(const uint8_t *image, size_t len, bool deflate, uint8_t end_flags)
{
    size_t tlen = len;
    uint8_t *z = NULL;
    const uint8_t *transfer = image;
    if (deflate) {
        z = h_deflate(image, len, &tlen);
        transfer = z;
    }
    begin_t b = h_begin_for(image, len, transfer, tlen, deflate ? 1 : 0);
    uint16_t chunk = 0;
    h_clear();
    uint8_t err = h_begin(1, &b, true, &chunk, NULL);
    if (!err) err = h_send(1, transfer, 0, (uint32_t)tlen, chunk);
    if (!err) err = h_end(1, end_flags);
    free(z);
    if (!err && (end_flags & 1)) {
        host_device_tick(H.dev, 400);
        host_device_connect(H.dev, 1, 247);
    }
    return err;
}

uint8_t h_install(const char *version, bool deflate)
{
    size_t len;
    uint8_t *img = h_image(5, version, 1, 70000, 4, &len);
    if (!img) return 0xEE;
    uint8_t err = h_update(img, len, deflate, 1);
    free(img);
    return err;
}

bool h_nak_is(ble_ota_conn_t conn, uint8_t err, uint32_t expected_offset)
{
    note_t n;
    if (!h_find(conn, BLE_OTA_OP_DATA_NAK, &n)) {
        fprintf(stderr, "    no DATA_NAK on conn %u (wanted err %u)\n", (unsigned)conn, err);
        return false;
    }
    if (n.len != 6 || n.data[1] != err || ble_ota_get_u32(n.data + 2) != expected_offset) {
        fprintf(stderr, "    DATA_NAK len %u err %u expected %u, wanted err %u expected %u\n", n.len, n.data[1],
                (unsigned)ble_ota_get_u32(n.data + 2), err, (unsigned)expected_offset);
        return false;
    }
    return true;
}

bool h_no_nak(ble_ota_conn_t conn)
{
    note_t n;
    return !h_find(conn, BLE_OTA_OP_DATA_NAK, &n);
}

void h_status(ble_ota_status_t *st)
{
    uint8_t buf[BLE_OTA_STATUS_LEN];
    ble_ota_core_read_status(buf);
    ble_ota_decode_status(buf, sizeof buf, st);
}

const char *h_vector_path(const char *name)
{
    static char path[512];
    /* make runs in firmware/test; the shared material sits beside the repo: ../../../shared */
    static const char *prefixes[] = {"../../../shared/vectors/", "../shared/vectors/", "../../shared/vectors/"};
    for (unsigned i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(path, sizeof path, "%s%s", prefixes[i], name);
        if (access(path, R_OK) == 0) return path;
    }
    return NULL;
}
