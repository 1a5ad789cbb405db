/*
 * libFuzzer target over the BLE OTA core's public entry points, through the host port (the device the
 * host tests and the twin use). The input is a device configuration followed by a program of operations
 * (see README.md for the byte format): links, MTU / data length, CHALLENGE, BEGIN / Data / END built by
 * the valid-frame helpers (correct tags, real image headers, raw and deflate), raw Control and Data
 * frames, tagged commands, time, power cuts, reboots, another installer, NVS erase and injected failures.
 *
 * Checked after every operation (a violation aborts, i.e. the fuzzer reports a crash):
 *   - the device always has an app to boot (never bricked);
 *   - Status decodes and its session / OTA states are in range;
 *   - every Control notification is at most 20 bytes.
 * Error codes seen in responses, NAKs and aborts are counted (fuzz_codes_seen) so the replay can show
 * which refusals a corpus reaches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_frames.h"
#include "fuzz_ota.h"
#include "host_device.h"

#define FUZZ_MAX_OPS 96
#define FUZZ_CONNS 6 /* more than BLE_OTA_MAX_CONNECTIONS: the BUSY path for an untracked link */

/* ---------------- input reader: exhausted input reads as zeros ---------------- */

typedef struct {
    const uint8_t *p;
    size_t n, at;
} reader_t;

static uint8_t rd8(reader_t *r) { return r->at < r->n ? r->p[r->at++] : 0; }
/* Reads in separate statements: the order of evaluation of function arguments and operands is unspecified. */
static uint16_t rd16(reader_t *r)
{
    uint16_t lo = rd8(r);
    return (uint16_t)(lo | (rd8(r) << 8));
}
static uint32_t rd32(reader_t *r)
{
    uint32_t lo = rd16(r);
    return lo | ((uint32_t)rd16(r) << 16);
}
static bool more(const reader_t *r) { return r->at < r->n; }

/* ---------------- run state ---------------- */

typedef struct {
    uint8_t nonce[16];
    bool has_nonce;
} link_t;

typedef struct {
    host_device_t *dev;
    link_t links[FUZZ_CONNS + 1];
    /* the transfer the harness is sending (last accepted BEGIN) */
    const uint8_t *transfer;
    uint32_t transfer_len;
    uint16_t chunk;
    uint32_t next; /* next offset to send; follows DATA_NAK expected offsets */
    bool aborted;  /* a SESSION_ABORTED arrived */
    bool alloc_fail; /* digest / inflater allocations fail */
    bool kv_fail;    /* NVS writes fail (nvs_set_blob: ESP_ERR_NVS_NOT_ENOUGH_SPACE and the like) */
    void *(*digest_start)(void *, const uint8_t *, size_t);
    void *(*inflate_start)(void *);
    int (*kv_set)(void *, const char *, const void *, size_t);
} run_t;

static run_t R;
unsigned long fuzz_codes_seen[256];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz invariant violated: %s\n", what);
    abort();
}

static void count(uint8_t code) { fuzz_codes_seen[code]++; }

static void on_event(void *arg, const host_event_t *ev)
{
    (void)arg;
    if (ev->type != HOST_EV_NOTIFY || ev->chr != BLE_OTA_CHR_CONTROL) return;
    if (ev->len == 0 || ev->len > BLE_OTA_NOTIFY_MAX) fail("Control notification longer than 20 bytes or empty");
    const uint8_t *d = ev->data;
    if (getenv("FUZZ_TRACE")) fprintf(stderr, "notify conn %u: %02x %02x len %zu\n", ev->conn, d[0], ev->len > 1 ? d[1] : 0, ev->len);
    if (d[0] == (BLE_OTA_OP_CHALLENGE | BLE_OTA_OP_RESPONSE_FLAG) && ev->len == BLE_OTA_CHALLENGE_RSP_LEN && d[1] == 0 &&
        ev->conn <= FUZZ_CONNS) {
        memcpy(R.links[ev->conn].nonce, d + 2, 16);
        R.links[ev->conn].has_nonce = true;
    }
    if (d[0] == (BLE_OTA_OP_BEGIN | BLE_OTA_OP_RESPONSE_FLAG) && ev->len == 16 && d[1] == 0) {
        R.chunk = ble_ota_get_u16(d + 2);
        R.next = ble_ota_get_u32(d + 12);
        R.aborted = false;
    }
    if (d[0] == BLE_OTA_OP_DATA_NAK && ev->len == 6) R.next = ble_ota_get_u32(d + 2);
    if (d[0] == BLE_OTA_OP_SESSION_ABORTED) R.aborted = true;
    if ((d[0] & BLE_OTA_OP_RESPONSE_FLAG) && d[0] != BLE_OTA_OP_DATA_ACK && ev->len >= 2) count(d[1]);
}

