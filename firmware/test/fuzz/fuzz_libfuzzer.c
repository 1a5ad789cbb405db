/* libFuzzer entry point (clang -fsanitize=fuzzer). With FUZZ_CODES=1 the error codes reached are printed
 * at exit. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_ota.h"

static void print_codes(void)
{
    for (int c = 0; c < 256; c++)
        if (fuzz_codes_seen[c]) fprintf(stderr, "code %d: %lu\n", c, fuzz_codes_seen[c]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (getenv("FUZZ_CODES")) atexit(print_codes);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run_input(data, size); }
