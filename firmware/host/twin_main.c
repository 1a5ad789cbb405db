/*
 * ble_ota_twin: the portable core + host port on stdio, one JSON object per line (docs/TWIN.md).
 * The TypeScript simulator (lib/sim/twin-device.ts) runs it in place of its device model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_device.h"
#include "json.h"

#define LINE_MAX_LEN 8192

static host_device_t *s_dev;
static ble_ota_conn_t s_default_conn = 0;
static unsigned s_connections;

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_hex(const uint8_t *data, size_t len)
{
    char *hex = malloc(2 * len + 1);
    if (!hex) return;
    hex_encode(data, len, hex);
    printf("\"%s\"", hex);
    free(hex);
}

static void on_event(void *arg, const host_event_t *ev)
{
    (void)arg;
    if (ev->type == HOST_EV_NOTIFY) {
        printf("{\"ev\":\"notify\",\"char\":\"%s\",", ev->chr == BLE_OTA_CHR_CONTROL ? "control" : "status");
        if (ev->chr == BLE_OTA_CHR_CONTROL) printf("\"conn\":%u,", ev->conn);
        printf("\"data\":");
        print_hex(ev->data, ev->len);
        printf("}\n");
    } else if (ev->type == HOST_EV_FLASH) {
        printf("{\"ev\":\"flash\",\"op\":\"%s\",\"ms\":%.6f}\n", ev->text, ev->ms);
    } else if (ev->type == HOST_EV_CUT) {
        printf("{\"ev\":\"cut\"}\n");
    } else if (ev->type == HOST_EV_REBOOT) {
        s_connections = 0;
        printf("{\"ev\":\"reboot\",\"reason\":");
        json_string(ev->text);
        printf("}\n");
    } else {
        printf("{\"ev\":\"log\",\"msg\":");
        json_string(ev->text);
        printf("}\n");
    }
}

/* Ends a "done" line: with "timer" (ms until the core's armed timer fires) the simulator ticks the twin
 * exactly then instead of polling (docs/TWIN.md). */
static void done_end(void)
{
    uint32_t in_ms;
    if (s_dev && host_device_next_timer(s_dev, &in_ms)) printf(",\"timer\":%u", in_ms);
    printf("}\n");
}

static void done_ok(void)
{
    printf("{\"ev\":\"done\",\"ok\":true");
    done_end();
}

static void done_error(const char *msg)
{
    printf("{\"ev\":\"done\",\"ok\":false,\"error\":");
    json_string(msg);
    done_end();
}

static void done_att(int att)
{
    printf("{\"ev\":\"done\",\"ok\":false,\"att\":%d", att);
    done_end();
}

static void done_data(const uint8_t *data, size_t len)
{
    printf("{\"ev\":\"done\",\"ok\":true,\"data\":");
    print_hex(data, len);
    done_end();
}

static const char *s_name = "ota-twin";

static ble_ota_conn_t conn_of(const json_t *req)
{
    double c;
    return json_get_number(req, "conn", &c) ? (ble_ota_conn_t)c : s_default_conn;
}

