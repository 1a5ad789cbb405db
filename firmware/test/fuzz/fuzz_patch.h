/* The delta patch applier's fuzz target (fuzz_patch.c), shared by the libFuzzer entry and the replay. */
#ifndef FUZZ_PATCH_H
#define FUZZ_PATCH_H

#include <stddef.h>
#include <stdint.h>

/* Outcomes counted over the inputs run: DONE, MORE (patch ended early), READ_FAILED, INVALID + reason. */
enum {
    FUZZ_PATCH_OUTCOME_DONE,
    FUZZ_PATCH_OUTCOME_MORE,
    FUZZ_PATCH_OUTCOME_READ_FAILED,
    FUZZ_PATCH_OUTCOME_INVALID, /* + ble_ota_patch_reason_t */
    FUZZ_PATCH_OUTCOMES = FUZZ_PATCH_OUTCOME_INVALID + 7,
};
extern unsigned long fuzz_patch_outcomes[FUZZ_PATCH_OUTCOMES];

/* Runs one input; aborts (a crash for libFuzzer) when a check fails. */
int fuzz_patch_run(const uint8_t *data, size_t size);

#endif
