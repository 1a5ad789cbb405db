/* Runs every registered test; the last line is "N passed, M failed". Exit status 1 on any failure. */
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define MAX_TESTS 256

static struct {
    const char *name;
    test_fn fn;
} tests[MAX_TESTS];
static int test_count;
int test_current_failed;

void test_register(const char *name, test_fn fn)
{
    if (test_count < MAX_TESTS) {
        tests[test_count].name = name;
        tests[test_count].fn = fn;
        test_count++;
    }
}

void test_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, expr);
    test_current_failed = 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    qsort(tests, (size_t)test_count, sizeof tests[0], by_name);
    for (int i = 0; i < test_count; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
        test_current_failed = 0;
        tests[i].fn();
        printf("%s %s\n", test_current_failed ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
        if (test_current_failed) failed++;
        else passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