static void handle(const json_t *req)
{
    const char *op = json_get_string(req, "op");
    double num = 0;
    if (!op) {
        done_error("missing \"op\"");
    } else if (!strcmp(op, "connect")) {
        uint16_t mtu = json_get_number(req, "mtu", &num) ? (uint16_t)num : 23;
        host_device_connect(s_dev, conn_of(req), mtu); /* LL data length 251 unless "dl" says otherwise */
        if (json_get_number(req, "dl", &num)) ble_ota_core_on_data_len(conn_of(req), (uint16_t)num);
        s_connections++;
        done_ok();
    } else if (!strcmp(op, "data_len")) {
        ble_ota_core_on_data_len(conn_of(req), json_get_number(req, "dl", &num) ? (uint16_t)num : 27);
        done_ok();
    } else if (!strcmp(op, "mtu")) {
        ble_ota_core_on_mtu(conn_of(req), json_get_number(req, "mtu", &num) ? (uint16_t)num : 23);
        done_ok();
    } else if (!strcmp(op, "disconnect")) {
        host_device_disconnect(s_dev, conn_of(req));
        if (s_connections) s_connections--;
        done_ok();
    } else if (!strcmp(op, "write")) {
        const char *chr = json_get_string(req, "char"), *hex = json_get_string(req, "data");
        uint8_t buf[LINE_MAX_LEN / 2];
        long n = hex ? hex_decode(hex, buf, sizeof buf) : -1;
        if (!chr || n < 0) {
            done_error("write needs \"char\" and hex \"data\"");
        } else if (!strcmp(chr, "control")) {
            int att = host_device_control(s_dev, conn_of(req), buf, (size_t)n);
            if (att) done_att(att);
            else done_ok();
        } else if (!strcmp(chr, "data")) {
            host_device_data(s_dev, conn_of(req), buf, (size_t)n, true);
            done_ok();
        } else {
            done_att(0x03); /* write not permitted */
        }
    } else if (!strcmp(op, "read")) {
        const char *chr = json_get_string(req, "char");
        const ble_ota_app_info_t *app = ble_ota_core_app_info();
        if (chr && !strcmp(chr, "status")) {
            uint8_t st[BLE_OTA_STATUS_LEN];
            done_data(st, ble_ota_core_read_status(st));
        } else if (chr && !strcmp(chr, "manufacturer")) {
            done_data((const uint8_t *)"Espressif", 9);
        } else if (chr && !strcmp(chr, "model")) {
            const char *m = ble_ota_chip_name(app->chip_id);
            done_data((const uint8_t *)m, strlen(m));
        } else if (chr && !strcmp(chr, "fw_rev")) {
            done_data((const uint8_t *)app->version, strlen(app->version));
        } else {
            done_att(0x02); /* read not permitted */
        }
    } else if (!strcmp(op, "tick")) {
        host_device_tick(s_dev, json_get_number(req, "ms", &num) && num > 0 ? (uint32_t)num : 0);
        done_ok();
    } else if (!strcmp(op, "adv")) {
        if (s_connections >= BLE_OTA_MAX_CONNECTIONS) {
            printf("{\"ev\":\"done\",\"ok\":true,\"advertising\":false");
            done_end();
        } else {
            uint8_t mfg[BLE_OTA_MFG_DATA_LEN];
            ble_ota_core_build_mfg_data(mfg);
            printf("{\"ev\":\"done\",\"ok\":true,\"advertising\":true,\"name\":");
            json_string(s_name);
            printf(",\"mfg\":");
            print_hex(mfg, sizeof mfg);
            done_end();
        }
    } else if (!strcmp(op, "fault")) {
        /* docs/TWIN.md "fault": counted from now over app-partition erase/program calls, or otadata / NVS writes */
        host_flash_t *f = host_device_flash(s_dev);
        const char *kind = json_get_string(req, "kind");
        unsigned long n = json_get_number(req, "n", &num) && num >= 1 ? (unsigned long)num : 0;
        if (!kind || n == 0) {
            done_error("fault needs \"kind\" and \"n\" >= 1");
        } else if (!strcmp(kind, "cut")) {
            f->app_cut_at = f->app_ops + n;
            f->torn_bytes = json_get_number(req, "bytes", &num) && num > 0 ? (uint32_t)num : 0;
            done_ok();
        } else if (!strcmp(kind, "flash_fail")) {
            f->app_fail_at = f->app_ops + n;
            done_ok();
        } else if (!strcmp(kind, "otadata_fail")) {
            f->otadata_fail_in = (unsigned)n;
            done_ok();
        } else if (!strcmp(kind, "nvs_fail")) {
            f->nvs_fail_in = (unsigned)n;
            done_ok();
        } else if (!strcmp(kind, "diag_cut")) {
            f->diag_cut_in = (unsigned)n;
            done_ok();
        } else {
            done_error("unknown fault kind");
        }
    } else if (!strcmp(op, "power_loss")) {
        s_connections = 0;
        host_device_power_loss(s_dev);
        done_ok();
    } else if (!strcmp(op, "quit")) {
        done_ok();
        fflush(stdout);
        host_device_destroy(s_dev);
        exit(0);
    } else {
        done_error("unknown op");
    }
}

static int chip_id_of(const char *name)
{
    static const struct {
        const char *name;
        int id;
    } chips[] = {{"esp32", 0}, {"esp32s2", 2}, {"esp32c3", 5}, {"esp32s3", 9},
                 {"esp32c2", 12}, {"esp32c6", 13}, {"esp32h2", 16}, {"esp32p4", 18}};
    for (unsigned i = 0; i < sizeof chips / sizeof chips[0]; i++)
        if (!strcmp(chips[i].name, name)) return chips[i].id;
    return -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = buf ? (size_t)n : 0;
    return buf;
}

static void usage(const char *msg)
{
    fprintf(stderr,
            "ble_ota_twin: %s\nusage: ble_ota_twin --state-dir DIR --chip esp32 --running-image FILE [--fleet-key HEX64]\n"
            "       [--device-key HEX64] [--release-key ID:HEX130]... [--allow-unauthenticated]\n"
            "       [--provisioning-window-ms N] [--signed-required] [--device-id HEX12] [--release-floor N]\n"
            "       [--policy auto|host] [--diagnostics pass|fail] [--allow-downgrade] [--partition-size N]\n"
            "       [--resume-timeout-ms N] [--name NAME] [--max-chunk N] [--window N] [--ack-interval N]\n"
            "       [--chip-rev N] [--ble ok|fail]\n",
            msg);
    exit(2);
}

