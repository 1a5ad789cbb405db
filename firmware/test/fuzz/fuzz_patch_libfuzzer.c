/* libFuzzer entry of the patch applier target (clang -fsanitize=fuzzer). */
#include "fuzz_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_patch_run(data, size); }
