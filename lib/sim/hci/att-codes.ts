/** ATT opcodes and error codes as NimBLE names them (nimble/host/include/host/ble_att.h:62-215). */

export const AttOp = {
  ERROR_RSP: 0x01,
  MTU_REQ: 0x02,
  MTU_RSP: 0x03,
  FIND_INFO_REQ: 0x04,
  FIND_INFO_RSP: 0x05,
  FIND_TYPE_VALUE_REQ: 0x06,
  FIND_TYPE_VALUE_RSP: 0x07,
  READ_TYPE_REQ: 0x08,
  READ_TYPE_RSP: 0x09,
  READ_REQ: 0x0a,
  READ_RSP: 0x0b,
  READ_BLOB_REQ: 0x0c,
  READ_BLOB_RSP: 0x0d,
  READ_MULT_REQ: 0x0e,
  READ_MULT_RSP: 0x0f,
  READ_GROUP_TYPE_REQ: 0x10,
  READ_GROUP_TYPE_RSP: 0x11,
  WRITE_REQ: 0x12,
  WRITE_RSP: 0x13,
  PREP_WRITE_REQ: 0x16,
  PREP_WRITE_RSP: 0x17,
  EXEC_WRITE_REQ: 0x18,
  EXEC_WRITE_RSP: 0x19,
  NOTIFY: 0x1b,
  INDICATE: 0x1d,
  CONFIRM: 0x1e,
  READ_MULT_VAR_REQ: 0x20,
  READ_MULT_VAR_RSP: 0x21,
  WRITE_CMD: 0x52,
  SIGNED_WRITE_CMD: 0xd2,
} as const;

export const AttErr = {
  INVALID_HANDLE: 0x01,
  READ_NOT_PERMITTED: 0x02,
  WRITE_NOT_PERMITTED: 0x03,
  INVALID_PDU: 0x04,
  REQ_NOT_SUPPORTED: 0x06,
  INVALID_OFFSET: 0x07,
  PREPARE_QUEUE_FULL: 0x09,
  ATTR_NOT_FOUND: 0x0a,
  INVALID_ATTR_VALUE_LEN: 0x0d,
  UNLIKELY: 0x0e,
  UNSUPPORTED_GROUP: 0x10,
  VALUE_NOT_ALLOWED: 0x13,
} as const;

/** BLE_ATT_MTU_DFLT. */
export const ATT_DEFAULT_MTU = 23;
/** BLE_ATT_ATTR_MAX_LEN: longest value a queued (prepared) write may build without blob transfer. */
export const ATT_ATTR_MAX_LEN = 512;

/** 16-bit attribute types of the GATT layer. */
export const GattType = {
  PRIMARY_SERVICE: 0x2800,
  SECONDARY_SERVICE: 0x2801,
  CHARACTERISTIC: 0x2803,
  CCCD: 0x2902,
} as const;
