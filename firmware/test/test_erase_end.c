/* ble_ota_erase_end: where both ports stop erasing for an image (the TS device model's eraseEnd,
 * lib/sim/device/flash-timing.ts, has the same cases in test/sim/flash-timing.test.ts). */
#include "ble_ota_port.h"
#include "test.h"

#define KIB 1024u

TEST(erase_end_takes_the_last_block_whole_when_four_or_more_of_its_sectors_are_needed)
{
    /* 1433600 B = 21 blocks + 14 sectors: one block erase instead of 14 sector erases. */
    CHECK_EQ(ble_ota_erase_end(1433600u, 0x1e0000u), 22u * 64u * KIB);
    /* 4 sectors of the last block: the block (150 ms < 4 x 45 ms). */
    CHECK_EQ(ble_ota_erase_end(64u * KIB + 3u * 4u * KIB + 1u, 0x1e0000u), 128u * KIB);
}

TEST(erase_end_keeps_sectors_for_a_short_tail_an_aligned_image_and_a_full_partition)
{
    /* 3 sectors: cheaper one by one. */
    CHECK_EQ(ble_ota_erase_end(64u * KIB + 3u * 4u * KIB, 0x1e0000u), 64u * KIB + 12u * KIB);
    /* Already block-aligned, and a partial last sector rounds up to its sector. */
    CHECK_EQ(ble_ota_erase_end(128u * KIB, 0x1e0000u), 128u * KIB);
    CHECK_EQ(ble_ota_erase_end(1u, 0x1e0000u), 4u * KIB);
    /* The block would reach past the partition: sectors. */
    CHECK_EQ(ble_ota_erase_end(0x1e0000u - 20u * KIB, 0x1e0000u - 4u * KIB), 0x1e0000u - 20u * KIB);
    /* No overflow near 4 GiB. */
    CHECK_EQ(ble_ota_erase_end(0xfffff000u, 0xffffffffu), 0xfffff000u);
}