/* ---------------- injected allocation failure (the port contract allows NULL) ---------------- */

static void *failing_digest_start(void *ctx, const uint8_t *key, size_t key_len)
{
    return R.alloc_fail ? NULL : R.digest_start(ctx, key, key_len);
}

static void *failing_inflate_start(void *ctx) { return R.alloc_fail ? NULL : R.inflate_start(ctx); }

static int failing_kv_set(void *ctx, const char *key, const void *buf, size_t len)
{
    return R.kv_fail ? -1 : R.kv_set(ctx, key, buf, len);
}

static void wrap_port(void)
{
    /* The core keeps a pointer to the device's own (non-const) port table; wrap three functions in it. */
    ble_ota_port_t *p = (ble_ota_port_t *)(uintptr_t)host_device_port(R.dev);
    R.digest_start = p->digest_start;
    R.inflate_start = p->inflate_start;
    R.kv_set = p->kv_set;
    p->digest_start = failing_digest_start;
    p->inflate_start = failing_inflate_start;
    p->kv_set = failing_kv_set;
}

/* ---------------- operations ---------------- */

static ble_ota_conn_t conn_of(uint8_t b) { return (ble_ota_conn_t)(b % FUZZ_CONNS + 1); }

static void send_control(ble_ota_conn_t conn, const uint8_t *frame, size_t len)
{
    int att = host_device_control(R.dev, conn, frame, len);
    if (att != 0 && att != BLE_OTA_ATT_INVALID_ATTR_VALUE_LEN) fail("unexpected ATT status from a Control write");
}

static void challenge(ble_ota_conn_t conn)
{
    uint8_t op = BLE_OTA_OP_CHALLENGE;
    R.links[conn].has_nonce = false;
    send_control(conn, &op, 1);
}

/* tag mode: 0 fresh CHALLENGE + correct tag, 1 correct tag over the nonce held (maybe stale or used),
 * 2 wrong tag, 3 zero tag without a CHALLENGE. */
static bool prepare_tag(ble_ota_conn_t conn, uint8_t mode)
{
    if ((mode & 3) == 0) challenge(conn);
    return (mode & 3) <= 1 && R.links[conn].has_nonce;
}

