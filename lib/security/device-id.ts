/**
 * Device identity (docs/SECURITY.md, PROTOCOL Status `device_id`): the device's 6-byte base MAC, written
 * `aa:bb:cc:dd:ee:ff`. It names the device in manifest allow-lists and is the HKDF info of its session key.
 */
import { OtaError } from '../errors';
import { DEVICE_ID_SIZE } from '../protocol/constants';
import { formatDeviceId } from '../protocol/status';

export { DEVICE_ID_SIZE, formatDeviceId };

/** Parses `aa:bb:cc:dd:ee:ff` (or `-` separated, or 12 hex digits) or a 6-byte Buffer; else BAD_DEVICE_ID. */
export function parseDeviceId(value: string | Buffer): Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length === DEVICE_ID_SIZE) return Buffer.from(value);
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (/^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$/.test(text) || /^[0-9a-fA-F]{12}$/.test(text)) {
      return Buffer.from(text.replace(/[:-]/g, ''), 'hex');
    }
  }
  const shown = Buffer.isBuffer(value) ? `${value.length} bytes` : `"${String(value)}"`;
  throw new OtaError('BAD_DEVICE_ID', `a device id is 6 bytes written aa:bb:cc:dd:ee:ff (the device's base MAC, Status device_id), got ${shown}`);
}
