/* The fuzz target's entry, shared by the libFuzzer build and the corpus replay. */
#ifndef FUZZ_OTA_H
#define FUZZ_OTA_H

#include <stddef.h>
#include <stdint.h>

/** Run one input (device configuration + operation program) on a fresh simulated device. */
int fuzz_run_input(const uint8_t *data, size_t size);
/** Responses, DATA_NAKs and SESSION_ABORTED notifications seen so far, by error code. */
extern unsigned long fuzz_codes_seen[256];

#endif