int main(int argc, char **argv)
{
    host_device_opts_t o;
    memset(&o, 0, sizeof o);
    ble_ota_config_default(&o.cfg);
    o.flash_time_is_device_time = true; /* the simulator times the twin by its flash events */
    const char *image_path = NULL;
    int chip = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        if (!strcmp(a, "--allow-downgrade")) {
            o.cfg.allow_downgrade = true;
            takes_value = false;
        } else if (!strcmp(a, "--allow-unauthenticated")) {
            o.cfg.allow_unauthenticated = true;
            takes_value = false;
        } else if (!strcmp(a, "--signed-required")) {
            o.signed_required = true;
            takes_value = false;
        } else if (!v) {
            usage("missing value");
        } else if (!strcmp(a, "--state-dir")) o.state_dir = v;
        else if (!strcmp(a, "--chip")) {
            if ((chip = chip_id_of(v)) < 0) usage("unknown chip");
        } else if (!strcmp(a, "--running-image")) image_path = v;
        else if (!strcmp(a, "--fleet-key")) {
            if (hex_decode(v, o.fleet_key, 32) != 32) usage("--fleet-key needs 64 hex digits");
            o.has_fleet_key = true;
        } else if (!strcmp(a, "--device-key")) {
            if (hex_decode(v, o.device_key, 32) != 32) usage("--device-key needs 64 hex digits");
            o.has_device_key = true;
        } else if (!strcmp(a, "--release-key")) {
            /* ID:HEX, ID = key_id 0..3, HEX = the 65-byte uncompressed SEC1 point */
            if (v[0] < '0' || v[0] > '3' || v[1] != ':' || hex_decode(v + 2, o.release_keys[v[0] - '0'], 65) != 65)
                usage("--release-key needs ID:HEX (key_id 0..3, 130 hex digits)");
            o.release_key_mask |= (uint8_t)(1u << (v[0] - '0'));
        } else if (!strcmp(a, "--provisioning-window-ms")) {
            o.cfg.provision_window_ms = (uint32_t)strtoul(v, NULL, 0);
            o.provision_button = o.cfg.provision_window_ms > 0; /* the physical action at every boot */
        } else if (!strcmp(a, "--device-id")) {
            if (hex_decode(v, o.device_id, 6) != 6) usage("--device-id needs 12 hex digits");
        } else if (!strcmp(a, "--release-floor")) o.release_floor = (uint32_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--policy")) {
            if (strcmp(v, "auto") && strcmp(v, "host")) usage("--policy auto|host");
            o.cfg.policy = !strcmp(v, "host") ? BLE_OTA_POLICY_HOST : BLE_OTA_POLICY_AUTO;
        } else if (!strcmp(a, "--diagnostics")) {
            if (strcmp(v, "pass") && strcmp(v, "fail")) usage("--diagnostics pass|fail");
            o.diagnostics_fail = !strcmp(v, "fail");
        } else if (!strcmp(a, "--chip-rev")) o.chip_rev = (uint16_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--ble")) {
            if (strcmp(v, "ok") && strcmp(v, "fail")) usage("--ble ok|fail");
            o.ble_fails = !strcmp(v, "fail");
        } else if (!strcmp(a, "--partition-size")) o.partition_size = (uint32_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--resume-timeout-ms")) o.cfg.resume_timeout_ms = (uint32_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--name")) s_name = v;
        else if (!strcmp(a, "--max-chunk")) o.cfg.max_chunk = (uint16_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--window")) o.cfg.window = (uint32_t)strtoul(v, NULL, 0);
        else if (!strcmp(a, "--ack-interval")) o.cfg.ack_interval = (uint32_t)strtoul(v, NULL, 0);
        else usage("unknown option");
        if (takes_value) i++;
    }
    if (!o.state_dir || chip < 0 || !image_path) usage("--state-dir, --chip and --running-image are required");
    size_t len = 0;
    uint8_t *image = read_file(image_path, &len);
    if (!image) usage("cannot read --running-image");
    o.chip_id = (uint16_t)chip;
    o.running_image = image;
    o.running_image_len = len;
    o.on_event = on_event;
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_dev = host_device_create(&o);
    if (!s_dev) return 1;
    char *line = malloc(LINE_MAX_LEN * 2 + 1);
    while (line && fgets(line, LINE_MAX_LEN * 2, stdin)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        json_t *req = json_parse(line);
        if (!req || req->type != JSON_OBJECT) done_error("not a JSON object");
        else handle(req);
        json_free(req);
        fflush(stdout);
    }
    free(line);
    host_device_destroy(s_dev);
    free(image);
    return 0;
}
