/**
 * The devices this gateway sees, from its scan's advertisements (lib/ota/scan.ts describeDevice: version,
 * hash prefix, OTA state, protocol from the PROTOCOL.md §8 manufacturer data). Entries not seen for
 * forgetAfterMs are dropped; the published list is the strongest first, at most MAX_SIGHTINGS.
 */
import type { DiscoveredDevice } from '../../ble/central';
import { describeDevice } from '../../ota/scan';
import type { DeviceSighting } from '../messages';

export const MAX_SIGHTINGS = 1000;

export class SightingsTable {
  private readonly devices = new Map<string, DeviceSighting>();

  constructor(private readonly forgetAfterMs: number) {}

  get size(): number {
    return this.devices.size;
  }

  /**
   * A device seen at `lastSeen`, on the agent's clock (the time other processes compare with theirs; the
   * scheduler's seenAt is on the scheduler's own clock). Devices without an address are skipped.
   */
  add(device: DiscoveredDevice, lastSeen: number): void {
    const d = describeDevice(device);
    const address = (d.address || '').toLowerCase();
    if (address === '') return;
    const known = this.devices.get(address);
    if (known && known.lastSeen > lastSeen) return;
    this.devices.set(address, {
      address,
      name: d.name,
      rssi: d.rssi,
      version: d.firmware.version,
      hashPrefix: d.firmware.shaPrefix,
      protocol: d.protocol,
      otaState: d.protocol === 'v2' && d.firmware.state !== 'undefined' ? d.firmware.state : null,
      sessionActive: d.firmware.sessionActive,
      lastSeen,
    });
  }

  /** Forgets the stale ones and returns the rest, strongest first (address breaks ties), at most MAX_SIGHTINGS. */
  current(now: number): DeviceSighting[] {
    for (const [address, s] of this.devices) if (now - s.lastSeen > this.forgetAfterMs) this.devices.delete(address);
    return [...this.devices.values()].sort((a, b) => b.rssi - a.rssi || a.address.localeCompare(b.address)).slice(0, MAX_SIGHTINGS);
  }
}
