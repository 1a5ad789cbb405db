/* PROTOCOL.md §1/§2: at the default ATT MTU 23 a notification carries 20 bytes, and every Control message
 * the core sends must fit (the core drops, rather than cuts, anything longer: a missing response here). */
#include <stdlib.h>
#include <string.h>

#include "app_image.h"
#include "harness.h"
#include "test.h"

#define MTU23_PAYLOAD 20 /* ATT_MTU 23 - 3 */

TEST(challenge_response_is_20_bytes_without_proto_version)
{
    host_device_opts_t o = h_default_opts();
    CHECK(h_start(&o));
    uint8_t op = BLE_OTA_OP_CHALLENGE;
    CHECK_EQ(h_control(1, &op, 1), 0);
    note_t n;
    CHECK(h_find(1, 0x81, &n));
    CHECK_EQ(n.len, MTU23_PAYLOAD);
    CHECK_EQ(n.data[1], 0);
    CHECK_EQ(ble_ota_get_u16(n.data + 18), ble_ota_core_caps());
    /* a fresh nonce each time */
    uint8_t first[16];
    memcpy(first, n.data + 2, 16);
    CHECK_EQ(h_control(1, &op, 1), 0);
    CHECK(h_find(1, 0x81, &n));
    CHECK(memcmp(first, n.data + 2, 16) != 0);
    h_stop();
}

TEST(every_control_notification_fits_mtu_23)
{
    host_device_opts_t o = h_default_opts();
    o.has_fleet_key = true;
    for (int i = 0; i < 32; i++) o.fleet_key[i] = (uint8_t)(0x40 + i);
    CHECK(h_start(&o));
    host_device_disconnect(H.dev, 1);
    host_device_connect(H.dev, 1, 23);
    size_t len;
    uint8_t *img = h_image(5, "2.0.0", 1, 30000, 7, &len);
    CHECK(img);
    uint8_t raw[64] = {0};

    /* error responses, the unknown-opcode response and the NAKs */
    uint8_t unknown = 0x0a, short_begin[2] = {BLE_OTA_OP_BEGIN, 0};
    h_control(1, &unknown, 1);
    h_control(1, short_begin, 2);
    h_data(1, 0, raw, 8);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_ABORT, false), BLE_OTA_ERR_AUTH_REQUIRED);

    /* a whole keyed update: CHALLENGE, BEGIN, DATA_ACKs, a DUPLICATE and a GAP NAK, END */
    begin_t b = h_begin_for(img, len, img, len, 0);
    uint16_t chunk = 0;
    CHECK_EQ(h_begin(1, &b, true, &chunk, NULL), 0);
    CHECK_EQ(chunk, 23 - 3 - 4);
    CHECK_EQ(h_send(1, img, 0, 1600, chunk), 0);
    h_data(1, 0, img, chunk);
    h_data(1, 3200, img + 3200, chunk);
    h_data(1, 1600, raw, chunk + 1u);
    CHECK_EQ(h_send(1, img, 1600, (uint32_t)len, chunk), 0);
    CHECK_EQ(h_end(1, 0), 0);
    CHECK_EQ(h_tagged(1, BLE_OTA_OP_REBOOT, true), 0);
    CHECK(H.longest_control > 0);
    CHECK(H.longest_control <= MTU23_PAYLOAD);
    free(img);
    h_stop();
}
