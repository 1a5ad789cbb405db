/**
 * HCI packet types, opcodes, event codes and error codes the virtual controller uses (Bluetooth Core
 * Specification v5.4, Vol 4 Part E: 5.4 packet formats, 7.x commands and events, Vol 1 Part F error codes).
 */

/** HCI packet indicators on the UART/socket transport (Vol 4 Part A 2). */
export const HCI_PACKET = { command: 0x01, acl: 0x02, event: 0x04 } as const;

/** Opcode = OGF << 10 | OCF. */
export function opcode(ogf: number, ocf: number): number {
  return (ogf << 10) | ocf;
}

export const OP = {
  disconnect: opcode(0x01, 0x0006), // 7.1.6
  setEventMask: opcode(0x03, 0x0001), // 7.3.1
  reset: opcode(0x03, 0x0003), // 7.3.2
  readLeHostSupported: opcode(0x03, 0x006c), // 7.3.78
  writeLeHostSupported: opcode(0x03, 0x006d), // 7.3.79
  readLocalVersion: opcode(0x04, 0x0001), // 7.4.1
  readLocalSupportedCommands: opcode(0x04, 0x0002), // 7.4.2
  readBufferSize: opcode(0x04, 0x0005), // 7.4.5
  readBdAddr: opcode(0x04, 0x0009), // 7.4.6
  readRssi: opcode(0x05, 0x0005), // 7.5.4
  leSetEventMask: opcode(0x08, 0x0001), // 7.8.1
  leReadBufferSize: opcode(0x08, 0x0002), // 7.8.2
  leSetRandomAddress: opcode(0x08, 0x0005), // 7.8.4
  leSetScanParameters: opcode(0x08, 0x000b), // 7.8.10
  leSetScanEnable: opcode(0x08, 0x000c), // 7.8.11
  leCreateConnection: opcode(0x08, 0x000d), // 7.8.12
  leCreateConnectionCancel: opcode(0x08, 0x000e), // 7.8.13
  leConnectionUpdate: opcode(0x08, 0x0013), // 7.8.18
  leReadRemoteFeatures: opcode(0x08, 0x0016), // 7.8.21
  leStartEncryption: opcode(0x08, 0x0019), // 7.8.24
  leSetDataLength: opcode(0x08, 0x0022), // 7.8.33
  leSetDefaultPhy: opcode(0x08, 0x0031), // 7.8.48
} as const;

export const EVT = {
  disconnectionComplete: 0x05, // 7.7.5
  commandComplete: 0x0e, // 7.7.14
  commandStatus: 0x0f, // 7.7.15
  hardwareError: 0x10, // 7.7.16
  numberOfCompletedPackets: 0x13, // 7.7.19
  leMeta: 0x3e, // 7.7.65
} as const;

export const LE_SUBEVENT = {
  connectionComplete: 0x01, // 7.7.65.1
  advertisingReport: 0x02, // 7.7.65.2
  connectionUpdateComplete: 0x03, // 7.7.65.3
} as const;

/** Advertising report event types (7.7.65.2). */
export const ADV_REPORT = { advInd: 0x00, scanRsp: 0x04 } as const;

/** Error codes (Vol 1 Part F 1.3). */
export const HCI_STATUS = {
  success: 0x00,
  unknownCommand: 0x01,
  unknownConnectionId: 0x02,
  hardwareFailure: 0x03,
  connectionTimeout: 0x08,
  connectionLimitExceeded: 0x09,
  connectionAlreadyExists: 0x0b,
  commandDisallowed: 0x0c,
  invalidParameters: 0x12,
  remoteUserTerminated: 0x13,
  localHostTerminated: 0x16,
  unacceptableConnectionParameters: 0x3b,
  connectionFailedToBeEstablished: 0x3e,
} as const;

/** ACL packet boundary flags (5.4.2). */
export const ACL_PB = { firstNonFlushable: 0x00, continuing: 0x01, firstFlushable: 0x02 } as const;
