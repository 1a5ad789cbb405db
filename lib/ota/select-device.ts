/**
 * Device selection for a flash: a device given by name is looked up by advertisement, and a name is
 * not an identity (every seed device advertises "esp32", docs/PROTOCOL.md §4.6). A name that more than
 * one device advertises is refused unless an address (or id) picks one.
 */
import type { DiscoveredDevice } from '../ble/central';
import type { AdapterScheduler } from '../ble/scheduler';
import { OtaError } from '../errors';
import type { DeviceSpec } from './device-ref';

/**
 * How long one look for a name lasts. Seed devices advertise every 30-60 ms (gap.c:34 sets no interval,
 * so esp-nimble ble_gap.c:3017-3019 uses BLE_GAP_ADV_FAST_INTERVAL1); a second of scanning sees every
 * such device in range many times over.
 */
export const NAME_CHECK_WINDOW_MS = 1000;

const ADDRESS = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
/** noble's peripheral ids: the address without separators (Linux) or a UUID (macOS). */
const NOBLE_ID = /^([0-9a-f]{12}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The name a spec looks a device up by, or null when it names an address or id. */
export function nameOfSpec(spec: DeviceSpec): string | null {
  if (typeof spec === 'string') return ADDRESS.test(spec) || NOBLE_ID.test(spec) ? null : spec;
  return spec.id || spec.address ? null : spec.name || null;
}

/**
 * Refuses a flash by name when another device advertises the same name: one scan window of
 * NAME_CHECK_WINDOW_MS (the scheduler resolved the name to `found` already; addresses and ids pass).
 */
export async function assertNameUnique(scheduler: AdapterScheduler, spec: DeviceSpec, found: DiscoveredDevice, signal?: AbortSignal): Promise<void> {
  const name = nameOfSpec(spec);
  if (name === null || name.toLowerCase() === found.id.toLowerCase() || name.toLowerCase() === found.address) return;
  const seen = await scheduler.scan({ durationMs: NAME_CHECK_WINDOW_MS, signal });
  const named = new Map<string, DiscoveredDevice>([[found.id, found]]);
  for (const d of seen) if (d.name === name) named.set(d.id, d);
  if (named.size > 1) throw ambiguous(name, [...named.values()]);
}

function ambiguous(name: string, devices: DiscoveredDevice[]): OtaError {
  const addresses = devices.map((d) => d.address || d.id).sort();
  return new OtaError(
    'DEVICE_NAME_AMBIGUOUS',
    `${devices.length} devices advertise the name "${name}" (${addresses.join(', ')}); nothing was sent: give the address of the one to update`,
    { device: name, addresses },
  );
}
