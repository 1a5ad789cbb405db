/* docs/protocol-vectors.json (PROTOCOL.md §11), version 2: decode each vector and compare with its fields,
 * encode the fields and compare with its hex; tags recomputed with the vector's fleet key and nonce;
 * manifests decoded and their signatures checked with the host port's ECDSA; device keys derived with
 * HKDF; patches applied with ble_ota_patch (and their zlib transfer inflated). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "app_image.h"
#include "ble_ota_codec.h"
#include "ble_ota_patch.h"
#include "harness.h"
#include "json.h"
#include "sha256.h"
#include "test.h"

static json_t *load_vectors(void)
{
    static const char *paths[] = {"../../docs/protocol-vectors.json", "docs/protocol-vectors.json"};
    for (unsigned i = 0; i < 2; i++) {
        size_t len;
        uint8_t *text = read_file(paths[i], &len);
        if (!text) continue;
        char *z = realloc(text, len + 1);
        if (!z) {
            free(text);
            return NULL;
        }
        z[len] = '\0';
        json_t *j = json_parse(z);
        free(z);
        return j;
    }
    return NULL;
}

static long num(const json_t *f, const char *key)
{
    double v = -1;
    json_get_number(f, key, &v);
    return (long)v;
}

/* a field the vector may leave out (format 1 Status): 0 then */
static long num0(const json_t *f, const char *key)
{
    double v = 0;
    json_get_number(f, key, &v);
    return (long)v;
}

static bool boolean(const json_t *f, const char *key)
{
    const json_t *v = json_get(f, key);
    return v && v->type == JSON_BOOL && v->boolean;
}

static void hex_field(const json_t *f, const char *key, uint8_t *out, size_t n)
{
    const char *h = json_get_string(f, key);
    memset(out, 0, n);
    if (h) hex_decode(h, out, n);
}

static void str_field(const json_t *f, const char *key, char *out, size_t n)
{
    const char *s = json_get_string(f, key);
    snprintf(out, n, "%s", s ? s : "");
}

