/*
 * Power-loss sweep, MCUboot style: for each scenario (full update, resumed update, first boot with the
 * diagnostics passing and failing, CONFIRM, ROLLBACK) the power is cut at every flash operation it does
 * (app erase, app write, otadata erase, otadata write, NVS write), in turn. After each cut the device
 * boots again through the host port's bootloader (bootloader_utility.c's otadata state machine) and,
 * once more, after a further power cycle. Checked every time:
 *   - it boots an image that verifies, and that image is the old or the new one (never a third);
 *   - an image that was confirmed (passed its diagnostics and was marked valid) is not lost to a later
 *     reset, and a CONFIRM the client saw succeed sticks;
 *   - Status tells the truth: the OTA state is otadata's; "installed and OK" (last.result 0, flags bit5,
 *     no bit0) only while the new image runs; flags bit5 with the old image running carries "rolled
 *     back"; "confirmed" exactly when the running new image is valid; our update is never reported as
 *     another installer's; no session is left;
 *   - the device is not stuck: BEGIN is accepted afterwards.
 * The cut points and outcomes are printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_image.h"
#include "harness.h"
#include "test.h"

#define NEW_VERSION "4.0.0"
#define OLD_VERSION "1.0.0"

typedef struct {
    const char *name;
    ble_ota_confirm_policy_t policy;
    bool diagnostics_fail;
    bool (*setup)(const uint8_t *img, size_t len); /* before the sweep point, never cut */
    void (*action)(const uint8_t *img, size_t len);
    int expect_running; /* without a cut */
} scenario_t;

static bool s_confirm_seen_ok; /* the client got CONFIRM OK before the power went */

static bool no_setup(const uint8_t *img, size_t len)
{
    (void)img;
    (void)len;
    return true;
}

static bool setup_installed_no_reboot(const uint8_t *img, size_t len) { return h_update(img, len, false, 0) == 0; }

static bool setup_first_boot_done(const uint8_t *img, size_t len)
{
    return h_update(img, len, false, 1) == 0 && host_device_running(H.dev) == 1;
}

static void act_full_update(const uint8_t *img, size_t len) { h_update(img, len, false, 1); }

static void act_resumed_update(const uint8_t *img, size_t len)
{
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk = 0;
    uint32_t resume = 0;
    h_clear();
    if (h_begin(1, &b, true, &chunk, NULL) != 0) return;
    h_send(1, img, 0, (uint32_t)len / 2, chunk);
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 1, 247);
    b.flags = BLE_OTA_BEGIN_FLAG_RESUME;
    if (h_begin(1, &b, true, &chunk, &resume) != 0) return;
    if (h_send(1, img, resume, (uint32_t)len, chunk) != 0) return;
    if (h_end(1, 1) == 0) host_device_tick(H.dev, 400);
}

static void act_reboot(const uint8_t *img, size_t len)
{
    (void)img;
    (void)len;
    h_tagged(1, BLE_OTA_OP_REBOOT, true);
    host_device_tick(H.dev, 400);
}

static void act_confirm(const uint8_t *img, size_t len)
{
    (void)img;
    (void)len;
    s_confirm_seen_ok = h_tagged(1, BLE_OTA_OP_CONFIRM, true) == 0 && !host_device_flash(H.dev)->power_lost &&
                        strcmp(H.last_reboot, "power_loss") != 0;
}

static void act_rollback(const uint8_t *img, size_t len)
{
    (void)img;
    (void)len;
    h_tagged(1, BLE_OTA_OP_ROLLBACK, true);
    host_device_tick(H.dev, 400);
}

static const scenario_t SCENARIOS[] = {
    {"full update", BLE_OTA_POLICY_AUTO, false, no_setup, act_full_update, 1},
    {"resumed update", BLE_OTA_POLICY_AUTO, false, no_setup, act_resumed_update, 1},
    {"first boot, diagnostics pass", BLE_OTA_POLICY_AUTO, false, setup_installed_no_reboot, act_reboot, 1},
    {"first boot, diagnostics fail", BLE_OTA_POLICY_AUTO, true, setup_installed_no_reboot, act_reboot, 0},
    {"confirm", BLE_OTA_POLICY_HOST, false, setup_first_boot_done, act_confirm, 1},
    {"rollback", BLE_OTA_POLICY_HOST, false, setup_first_boot_done, act_rollback, 0},
};

