/* PROTOCOL.md §3: which NAK wins when a Data write breaks several rules at once (EMPTY_WRITE, NO_SESSION,
 * OVERSIZED, DUPLICATE, GAP, OUT_OF_WINDOW), on the same core the firmware runs. */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

/* The next DATA_NAK on conn must be err with expected_offset; false (after recording why) otherwise. */
static bool nak_is(ble_ota_conn_t conn, uint8_t err, uint32_t expected)
{
    note_t n;
    if (!h_find(conn, BLE_OTA_OP_DATA_NAK, &n)) {
        fprintf(stderr, "    no DATA_NAK on conn %u (wanted err %u)\n", (unsigned)conn, err);
        return false;
    }
    if (n.len != 6 || n.data[1] != err || ble_ota_get_u32(n.data + 2) != expected) {
        fprintf(stderr, "    DATA_NAK err %u expected %u, wanted err %u expected %u\n", n.data[1],
                (unsigned)ble_ota_get_u32(n.data + 2), err, (unsigned)expected);
        return false;
    }
    return true;
}

static bool no_nak(ble_ota_conn_t conn)
{
    note_t n;
    return !h_find(conn, BLE_OTA_OP_DATA_NAK, &n);
}

TEST(data_checks_without_a_session_empty_write_first)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    uint8_t raw[4 + 600] = {0};
    host_device_data(H.dev, 1, raw, 0, true);
    CHECK(nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 0));
    host_device_data(H.dev, 1, raw, 4, true);
    CHECK(nak_is(1, BLE_OTA_ERR_EMPTY_WRITE, 0));
    /* a payload larger than any chunk size: NO_SESSION comes before OVERSIZED */
    host_device_data(H.dev, 1, raw, sizeof raw, true);
    CHECK(nak_is(1, BLE_OTA_ERR_NO_SESSION, 0));
    h_stop();
}

TEST(data_checks_in_a_session_follow_protocol_order)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    size_t len;
    uint8_t *img = h_image(5, "2.0.0", 1, 80000, 3, &len);
    CHECK(img);
    uint8_t raw[600] = {0};
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk = 0;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(chunk, 240);
    CHECK_EQ(h_send(1, img, 0, 2400, chunk), 0);
    h_clear();

    /* another connection's empty write: EMPTY_WRITE (not NO_SESSION), offset 0: it has no session */
    host_device_connect(H.dev, 2, 247);
    host_device_data(H.dev, 2, raw, 3, true);
    CHECK(nak_is(2, BLE_OTA_ERR_EMPTY_WRITE, 0));
    h_data(2, 2400, img + 2400, chunk);
    CHECK(nak_is(2, BLE_OTA_ERR_NO_SESSION, 0));
    CHECK(no_nak(1));

    /* OVERSIZED before DUPLICATE, and it does not use up the one DUPLICATE NAK */
    h_data(1, 0, raw, chunk + 1u);
    CHECK(nak_is(1, BLE_OTA_ERR_OVERSIZED, 2400));
    h_data(1, 0, img, chunk);
    CHECK(nak_is(1, BLE_OTA_ERR_DUPLICATE, 2400));

    /* OVERSIZED before GAP */
    h_data(1, 4800, raw, chunk + 1u);
    CHECK(nak_is(1, BLE_OTA_ERR_OVERSIZED, 2400));
    /* past a gap AND past the window (acked + 16384): GAP */
    h_data(1, 2400 + 16384, img, chunk);
    CHECK(nak_is(1, BLE_OTA_ERR_GAP, 2400));
    /* the same gap again, past transfer_size this time: dropped silently (one NAK per gap) */
    h_data(1, (uint32_t)len - 10, raw, 100);
    CHECK(no_nak(1));

    /* after the go-back a new gap that is also past transfer_size: GAP again, not OUT_OF_WINDOW */
    CHECK_EQ(h_send(1, img, 2400, 4800, chunk), 0);
    h_clear();
    h_data(1, (uint32_t)len - 10, raw, 100);
    CHECK(nak_is(1, BLE_OTA_ERR_GAP, 4800));

    /* at expected, past transfer_size: OUT_OF_WINDOW, answered every time */
    uint32_t last = (uint32_t)len - 100;
    CHECK_EQ(h_send(1, img, 4800, last, chunk), 0);
    h_clear();
    for (int i = 0; i < 2; i++) {
        h_data(1, last, raw, 200);
        CHECK(nak_is(1, BLE_OTA_ERR_OUT_OF_WINDOW, last));
    }
    CHECK_EQ(h_send(1, img, last, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 1), 0);
    host_device_tick(H.dev, 400);
    CHECK_EQ(host_device_running(H.dev), 1);
    free(img);
    h_stop();
}