/* Encode a vector's fields with the core's codec. Returns the length, 0 when the kind is not encodable. */
static size_t encode(const char *kind, const json_t *f, uint8_t *out)
{
    long op = num(f, "op");
    long err = num(f, "err");
    if (!strcmp(kind, "command")) {
        if (op == BLE_OTA_OP_BEGIN) {
            ble_ota_begin_req_t r = {.image_size = (uint32_t)num(f, "image_size"),
                                     .transfer_size = (uint32_t)num(f, "transfer_size"),
                                     .encoding = (uint8_t)num(f, "encoding"), .flags = (uint8_t)num(f, "flags"),
                                     .chunk_size = (uint16_t)num(f, "chunk_size")};
            hex_field(f, "sha256", r.sha256, 32);
            hex_field(f, "base_sha256", r.base_sha256, 32);
            hex_field(f, "tag", r.tag, 16);
            size_t n = ble_ota_encode_begin(&r, out);
            const char *m = json_get_string(f, "manifest");
            long ml = m ? hex_decode(m, out + n, 512 - n) : 0;
            return ml < 0 ? 0 : n + (size_t)ml;
        }
        out[0] = (uint8_t)op;
        if (op == BLE_OTA_OP_CHALLENGE) return 1;
        if (op == BLE_OTA_OP_MANIFEST) {
            const char *m = json_get_string(f, "manifest");
            if (!m) return BLE_OTA_MANIFEST_COMMIT_LEN; /* 0x09 alone: commit the staged bytes (2.3) */
            long ml = hex_decode(m, out + 1, 511);
            return ml < 0 ? 0 : 1 + (size_t)ml;
        }
        if (op == BLE_OTA_OP_PROVISION) {
            hex_field(f, "key", out + 1, 32);
            return BLE_OTA_PROVISION_LEN;
        }
        if (op == BLE_OTA_OP_END) {
            out[1] = (uint8_t)num(f, "flags");
            return 2;
        }
        hex_field(f, "tag", out + 1, 16);
        return 17;
    }
    if (!strcmp(kind, "response")) {
        if (op == BLE_OTA_OP_UNKNOWN_RSP) return ble_ota_encode_unknown_rsp((uint8_t)num(f, "unknown_op"), out);
        if (err != 0) return ble_ota_encode_simple_rsp((uint8_t)(op & 0x7F), (uint8_t)err, out);
        if (op == 0x81) {
            uint8_t nonce[16];
            hex_field(f, "nonce", nonce, 16);
            return ble_ota_encode_challenge_rsp(0, nonce, (uint16_t)num(f, "caps"), out);
        }
        if (op == 0x82)
            return ble_ota_encode_begin_rsp(0, (uint16_t)num(f, "chunk_size"), (uint32_t)num(f, "window"),
                                            (uint32_t)num(f, "ack_interval"), (uint32_t)num(f, "resume_offset"), out);
        if (op == 0x83) return ble_ota_encode_end_rsp(0, (uint32_t)num(f, "image_size"), out);
        return ble_ota_encode_simple_rsp((uint8_t)(op & 0x7F), 0, out);
    }
    if (!strcmp(kind, "notification")) {
        if (op == BLE_OTA_OP_DATA_ACK) return ble_ota_encode_data_ack((uint32_t)num(f, "next_offset"), out);
        if (op == BLE_OTA_OP_DATA_NAK) return ble_ota_encode_data_nak((uint8_t)err, (uint32_t)num(f, "expected_offset"), out);
        if (op == BLE_OTA_OP_SESSION_ABORTED) return ble_ota_encode_session_aborted((uint8_t)err, out);
        return 0;
    }
    if (!strcmp(kind, "data")) {
        uint8_t payload[512];
        const char *h = json_get_string(f, "payload");
        long n = h ? hex_decode(h, payload, sizeof payload) : -1;
        if (n < 0) return 0;
        ble_ota_put_u32(out, (uint32_t)num(f, "offset"));
        memcpy(out + 4, payload, (size_t)n);
        return 4 + (size_t)n;
    }
    if (!strcmp(kind, "status")) {
        ble_ota_status_t st = {
            .format = (uint8_t)num(f, "format"), .proto_version = (uint8_t)num(f, "proto_version"),
            .caps = (uint16_t)num(f, "caps"), .ota_state = (uint8_t)num(f, "ota_state"),
            .confirm_policy = (uint8_t)num(f, "confirm_policy"), .session_state = (uint8_t)num(f, "session_state"),
            .reset_reason = (uint8_t)num(f, "reset_reason"), .boot_count = (uint16_t)num(f, "boot_count"),
            .chip_id = (uint16_t)num(f, "chip_id"), .secure_version = (uint32_t)num(f, "secure_version"),
            .session_offset = (uint32_t)num(f, "session_offset"), .last_result = (uint8_t)num(f, "last_result"),
            .last_flags = (uint8_t)num(f, "last_flags")};
        str_field(f, "running_partition", st.running_partition, sizeof st.running_partition);
        str_field(f, "app_version", st.app_version, sizeof st.app_version);
        str_field(f, "project_name", st.project_name, sizeof st.project_name);
        str_field(f, "idf_version", st.idf_version, sizeof st.idf_version);
        str_field(f, "last_message", st.last_message, sizeof st.last_message);
        hex_field(f, "running_sha256", st.running_sha256, 32);
        hex_field(f, "last_sha256", st.last_sha256, 32);
        st.update_partition_size = (uint32_t)num0(f, "update_partition_size");
        st.release_floor = (uint32_t)num0(f, "release_floor");
        hex_field(f, "device_id", st.device_id, 6);
        st.release_key_ids = (uint8_t)num0(f, "release_key_ids");
        size_t n = ble_ota_encode_status(&st, out);
        return st.format == 1 ? BLE_OTA_STATUS_V1_LEN : n; /* format 1: the first 232 bytes */
    }
    if (!strcmp(kind, "advertisement")) {
        ble_ota_adv_t adv = {.flags = (uint8_t)(num(f, "ota_state") & 7)};
        if (boolean(f, "rolled_back")) adv.flags |= 0x08;
        if (boolean(f, "diagnostics_failed")) adv.flags |= 0x10;
        if (boolean(f, "session_active")) adv.flags |= 0x20;
        if (boolean(f, "host_policy")) adv.flags |= 0x40;
        if (boolean(f, "fleet_key_required")) adv.flags |= 0x80;
        hex_field(f, "sha_prefix", adv.sha_prefix, 4);
        adv.version[0] = (uint8_t)num(f, "version_major");
        adv.version[1] = (uint8_t)num(f, "version_minor");
        adv.version[2] = (uint8_t)num(f, "version_patch");
        return ble_ota_encode_mfg(&adv, out);
    }
    return 0;
}

