/* The twin executable speaks docs/TWIN.md: drive a short scripted session through a pipe. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_image.h"
#include "json.h"
#include "test.h"

#define TWIN "../build/ble_ota_twin"

TEST(twin_speaks_the_documented_line_protocol)
{
    if (access(TWIN, X_OK) != 0) {
        /* built by the same make run (target "twin" precedes "test"); a missing twin is a failure */
        fprintf(stderr, "    %s not built\n", TWIN);
        CHECK(0);
    }
    char dir[] = "/tmp/fwtwin-XXXXXX";
    CHECK(mkdtemp(dir));
    char image_path[64], script_path[64], cmd[512];
    snprintf(image_path, sizeof image_path, "%s/running.bin", dir);
    snprintf(script_path, sizeof script_path, "%s/in.jsonl", dir);
    app_image_spec_t spec = {.chip_id = 9, .version = "v2.3.4", .secure_version = 0, .size = 40000, .seed = 1};
    size_t len;
    uint8_t *img = app_image_build(&spec, &len);
    FILE *fp = fopen(image_path, "wb");
    CHECK(fp);
    fwrite(img, 1, len, fp);
    fclose(fp);
    free(img);
    fp = fopen(script_path, "w");
    CHECK(fp);
    fputs("{\"op\":\"connect\",\"mtu\":247}\n"
          "{\"op\":\"write\",\"char\":\"control\",\"data\":\"01\"}\n"
          "{\"op\":\"write\",\"char\":\"data\",\"data\":\"00000000aabb\"}\n"
          "{\"op\":\"write\",\"char\":\"control\",\"data\":\"0a\"}\n"
          "{\"op\":\"read\",\"char\":\"model\"}\n"
          "{\"op\":\"read\",\"char\":\"status\"}\n"
          "{\"op\":\"adv\"}\n"
          "{\"op\":\"power_loss\"}\n"
          "not json\n"
          "{\"op\":\"quit\"}\n",
          fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s --state-dir %s --chip esp32s3 --running-image %s --policy host --device-id 240ac4123456 < %s", TWIN, dir,
             image_path, script_path);
    FILE *out = popen(cmd, "r");
    CHECK(out);
    char line[2048];
    unsigned done = 0, notifies = 0, reboots = 0, failures = 0;
    bool saw_challenge = false, saw_nak = false, saw_unknown = false, saw_model = false, saw_status = false, saw_adv = false;
    while (fgets(line, sizeof line, out)) {
        json_t *j = json_parse(line);
        if (!j) continue;
        const char *ev = json_get_string(j, "ev"), *data = json_get_string(j, "data");
        if (ev && !strcmp(ev, "done")) {
            done++;
            const json_t *ok = json_get(j, "ok");
            if (ok && !ok->boolean) failures++;
            if (data && !strcmp(data, "65737033327333")) saw_model = true; /* "esp32s3" */
            /* Status format 2, 252 bytes, device_id (offset 240) from --device-id */
            if (data && strlen(data) == 504 && !strncmp(data, "0202", 4) && !strncmp(data + 480, "240ac4123456", 12))
                saw_status = true;
            const char *mfg = json_get_string(j, "mfg");
            if (mfg && !strncmp(mfg, "e502b2", 6) && !strcmp(mfg + 16, "020304")) saw_adv = true;
        } else if (ev && !strcmp(ev, "notify")) {
            notifies++;
            if (data && !strncmp(data, "8100", 4) && strlen(data) == 40) saw_challenge = true; /* 20 bytes */
            if (data && !strcmp(data, "a10c00000000")) saw_nak = true;
            if (data && !strcmp(data, "ff060a")) saw_unknown = true;
        } else if (ev && !strcmp(ev, "reboot")) {
            reboots++;
        }
        json_free(j);
    }
    int rc = pclose(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(done, 10);
    CHECK_EQ(failures, 1); /* the line that is not JSON */
    CHECK_EQ(reboots, 1);
    CHECK(notifies >= 3);
    CHECK(saw_challenge && saw_nak && saw_unknown && saw_model && saw_status && saw_adv);
}