static void op_begin(reader_t *r, bool whole_update)
{
    uint8_t a = rd8(r), b = rd8(r);
    const fuzz_image_t *im = fuzz_image(a & 7);
    bool deflate = a & 8;
    /* b bit7: a delta transfer; bits 5-6: the good patch, another base digest (BASE_MISMATCH), the patch
     * cut short, a patch reading past the base. Without bit7, bits 5-6: no manifest, the good manifest, its
     * signature broken, signed for another app_version */
    bool delta = b & 0x80;
    unsigned variant = (b >> 5) & 3;
    const uint8_t *manifest = !delta && variant ? im->manifest[variant - 1] : NULL;
    /* a whole update with a bit7 (free there: no edit) sends the manifest ahead with MANIFEST (op 0x09) and
     * then a BEGIN without it, which uses the stored one */
    const uint8_t *ahead = whole_update && (a & 0x80) ? manifest : NULL;
    if (ahead) manifest = NULL;
    uint8_t tag_mode = (a >> 4) & 3;
    ble_ota_conn_t conn = conn_of(b);
    const uint8_t *transfer = deflate ? im->deflated : im->image;
    size_t transfer_len = deflate ? im->deflated_len : im->image_len;
    if (delta) {
        unsigned v = variant == 2 ? FUZZ_DELTA_SHORT : variant == 3 ? FUZZ_DELTA_OUTSIDE : FUZZ_DELTA_GOOD;
        transfer = im->delta[v];
        transfer_len = im->delta_len[v];
    }
    ble_ota_begin_req_t req = {.image_size = (uint32_t)im->image_len,
                               .transfer_size = (uint32_t)transfer_len,
                               .encoding = delta ? BLE_OTA_ENCODING_DELTA : deflate ? BLE_OTA_ENCODING_DEFLATE : BLE_OTA_ENCODING_RAW,
                               .flags = (uint8_t)(((a & 0x40) ? BLE_OTA_BEGIN_FLAG_RESUME : 0) |
                                                  (manifest ? BLE_OTA_BEGIN_FLAG_MANIFEST : 0)),
                               .chunk_size = 512};
    memcpy(req.sha256, im->sha256, 32);
    if (delta) { /* the base is the running image as the device reports it */
        uint8_t raw[BLE_OTA_STATUS_LEN];
        ble_ota_status_t st;
        if (ble_ota_decode_status(raw, ble_ota_core_read_status(raw), &st)) memcpy(req.base_sha256, st.running_sha256, 32);
        if (variant == 1) req.base_sha256[0] ^= 1;
    }
    uint8_t frame[BLE_OTA_BEGIN_LEN + FUZZ_MANIFEST_LEN];
    size_t frame_len = BLE_OTA_BEGIN_LEN + (manifest ? FUZZ_MANIFEST_LEN : 0);
    if (manifest) memcpy(frame + BLE_OTA_BEGIN_LEN, manifest, FUZZ_MANIFEST_LEN);
    if (!whole_update) {
        uint8_t c = rd8(r);
        req.chunk_size = (uint16_t)(c ? c * 2 : 512);
        if (a & 0x80) { /* one field edited before tagging: gets past authentication into the checks */
            uint8_t at = rd8(r), v = rd8(r);
            ble_ota_encode_begin(&req, frame);
            frame[1 + at % BLE_OTA_BEGIN_MAC_LEN] = v;
            ble_ota_decode_begin(frame, frame_len, &req);
        }
    } else {
        tag_mode = 0; /* a whole update authenticates properly; bit 4 of a is END's reboot flag */
    }
    if (ahead) {
        uint8_t cmd[1 + FUZZ_MANIFEST_LEN] = {BLE_OTA_OP_MANIFEST};
        memcpy(cmd + 1, ahead, FUZZ_MANIFEST_LEN);
        send_control(conn, cmd, sizeof cmd);
    }
    ble_ota_encode_begin(&req, frame);
    if (prepare_tag(conn, tag_mode)) fuzz_begin_tag(R.links[conn].nonce, frame);
    else if ((tag_mode & 3) == 2) memset(frame + BLE_OTA_BEGIN_TAG_OFFSET, 0xA5, 16);
    R.chunk = 0;
    send_control(conn, frame, frame_len);
    if (R.chunk == 0) return; /* refused */
    R.transfer = transfer;
    /* an edited transfer_size may exceed the bytes there are: send what exists (END then finds it short) */
    R.transfer_len = req.transfer_size < transfer_len ? req.transfer_size : (uint32_t)transfer_len;
    if (!whole_update) return;
    for (int guard = 0; guard < 4096 && R.next < R.transfer_len && !R.aborted && R.chunk; guard++) {
        uint32_t n = R.transfer_len - R.next < R.chunk ? R.transfer_len - R.next : R.chunk;
        uint8_t buf[4 + 1024];
        ble_ota_put_u32(buf, R.next);
        memcpy(buf + 4, R.transfer + R.next, n);
        uint32_t want = R.next + n;
        R.next = want;
        host_device_data(R.dev, conn, buf, n + 4, true);
        if (R.next != want) break; /* a DATA_NAK (a reboot, a refusal): leave the rest to other operations */
    }
    uint8_t end[2] = {BLE_OTA_OP_END, (uint8_t)((a >> 4) & 1)};
    send_control(conn, end, sizeof end);
}

/* Data chunks of the current transfer from R.next (count 0 = the rest). */
static void op_send(reader_t *r)
{
    uint8_t b = rd8(r), count_ = rd8(r);
    ble_ota_conn_t conn = conn_of(b);
    if (!R.transfer || R.chunk == 0) return;
    bool run_writer = !(b & 0x80);
    for (unsigned i = 0; (count_ == 0 || i < count_) && R.next < R.transfer_len && i < 4096; i++) {
        uint32_t n = R.transfer_len - R.next < R.chunk ? R.transfer_len - R.next : R.chunk;
        uint8_t buf[4 + 1024];
        ble_ota_put_u32(buf, R.next);
        memcpy(buf + 4, R.transfer + R.next, n);
        uint32_t want = R.next + n;
        R.next = want;
        host_device_data(R.dev, conn, buf, n + 4, run_writer);
        if (R.aborted || R.next != want) break;
    }
}