/* Decoding direction for what the device decodes (commands, data) or the client reads (status). */
static bool decode_matches(const char *kind, const json_t *f, const uint8_t *b, size_t n)
{
    if (!strcmp(kind, "command") && b[0] == BLE_OTA_OP_BEGIN) {
        ble_ota_begin_req_t r;
        uint8_t sha[32], base[32], tag[16];
        hex_field(f, "sha256", sha, 32);
        hex_field(f, "base_sha256", base, 32);
        hex_field(f, "tag", tag, 16);
        bool manifest = json_get_string(f, "manifest") != NULL;
        return ble_ota_decode_begin(b, n, &r) && r.image_size == (uint32_t)num(f, "image_size") &&
               r.transfer_size == (uint32_t)num(f, "transfer_size") && r.encoding == num(f, "encoding") &&
               r.flags == num(f, "flags") && r.chunk_size == num(f, "chunk_size") && !memcmp(r.sha256, sha, 32) &&
               !memcmp(r.base_sha256, base, 32) && !memcmp(r.tag, tag, 16) &&
               (r.manifest != NULL) == manifest && (!manifest || r.manifest_len == n - BLE_OTA_BEGIN_LEN);
    }
    if (!strcmp(kind, "command") && b[0] == BLE_OTA_OP_MANIFEST && n == BLE_OTA_MANIFEST_COMMIT_LEN) {
        const uint8_t *m;
        uint16_t ml;
        /* the commit is not a manifest command: the core tells it by its length before decoding */
        return json_get_string(f, "manifest") == NULL && !ble_ota_decode_manifest_cmd(b, n, &m, &ml);
    }
    if (!strcmp(kind, "data") && (ble_ota_get_u32(b) & BLE_OTA_STAGING_OFFSET_FLAG)) {
        /* a staging write: bit31 marks it, the rest is the manifest offset */
        return n > 4 && ble_ota_get_u32(b) == (uint32_t)num(f, "offset");
    }
    if (!strcmp(kind, "command") && b[0] == BLE_OTA_OP_MANIFEST) {
        const uint8_t *m;
        uint16_t ml;
        uint8_t want[512];
        const char *hex = json_get_string(f, "manifest");
        long wl = hex ? hex_decode(hex, want, sizeof want) : -1;
        return ble_ota_decode_manifest_cmd(b, n, &m, &ml) && wl == ml && !memcmp(m, want, ml) &&
               !ble_ota_decode_manifest_cmd(b, n - 1, &m, &ml); /* the length rule */
    }
    if (!strcmp(kind, "status")) {
        ble_ota_status_t st;
        uint8_t again[BLE_OTA_STATUS_V2_LEN];
        uint8_t id[6];
        hex_field(f, "device_id", id, 6);
        return ble_ota_decode_status(b, n, &st) && ble_ota_encode_status(&st, again) >= n && !memcmp(again, b, n) &&
               st.format == num(f, "format") && st.update_partition_size == (uint32_t)num0(f, "update_partition_size") &&
               st.release_floor == (uint32_t)num0(f, "release_floor") && !memcmp(st.device_id, id, 6) &&
               st.release_key_ids == (uint8_t)num0(f, "release_key_ids") && st.caps == num(f, "caps") && st.session_offset == (uint32_t)num(f, "session_offset") &&
               !strcmp(st.app_version, json_get_string(f, "app_version"));
    }
    return true;
}

