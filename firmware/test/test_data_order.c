/* PROTOCOL.md §3: which NAK wins when a Data write breaks several rules at once (EMPTY_WRITE, NO_SESSION,
 * OVERSIZED, DUPLICATE, GAP, OUT_OF_WINDOW), on the same core the firmware runs. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

TEST(data_checks_without_a_session_empty_write_first)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    uint8_t raw[4 + 600] = {0};
    host_device_data(H.dev, 1, raw, 0, true);
    CHECK(h_nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 0));
    host_device_data(H.dev, 1, raw, 4, true);
    CHECK(h_nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 0));
    /* a payload larger than any chunk size: NO_SESSION comes before OVERSIZED */
    host_device_data(H.dev, 1, raw, sizeof raw, true);
    CHECK(h_nak_is(1, BLE_OTA_ERR_NO_SESSION, 0));
    h_stop();
}

TEST(data_checks_in_a_session_follow_protocol_order)
{
    host_device_opts_t o = h_default_opts();
    size_t len;
    uint8_t *img = h_start_with_image(&o, 80000, &len);
    CHECK(img);
    uint8_t raw[600] = {0};
    uint16_t chunk = 0;
    CHECK_EQ(h_begin_image(1, img, len, &chunk), 0);
    CHECK_EQ(chunk, 240);
    CHECK_EQ(h_send(1, img, 0, 2400, chunk), 0);
    h_clear();

    /* another connection's empty write: EMPTY_WRITE (not NO_SESSION), offset 0: it has no session */
    host_device_connect(H.dev, 2, 247);
    host_device_data(H.dev, 2, raw, 3, true);
    CHECK(h_nak_is(2, BLE_OTA_ERR_EMPTY_WRITE, 0));
    h_data(2, 2400, img + 2400, chunk);
    CHECK(h_nak_is(2, BLE_OTA_ERR_NO_SESSION, 0));
    CHECK(h_no_nak(1));

    /* OVERSIZED before DUPLICATE, and it does not use up the one DUPLICATE NAK */
    h_data(1, 0, raw, chunk + 1u);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OVERSIZED, 2400));
    h_data(1, 0, img, chunk);
    CHECK(h_nak_is(1, BLE_OTA_ERR_DUPLICATE, 2400));

    /* OVERSIZED before GAP */
    h_data(1, 4800, raw, chunk + 1u);
    CHECK(h_nak_is(1, BLE_OTA_ERR_OVERSIZED, 2400));
    /* past a gap AND past the window (acked + 16384): GAP */
    h_data(1, 2400 + 16384, img, chunk);
    CHECK(h_nak_is(1, BLE_OTA_ERR_GAP, 2400));
    /* the same gap again, past transfer_size this time: dropped silently (one NAK per gap) */
    h_data(1, (uint32_t)len - 10, raw, 100);
    CHECK(h_no_nak(1));

    /* after the go-back a new gap that is also past transfer_size: GAP again, not OUT_OF_WINDOW */
    CHECK_EQ(h_send(1, img, 2400, 4800, chunk), 0);
    h_clear();
    h_data(1, (uint32_t)len - 10, raw, 100);
    CHECK(h_nak_is(1, BLE_OTA_ERR_GAP, 4800));

    /* at expected, past transfer_size: OUT_OF_WINDOW, answered every time */
    uint32_t last = (uint32_t)len - 100;
    CHECK_EQ(h_send(1, img, 4800, last, chunk), 0);
    h_clear();
    for (int i = 0; i < 2; i++) {
        h_data(1, last, raw, 200);
        CHECK(h_nak_is(1, BLE_OTA_ERR_OUT_OF_WINDOW, last));
    }
    CHECK_EQ(h_send(1, img, last, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}
