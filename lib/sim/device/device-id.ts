/**
 * The device_id (PROTOCOL.md §5, Status bytes 240..245) of a simulated device: on the chip it is the base
 * MAC; the model has none, so it takes the 6 bytes of its BLE address in the order written.
 */
export function deviceIdOf(address: string): Buffer {
  return Buffer.from(address.replace(/:/g, ''), 'hex');
}
