/**
 * Modeled cost of the manifest's signature check (PROTOCOL.md §12.2): one SHA-256 over the signed part
 * (at most 352 bytes) and one ECDSA P-256 verify, run by the writer as the session's first job (not at
 * BEGIN: the BEGIN answer does not wait for it, and the BLE host keeps running). The figures are ESP-IDF's performance limits, the
 * slowest a passing test run may be (docs/DEVICE-MODEL.md "Manifest check time" has the table and the
 * sources); the firmware twin uses the same table.
 */
import type { ChipName } from '../types';

/**
 * IDF_PERFORMANCE_MAX_ECDSA_P256_VERIFY_OP (µs), ESP-IDF v5.3.2
 * components/idf_test/include/<chip>/idf_performance_target.h: esp32c2 :28 (49000), esp32c6 :18 (27000),
 * esp32h2 :29 (67000). The other chips have no ECC accelerator and no figure in v5.3.2 (mbedTLS verifies
 * in software on the MPI accelerator): the model takes twice the slowest published figure, 134000 µs,
 * a pessimistic bound rather than a measurement.
 */
export const ECDSA_P256_VERIFY_US: Readonly<Record<ChipName, number>> = {
  esp32: 134_000,
  esp32s2: 134_000,
  esp32c3: 134_000,
  esp32s3: 134_000,
  esp32c2: 49_000,
  esp32c6: 27_000,
  esp32h2: 67_000,
  esp32p4: 134_000,
};

/**
 * SHA-256 throughput: the lowest IDF_PERFORMANCE_MIN_SHA256_THROUGHPUT_MBSEC of v5.3.2, esp32
 * idf_performance_target.h:15-19 (6.0 MB/s under FreeRTOS SMP, else 8.0), for every chip (pessimistic:
 * the others are faster). Over ≤ 352 bytes it is below 0.1 ms; the verify dominates.
 */
export const SHA256_MIN_BYTES_PER_US = 6.0;

/** Time of one manifest check on the device (ms): the SHA-256 over the signed bytes + one verify. */
export function manifestCheckMs(chip: ChipName, signedBytes: number): number {
  return (Math.ceil(signedBytes / SHA256_MIN_BYTES_PER_US) + ECDSA_P256_VERIFY_US[chip]) / 1000;
}