/* kind "manifest": decode, fields, and the signature with the host port's ECDSA (releasePublicKey). */
static bool manifest_matches(const json_t *root, const json_t *f, const uint8_t *b, size_t n)
{
    ble_ota_manifest_t m;
    uint8_t pub[65], sha[32], base[32], sig[64], hash[32];
    const char *pub_hex = json_get_string(root, "releasePublicKey");
    if (!pub_hex || hex_decode(pub_hex, pub, 65) != 65 || !ble_ota_decode_manifest(b, n, &m)) return false;
    hex_field(f, "image_sha256", sha, 32);
    hex_field(f, "base_sha256", base, 32);
    hex_field(f, "signature", sig, 64);
    const json_t *ids = json_get(f, "device_ids");
    bool ok = m.key_id == num(f, "key_id") && m.length == num(f, "length") && m.length == n &&
              !memcmp(m.image_sha256, sha, 32) && m.image_size == (uint32_t)num(f, "image_size") &&
              !memcmp(m.base_sha256, base, 32) && m.release == (uint32_t)num(f, "release") &&
              m.secure_version == (uint32_t)num(f, "secure_version") && m.chip_id == num(f, "chip_id") &&
              m.device_count == num(f, "device_count") && json_array_len(ids) == m.device_count &&
              !strcmp(m.project_name, json_get_string(f, "project_name")) &&
              !strcmp(m.app_version, json_get_string(f, "app_version")) &&
              m.not_after == (uint32_t)num(f, "not_after") && !memcmp(m.signature, sig, 64);
    unsigned i = 0;
    for (const json_t *id = ids ? ids->child : NULL; ok && id; id = id->next, i++) {
        uint8_t want[6];
        ok = id->type == JSON_STRING && hex_decode(id->string, want, 6) == 6 && !memcmp(m.device_ids + 6 * i, want, 6);
    }
    sha256(b, ble_ota_manifest_signed_len(&m), hash);
    bool valid = host_ecdsa_p256_verify(pub, hash, m.signature) == 0;
    return ok && valid == boolean(f, "signature_valid");
}

/* kind "device_key": HKDF-SHA256(master_key, "BLEOTA2-DEVICE-KEY", device_id) == hex. */
static bool device_key_matches(const json_t *f, const uint8_t *b, size_t n)
{
    static const char salt[] = "BLEOTA2-DEVICE-KEY";
    uint8_t master[32], id[6], key[32];
    hex_field(f, "master_key", master, 32);
    hex_field(f, "device_id", id, 6);
    hkdf_sha256(master, 32, (const uint8_t *)salt, strlen(salt), id, 6, key, 32);
    return n == 32 && !memcmp(key, b, 32);
}

static int vector_read_base(void *ctx, uint32_t offset, uint8_t *dst, size_t len)
{
    memcpy(dst, (const uint8_t *)ctx + offset, len);
    return 0;
}

/* kind "patch": hex = the patch; its zlib transfer inflates to it; ble_ota_patch gives the image (or the
 * error the vector names: PATCH_INVALID, or SIZE_MISMATCH for a patch that ends early). Fed one byte at a
 * time as well as whole. */
