/**
 * The one v2.1 fact the device model keeps for itself (the wire constants and codec are lib/protocol's):
 * the device_id (PROTOCOL.md §5, Status bytes 240..245) of a simulated device. On the chip it is the base
 * MAC; the model has none, so it takes the 6 bytes of its BLE address in the order written.
 */
export function deviceIdOf(address: string): Buffer {
  return Buffer.from(address.replace(/:/g, ''), 'hex');
}