static bool start(const scenario_t *sc)
{
    host_device_opts_t o = h_default_opts();
    o.cfg.policy = sc->policy;
    o.diagnostics_fail = sc->diagnostics_fail;
    return h_start(&o);
}

/* Checks the invariants on the device as it runs now; prints what is wrong. */
static bool state_ok(const char *when, long cut, int *running_out)
{
    bool ok = true;
#define EXPECT(cond, ...)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "    cut %ld, %s: ", cut, when);                                                 \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
            ok = false;                                                                                      \
        }                                                                                                    \
    } while (0)
    int running = host_device_running(H.dev);
    *running_out = running;
    EXPECT(running == 0 || running == 1, "no image boots");
    if (running < 0) return false;
    host_flash_t *f = host_device_flash(H.dev);
    esp_image_info_t info;
    EXPECT(esp_image_verify(host_flash_partition(f, running), f->psize, 5, true, &info) == ESP_IMAGE_OK,
           "the running image does not verify");
    bool is_old = strcmp(info.version, OLD_VERSION) == 0, is_new = strcmp(info.version, NEW_VERSION) == 0;
    EXPECT(is_old || is_new, "a third image runs: %s", info.version);
    ble_ota_status_t st;
    h_status(&st);
    const ble_ota_port_t *p = host_device_port(H.dev);
    EXPECT(st.ota_state == p->app_state(p->ctx), "Status ota_state %u, otadata says %d", st.ota_state,
           p->app_state(p->ctx));
    EXPECT(strcmp(st.app_version, info.version) == 0, "Status version %s, running %s", st.app_version, info.version);
    EXPECT(st.session_state == 0, "a session is left (%u)", st.session_state);
    bool valid_record = st.last_flags & BLE_OTA_LAST_RECORD_VALID;
    bool claims_installed_ok = valid_record && st.last_result == 0 && (st.last_flags & BLE_OTA_LAST_INSTALLED) &&
                               !(st.last_flags & BLE_OTA_LAST_ROLLED_BACK);
    if (is_old) {
        EXPECT(!claims_installed_ok, "old image runs, Status says the update is installed (result %u flags 0x%02x)",
               st.last_result, st.last_flags);
        if (valid_record && (st.last_flags & BLE_OTA_LAST_INSTALLED))
            EXPECT(st.last_flags & BLE_OTA_LAST_ROLLED_BACK, "installed, old image runs, not 'rolled back' (0x%02x)",
                   st.last_flags);
    } else {
        EXPECT(valid_record && (st.last_flags & BLE_OTA_LAST_INSTALLED) && !(st.last_flags & BLE_OTA_LAST_ROLLED_BACK),
               "new image runs, Status does not say installed (result %u flags 0x%02x)", st.last_result, st.last_flags);
        EXPECT(!(st.last_flags & BLE_OTA_LAST_OTHER_INSTALLER), "our update reported as another installer's");
        bool confirmed = st.last_flags & BLE_OTA_LAST_CONFIRMED;
        EXPECT(confirmed == (st.ota_state == BLE_OTA_IMG_VALID), "confirmed flag %d, ota_state %u", confirmed,
               st.ota_state);
    }
#undef EXPECT
    return ok;
}

static const char *op_name(host_op_kind_t k)
{
    switch (k) {
    case HOST_OP_ERASE: return "erase";
    case HOST_OP_PROGRAM: return "write";
    case HOST_OP_OTADATA: return "otadata";
    default: return "nvs";
    }
}

