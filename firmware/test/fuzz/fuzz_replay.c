/*
 * Corpus replay without libFuzzer (any C compiler): runs every file named on the command line (or every
 * file of the directories named) through the fuzz target, prints how often each error code was reached
 * and fails when one of the codes the corpus must reach (--require CODE, repeatable) was not.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ble_ota_core.h"
#include "fuzz_ota.h"

static unsigned s_files;

static void run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fuzz_replay: cannot open %s\n", path);
        exit(2);
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fuzz_run_input(buf, n);
    s_files++;
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_replay: %s not found\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        run_path(p);
    }
    if (d) closedir(d);
}

int main(int argc, char **argv)
{
    int required[64], nreq = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--require") == 0 && i + 1 < argc && nreq < 64) required[nreq++] = atoi(argv[++i]);
        else run_path(argv[i]);
    }
    printf("replayed %u inputs; error codes reached:", s_files);
    for (int c = 1; c < 256; c++)
        if (fuzz_codes_seen[c]) printf(" %d(x%lu)", c, fuzz_codes_seen[c]);
    printf("\n");
    int missing = 0;
    for (int i = 0; i < nreq; i++) {
        if (!fuzz_codes_seen[required[i] & 0xFF]) {
            fprintf(stderr, "fuzz_replay: the corpus never reaches error code %d\n", required[i]);
            missing++;
        }
    }
    return missing ? 1 : 0;
}
