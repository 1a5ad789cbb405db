/* docs/protocol-vectors.json (PROTOCOL.md §11): decode each vector and compare with its fields, encode
 * the fields and compare with its hex; tags recomputed with the vector's fleet key and nonce. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "ble_ota_codec.h"
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
            return ble_ota_encode_begin(&r, out);
        }
        out[0] = (uint8_t)op;
        if (op == BLE_OTA_OP_CHALLENGE) return 1;
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
        return ble_ota_encode_status(&st, out);
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
        uint8_t sha[32], tag[16];
        hex_field(f, "sha256", sha, 32);
        hex_field(f, "tag", tag, 16);
        return ble_ota_decode_begin(b, n, &r) && r.image_size == (uint32_t)num(f, "image_size") &&
               r.transfer_size == (uint32_t)num(f, "transfer_size") && r.encoding == num(f, "encoding") &&
               r.flags == num(f, "flags") && r.chunk_size == num(f, "chunk_size") && !memcmp(r.sha256, sha, 32) &&
               !memcmp(r.tag, tag, 16);
    }
    if (!strcmp(kind, "status")) {
        ble_ota_status_t st;
        uint8_t again[BLE_OTA_STATUS_V2_LEN];
        return ble_ota_decode_status(b, n, &st) && ble_ota_encode_status(&st, again) == n && !memcmp(again, b, n) &&
               st.caps == num(f, "caps") && st.session_offset == (uint32_t)num(f, "session_offset") &&
               !strcmp(st.app_version, json_get_string(f, "app_version"));
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
    CHECK(json_get_number(root, "version", &version) && version == 1);
    const json_t *vectors = json_get(root, "vectors");
    CHECK(vectors && vectors->type == JSON_ARRAY);
    unsigned checked = 0, bad = 0;
    for (const json_t *v = vectors->child; v; v = v->next) {
        const char *name = json_get_string(v, "name"), *kind = json_get_string(v, "kind"), *hex = json_get_string(v, "hex");
        const json_t *f = json_get(v, "fields");
        uint8_t want[512], got[512];
        long n = hex ? hex_decode(hex, want, sizeof want) : -1;
        size_t m = kind && f ? encode(kind, f, got) : 0;
        bool ok = n > 0 && m == (size_t)n && !memcmp(want, got, m) && decode_matches(kind, f, want, (size_t)n);
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
    CHECK(checked >= 60);
}