/* Runs one scenario over every cut point; returns the number of bad outcomes. */
static unsigned sweep(const scenario_t *sc, const uint8_t *img, size_t len)
{
    /* reference run: how many flash operations the action does */
    if (!start(sc) || !sc->setup(img, len)) {
        fprintf(stderr, "    %s: set-up failed\n", sc->name);
        return 1;
    }
    host_flash_t *f = host_device_flash(H.dev);
    unsigned long before = f->ops_total;
    sc->action(img, len);
    host_device_tick(H.dev, 1000);
    unsigned long total = f->ops_total - before;
    unsigned bad = host_device_running(H.dev) == sc->expect_running ? 0 : 1;
    if (bad) fprintf(stderr, "    %s: without a cut, slot %d runs\n", sc->name, host_device_running(H.dev));
    h_stop();
    unsigned by_op[4] = {0}, old_runs = 0, new_runs = 0;
    char trail[2048] = "";
    size_t tl = 0;
    long run_from = -1;
    char run_what[40] = "";
    for (unsigned long n = 0; n < total; n++) {
        if (!start(sc) || !sc->setup(img, len)) return bad + 1;
        f = host_device_flash(H.dev);
        s_confirm_seen_ok = false;
        host_device_cut_power_after(H.dev, (long)n);
        sc->action(img, len);
        host_device_tick(H.dev, 1000);
        by_op[f->cut_op]++;
        int running_a = -1, running_b = -1;
        bool ok = state_ok("after the cut", (long)n, &running_a);
        bool confirmed_a = running_a == 1 && host_device_port(H.dev)->app_state(host_device_port(H.dev)->ctx) == BLE_OTA_IMG_VALID;
        if (s_confirm_seen_ok && !confirmed_a) {
            fprintf(stderr, "    cut %lu: CONFIRM was answered OK, the image is not confirmed\n", n);
            ok = false;
        }
        host_device_power_loss(H.dev);
        host_device_tick(H.dev, 1000);
        ok = state_ok("after another power cycle", (long)n, &running_b) && ok;
        if (confirmed_a && running_b != 1) {
            fprintf(stderr, "    cut %lu: the confirmed image was lost to a reset\n", n);
            ok = false;
        }
        host_device_connect(H.dev, 1, 247);
        uint16_t chunk;
        h_clear();
        uint8_t err = h_begin_image(1, img, len, &chunk);
        if (err != 0) {
            fprintf(stderr, "    cut %lu: BEGIN afterwards refused (%u)\n", n, err);
            ok = false;
        }
        h_tagged(1, BLE_OTA_OP_ABORT, true);
        if (running_b == 1) new_runs++;
        else old_runs++;
        if (!ok) bad++;
        /* run-length list of "cut points: operation cut > image that boots" */
        char what[40];
        snprintf(what, sizeof what, "%s>%s%s", op_name(f->cut_op), running_b == 1 ? "new" : "old", ok ? "" : " BAD");
        if (run_from < 0 || strcmp(what, run_what) != 0) {
            if (run_from >= 0 && tl + 48 < sizeof trail)
                tl += (size_t)snprintf(trail + tl, sizeof trail - tl, " %ld-%lu %s,", run_from, n - 1, run_what);
            run_from = (long)n;
            snprintf(run_what, sizeof run_what, "%s", what);
        }
        h_stop();
    }
    if (run_from >= 0 && tl + 48 < sizeof trail)
        snprintf(trail + tl, sizeof trail - tl, " %ld-%lu %s", run_from, total - 1, run_what);
    printf("     sweep %-30s %3lu cut points (erase %u, write %u, otadata %u, nvs %u): old %u, new %u, bad %u\n",
           sc->name, total, by_op[HOST_OP_ERASE], by_op[HOST_OP_PROGRAM], by_op[HOST_OP_OTADATA], by_op[HOST_OP_NVS],
           old_runs, new_runs, bad);
    printf("       cut points (operation cut > image booting after it):%s\n", trail);
    return bad;
}

TEST(power_loss_sweep_at_every_flash_operation)
{
    size_t len;
    uint8_t *img = h_image(5, NEW_VERSION, 1, 70000, 11, &len);
    CHECK(img);
    unsigned bad = 0;
    for (unsigned i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) bad += sweep(&SCENARIOS[i], img, len);
    free(img);
    CHECK_EQ(bad, 0);
}
