/**
 * The device_id (PROTOCOL.md §5, Status bytes 240..245) of a simulated device, for the model, the fleet's
 * per-device keys and the bench. On the chip it is the base MAC; a simulated device has none, so it takes the
 * 6 bytes of its BLE address in the order written (the twin gets the same bytes: twin-device.ts securityArgs).
 */
export function deviceIdOf(address: string): Buffer {
  return Buffer.from(address.replace(/:/g, ''), 'hex');
}
