/**
 * Reading the target device from a message: a string (id, address or advertised name) or an object
 * such as a scan result ({id, address, name}).
 */
import { OtaError } from '../../lib/errors';
import type { DeviceRef } from '../../lib/ota/types';

export type DeviceSelector = string | DeviceRef;

export function deviceFromValue(value: unknown, fallback: string): DeviceSelector {
  if (value === undefined || value === null || value === '') {
    const configured = fallback.trim();
    if (!configured) throw new OtaError('NO_DEVICE', 'no device given: set msg.device (name, address or id) or the node\'s Device field');
    return configured;
  }
  if (typeof value === 'string') {
    const text = value.trim();
    if (!text) throw new OtaError('NO_DEVICE', 'msg.device is an empty string');
    return text;
  }
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const ref: DeviceRef = {
      id: typeof o.id === 'string' ? o.id : '',
      address: typeof o.address === 'string' ? o.address : '',
      name: typeof o.name === 'string' ? o.name : '',
    };
    if (ref.id || ref.address || ref.name) return ref;
  }
  throw new OtaError('BAD_DEVICE', 'msg.device must be a device name, address or id, or a scan result with id/address/name');
}

/** A stable key to serialize work per device. */
export function deviceKey(device: DeviceSelector): string {
  if (typeof device === 'string') return device.toLowerCase();
  return (device.name || device.address || device.id).toLowerCase();
}

export function deviceLabel(device: DeviceSelector): string {
  return typeof device === 'string' ? device : device.name || device.address || device.id;
}