/* One Data write at a chosen offset, of transfer bytes or input bytes. */
static void op_data(reader_t *r)
{
    uint8_t b = rd8(r), mode = rd8(r), lb = rd8(r);
    ble_ota_conn_t conn = conn_of(b);
    uint32_t chunk = R.chunk ? R.chunk : 20;
    uint32_t offset = R.next;
    switch (mode & 3) {
    case 1: offset = R.next + chunk; break;                 /* past a gap */
    case 2: offset = R.next > chunk ? R.next - chunk : 0; break; /* a duplicate */
    case 3: offset = rd32(r); break;
    default: break;
    }
    size_t len = (mode & 4) ? (size_t)lb * 4 : chunk;       /* chunk-sized or any size up to 1020 */
    if (len > 1020) len = 1020;
    uint8_t buf[4 + 1020];
    ble_ota_put_u32(buf, offset);
    for (size_t i = 0; i < len; i++) {
        uint64_t at = (uint64_t)offset + i;
        buf[4 + i] = (mode & 8) || !R.transfer || at >= R.transfer_len ? rd8(r) : R.transfer[at];
    }
    size_t total = (mode & 0x10) ? (size_t)(lb % 5) : len + 4; /* an empty or truncated write */
    if (total == len + 4 && offset == R.next && len > 0) R.next += (uint32_t)len;
    host_device_data(R.dev, conn, buf, total, !(mode & 0x80));
}

static void op_end(reader_t *r)
{
    uint8_t b = rd8(r), flags = rd8(r);
    uint8_t end[2] = {BLE_OTA_OP_END, flags};
    send_control(conn_of(b), end, (b & 0x80) ? 1 : 2);
}

static void op_tagged(reader_t *r)
{
    static const uint8_t ops[4] = {BLE_OTA_OP_ABORT, BLE_OTA_OP_CONFIRM, BLE_OTA_OP_ROLLBACK, BLE_OTA_OP_REBOOT};
    uint8_t a = rd8(r);
    ble_ota_conn_t conn = conn_of(rd8(r));
    uint8_t cmd[BLE_OTA_TAGGED_CMD_LEN] = {ops[a & 3]};
    if (prepare_tag(conn, a >> 2)) fuzz_cmd_tag(R.links[conn].nonce, cmd[0], cmd + 1);
    send_control(conn, cmd, (a & 0x40) ? 5 : sizeof cmd);
}

static void op_raw_control(reader_t *r)
{
    ble_ota_conn_t conn = conn_of(rd8(r));
    uint8_t len = rd8(r) % (BLE_OTA_CONTROL_MAX_LEN + 2);
    uint8_t buf[BLE_OTA_CONTROL_MAX_LEN + 1];
    for (unsigned i = 0; i < len; i++) buf[i] = rd8(r);
    send_control(conn, buf, len);
}

static void op_status(reader_t *r)
{
    uint8_t buf[BLE_OTA_STATUS_LEN], mfg[BLE_OTA_MFG_DATA_LEN];
    ble_ota_status_t st;
    if (ble_ota_core_read_status(buf) != BLE_OTA_STATUS_LEN || !ble_ota_decode_status(buf, sizeof buf, &st))
        fail("Status does not decode");
    if (st.session_state > BLE_OTA_SESSION_FINISHING || st.ota_state > BLE_OTA_IMG_UNDEFINED) fail("Status state out of range");
    if (ble_ota_core_build_mfg_data(mfg) != BLE_OTA_MFG_DATA_LEN) fail("manufacturer data length");
    (void)ble_ota_core_app_info();
    (void)ble_ota_core_caps();
    (void)ble_ota_chip_name(rd8(r) % 20);
    if ((unsigned)ble_ota_core_session_state() > BLE_OTA_SESSION_FINISHING) fail("session state out of range");
}

/* ---------------- one input ---------------- */

static bool start_device(reader_t *r)
{
    uint8_t f = rd8(r), g = rd8(r);
    static const uint32_t resume_ms[4] = {60000, 0, 500, 5000};
    static const uint32_t windows[4] = {16384, 4096, 2048, 8192};
    static const uint32_t acks[4] = {4096, 1024, 512, 2048};
    static const uint16_t revs[4] = {0, 100, 300, 5};
    host_device_opts_t o;
    memset(&o, 0, sizeof o);
    ble_ota_config_default(&o.cfg);
    o.cfg.policy = (f & 1) ? BLE_OTA_POLICY_HOST : BLE_OTA_POLICY_AUTO;
    o.cfg.deflate = !(f & 2);
    o.cfg.require_fleet_key = f & 4;
    o.cfg.allow_downgrade = f & 8;
    o.has_fleet_key = f & 16;
    memcpy(o.fleet_key, FUZZ_FLEET_KEY, 32);
    o.diagnostics_fail = f & 32;
    o.ble_fails = f & 64;
    o.cfg.signed_images = f & 128;
    /* the secure default (no opt-out) rides on the same bit: existing seeds keep the open device */
    o.cfg.allow_unauthenticated = !(f & 128);
    o.cfg.resume_timeout_ms = resume_ms[g & 3];
    o.cfg.window = windows[(g >> 2) & 3];
    o.cfg.ack_interval = acks[(g >> 4) & 3];
    o.chip_rev = revs[(g >> 6) & 3];
    if (g == 0xFF) o.cfg.window = 1000; /* rare on purpose: ble_ota_core_init refuses it, nothing else runs */
    o.chip_id = FUZZ_CHIP_ID;
    o.partition_size = FUZZ_PARTITION_SIZE;
    o.running_image = fuzz_running_image()->image;
    o.running_image_len = fuzz_running_image()->image_len;
    o.on_event = on_event;
    R.dev = host_device_create(&o); /* NULL: the configuration was refused (counted as a run) */
    return R.dev != NULL;
}