static bool patch_matches(const json_t *f, const uint8_t *b, size_t n)
{
    static uint8_t base[4096], image[4096], want[4096], transfer[4096], inflated[4096];
    const char *base_hex = json_get_string(f, "base"), *image_hex = json_get_string(f, "image");
    const char *transfer_hex = json_get_string(f, "transfer"), *error = json_get_string(f, "error");
    long base_len = base_hex ? hex_decode(base_hex, base, sizeof base) : -1;
    long want_len = image_hex ? hex_decode(image_hex, want, sizeof want) : 0;
    uint32_t image_size = (uint32_t)num(f, "image_size");
    if (base_len < 0 || want_len < 0 || image_size > sizeof image) return false;
    if (base_hex && json_get_string(f, "base_sha256")) {
        uint8_t d[32], w[32];
        sha256(base, (size_t)base_len, d);
        hex_field(f, "base_sha256", w, 32);
        if (memcmp(d, w, 32)) return false;
    }
    if (transfer_hex) {
        long t = hex_decode(transfer_hex, transfer, sizeof transfer);
        uLongf out_len = sizeof inflated;
        if (t < 0 || uncompress(inflated, &out_len, transfer, (uLong)t) != Z_OK || out_len != n ||
            memcmp(inflated, b, n))
            return false;
    }
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        ble_ota_patch_t st;
        ble_ota_patch_init(&st, (uint32_t)base_len, image_size);
        ble_ota_patch_result_t r = BLE_OTA_PATCH_MORE;
        size_t at = 0, out = 0;
        while (at < n && (r == BLE_OTA_PATCH_MORE || r == BLE_OTA_PATCH_OK || r == BLE_OTA_PATCH_DONE)) {
            size_t step = bytewise ? 1 : n - at, used = 0, made = 0;
            r = ble_ota_patch_feed(&st, b + at, step, &used, image + out, sizeof image - out, &made, vector_read_base, base);
            at += used;
            out += made;
            if (r == BLE_OTA_PATCH_DONE && at < n && used == 0) break;
        }
        bool finished = ble_ota_patch_finished(&st);
        if (!error) {
            if (r != BLE_OTA_PATCH_DONE || !finished || at != n || out != image_size ||
                (image_hex && (out != (size_t)want_len || memcmp(image, want, out))))
                return false;
        } else if (!strcmp(error, "PATCH_INVALID")) {
            if (r != BLE_OTA_PATCH_INVALID) return false;
        } else if (!strcmp(error, "SIZE_MISMATCH")) {
            if (r == BLE_OTA_PATCH_INVALID || finished) return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Tag vectors: recompute HMAC-SHA256(fleetKey, label || nonce || msg)[0:16]. */
static bool tag_matches(const json_t *root, const json_t *v, const uint8_t *b, size_t n)
{
    const char *nonce_hex = json_get_string(v, "nonce");
    const char *key_hex = json_get_string(root, "fleetKey");
    if (!nonce_hex || !key_hex) return true;
    uint8_t key[32], nonce[16], mac[32];
    if (hex_decode(key_hex, key, 32) != 32 || hex_decode(nonce_hex, nonce, 16) != 16) return false;
    bool begin = b[0] == BLE_OTA_OP_BEGIN;
    const char *label = begin ? "BLEOTA2-BEGIN" : "BLEOTA2-CMD";
    hmac_sha256_ctx_t c;
    hmac_sha256_init(&c, key, 32);
    hmac_sha256_update(&c, (const uint8_t *)label, strlen(label));
    hmac_sha256_update(&c, nonce, 16);
    if (begin && n < BLE_OTA_BEGIN_LEN) return false;
    hmac_sha256_update(&c, begin ? b + BLE_OTA_BEGIN_MAC_OFFSET : b, begin ? BLE_OTA_BEGIN_MAC_LEN : 1);
    hmac_sha256_final(&c, mac);
    return !memcmp(mac, begin ? b + BLE_OTA_BEGIN_TAG_OFFSET : b + 1, 16) && n >= 17;
}

TEST(protocol_vectors_round_trip)
{
    json_t *root = load_vectors();
    if (!root) fprintf(stderr, "    docs/protocol-vectors.json missing or unparsable\n");
    CHECK(root != NULL);
    double version = 0;
    CHECK(json_get_number(root, "version", &version) && version == 2);
    const json_t *vectors = json_get(root, "vectors");
    CHECK(vectors && vectors->type == JSON_ARRAY);
    unsigned checked = 0, bad = 0;
    for (const json_t *v = vectors->child; v; v = v->next) {
        const char *name = json_get_string(v, "name"), *kind = json_get_string(v, "kind"), *hex = json_get_string(v, "hex");
        const json_t *f = json_get(v, "fields");
        uint8_t want[512], got[512];
        long n = hex ? hex_decode(hex, want, sizeof want) : -1;
        bool ok;
        if (kind && f && !strcmp(kind, "manifest")) {
            ok = n > 0 && manifest_matches(root, f, want, (size_t)n);
        } else if (kind && f && !strcmp(kind, "device_key")) {
            ok = n > 0 && device_key_matches(f, want, (size_t)n);
        } else if (kind && f && !strcmp(kind, "patch")) {
            ok = n > 0 && patch_matches(f, want, (size_t)n);
        } else {
            size_t m = kind && f ? encode(kind, f, got) : 0;
            ok = n > 0 && m == (size_t)n && !memcmp(want, got, m) && decode_matches(kind, f, want, (size_t)n);
        }
        if (ok && !strcmp(kind, "command")) ok = tag_matches(root, v, want, (size_t)n);
        if (ok && !strcmp(kind, "advertisement")) {
            /* the version string of the note goes through the firmware's parser */
            const char *note = json_get_string(v, "note");
            const char *q = note ? strstr(note, "Version string: \"") : NULL;
            if (q) {
                char ver[40] = "";
                q += strlen("Version string: \"");
                size_t l = strcspn(q, "\"");
                snprintf(ver, sizeof ver, "%.*s", (int)(l < 39 ? l : 39), q);
                uint8_t parsed[3];
                ble_ota_parse_version(ver, parsed);
                ok = !memcmp(parsed, want + 8, 3);
            }
        }
        if (!ok) {
            fprintf(stderr, "    vector %s (%s) does not match\n", name ? name : "?", kind ? kind : "?");
            bad++;
        }
        checked++;
    }
    json_free(root);
    CHECK_EQ(bad, 0);
    CHECK(checked >= 100);
}
