/** Device references as users give them (id, address, advertised name, or a scan result). */
import type { DiscoveredDevice } from '../ble/central';
import { OtaError } from '../errors';
import type { DeviceRef } from './types';

export type DeviceSpec = string | DeviceRef;

/** Checks a device reference before anything touches the radio. */
export function checkDeviceSpec(device: unknown): DeviceSpec {
  if (typeof device === 'string' && device.trim() !== '') return device.trim();
  if (device && typeof device === 'object') {
    const ref = device as Partial<DeviceRef>;
    if ([ref.id, ref.address, ref.name].some((v) => typeof v === 'string' && v !== '')) {
      return { id: ref.id ?? '', address: ref.address ?? '', name: ref.name ?? '' };
    }
  }
  throw new OtaError('BAD_DEVICE', 'no device given: pass a device name, a BD address ("aa:bb:cc:dd:ee:ff") or a scan result', { device: String(device) });
}

export function deviceRef(d: DiscoveredDevice): DeviceRef {
  return { id: d.id, address: d.address, name: d.name };
}

export function labelOf(spec: DeviceSpec): string {
  return typeof spec === 'string' ? spec : spec.name || spec.address || spec.id;
}