static void check_device(void)
{
    if (host_device_running(R.dev) < 0) fail("no bootable app image (device bricked)");
}

static void run_op(reader_t *r)
{
    uint8_t op = rd8(r);
    host_flash_t *f = host_device_flash(R.dev);
    switch (op % 24) {
    case 0: {
        ble_ota_conn_t c = conn_of(rd8(r));
        host_device_connect(R.dev, c, (uint16_t)(23 + rd8(r) * 2));
        break;
    }
    case 1: host_device_disconnect(R.dev, conn_of(rd8(r))); break;
    case 2: {
        ble_ota_conn_t c = conn_of(rd8(r));
        ble_ota_core_on_mtu(c, rd16(r));
        host_device_run_writer(R.dev);
        break;
    }
    case 3: {
        uint8_t c = rd8(r);
        ble_ota_core_on_data_len(c & 0x80 ? BLE_OTA_CONN_NONE : conn_of(c), rd16(r));
        host_device_run_writer(R.dev);
        break;
    }
    case 4: challenge(conn_of(rd8(r))); break;
    case 5: op_begin(r, false); break;
    case 6: op_send(r); break;
    case 7: op_data(r); break;
    case 8: op_end(r); break;
    case 9: op_tagged(r); break;
    case 10: op_raw_control(r); break;
    case 11: {
        uint8_t b = rd8(r);
        host_device_tick(R.dev, (uint32_t)b * b * 4); /* up to 260 s: resume timeouts and reboot delays */
        break;
    }
    case 12: host_device_power_loss(R.dev); break;
    case 13: host_device_cut_power_after(R.dev, rd8(r)); break;
    case 14: {
        const fuzz_image_t *im = fuzz_image(rd8(r));
        host_device_install_other(R.dev, im->image, im->image_len);
        break;
    }
    case 15: host_device_erase_nvs(R.dev); break;
    case 16: {
        uint8_t b = rd8(r);
        f->fail_writes = b & 1;
        f->fail_otadata = b & 2;
        R.alloc_fail = b & 4;
        R.kv_fail = b & 8;
        if (b & 16) { /* a bit of the other slot's image flips (worn flash): rollback has nothing valid */
            int other = 1 - host_device_running(R.dev);
            host_flash_partition(f, other)[(b >> 5) * 1024 + 100] ^= 0x10;
        }
        break;
    }
    case 17: op_status(r); break;
    case 18: host_device_run_writer(R.dev); break;
    case 19: op_begin(r, true); break;
    case 20: ble_ota_core_on_ble_ready(); host_device_run_writer(R.dev); break;
    case 21: ble_ota_core_on_timer(); host_device_run_writer(R.dev); break; /* a timer firing early / late */
    case 22: { /* release key 0 provisioned in NVS, then a restart: manifests required from now */
        host_nvs_set(f, "rel_key0", FUZZ_RELEASE_KEY, sizeof FUZZ_RELEASE_KEY);
        host_device_power_loss(R.dev);
        break;
    }
    default: op_send(r); break; /* the most useful operation gets the spare code */
    }
    check_device();
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "op %u: flash/NVS operations so far %lu\n", op % 24, host_device_flash(R.dev)->ops_total);
}

int fuzz_run_input(const uint8_t *data, size_t size)
{
    if (!fuzz_images_init()) {
        fprintf(stderr, "fuzz: cannot build the images\n");
        abort();
    }
    reader_t r = {data, size, 0};
    memset(&R, 0, sizeof R);
    if (!start_device(&r)) return 0;
    wrap_port();
    check_device();
    for (unsigned i = 0; i < FUZZ_MAX_OPS && more(&r); i++) run_op(&r);
    R.alloc_fail = R.kv_fail = false;
    host_device_destroy(R.dev);
    R.dev = NULL;
    return 0;
}
