/*
 * Replays files or directories through the patch applier target without libFuzzer (any C compiler), prints
 * how often each outcome was reached and, with --require-all, fails unless the inputs reach every outcome a
 * patch can reach: a whole image, an early end, a read error and each PATCH_INVALID reason.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ble_ota_patch.h"
#include "fuzz_patch.h"

static unsigned s_files;

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_patch_replay: %s not found\n", path);
        exit(2);
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            run_path(p);
        }
        if (d) closedir(d);
        return;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fuzz_patch_replay: cannot open %s\n", path);
        exit(2);
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fuzz_patch_run(buf, n);
    s_files++;
}

static const char *outcome_name(int k)
{
    if (k == FUZZ_PATCH_OUTCOME_DONE) return "done";
    if (k == FUZZ_PATCH_OUTCOME_MORE) return "ended early";
    if (k == FUZZ_PATCH_OUTCOME_READ_FAILED) return "read failed";
    return ble_ota_patch_reason_str((ble_ota_patch_reason_t)(k - FUZZ_PATCH_OUTCOME_INVALID));
}

int main(int argc, char **argv)
{
    int require_all = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--require-all") == 0) require_all = 1;
        else run_path(argv[i]);
    }
    printf("replayed %u inputs; outcomes:", s_files);
    int missing = 0;
    for (int k = 0; k < FUZZ_PATCH_OUTCOMES; k++) {
        int reason = k - FUZZ_PATCH_OUTCOME_INVALID;
        /* INVALID without a reason does not exist; a position overflow needs 2^31 records of 2^31 seeks */
        if (reason == BLE_OTA_PATCH_REASON_NONE || reason == BLE_OTA_PATCH_REASON_POSITION_OVERFLOW) continue;
        printf(" [%s] %lu", outcome_name(k), fuzz_patch_outcomes[k]);
        if (!fuzz_patch_outcomes[k]) missing++;
    }
    printf("\n");
    if (require_all && missing) {
        fprintf(stderr, "fuzz_patch_replay: %d outcome(s) never reached\n", missing);
        return 1;
    }
    return 0;
}
