/**
 * What the gateways see (their latest retained sightings and presence) and which devices a campaign's
 * target selects from it.
 */
import { compareVersions } from '../../image';
import type { DeviceSighting, GatewayPresence, GatewaySightings, TargetSelector } from '../messages';

export interface GatewaySeen {
  gateway: string;
  sighting: DeviceSighting;
}

/** The latest sightings list and presence of every gateway. */
export class PlantView {
  /** Gateway -> address (lower case) -> its latest sighting there. */
  private readonly sightings = new Map<string, Map<string, DeviceSighting>>();
  private readonly presence = new Map<string, GatewayPresence>();
  /** Tasks sent to a gateway since its last presence (its free slots do not count them yet). */
  private readonly sentSincePresence = new Map<string, number>();

  /** Keeps the well-formed entries only (a gateway's garbage must not break every later look-up). */
  setSightings(message: GatewaySightings): void {
    const devices = message.devices.filter(
      (d) => typeof d === 'object' && d !== null && typeof d.address === 'string' && typeof d.name === 'string' && Number.isFinite(d.rssi) && Number.isFinite(d.lastSeen),
    );
    this.sightings.set(message.gateway, new Map(devices.map((d) => [d.address.toLowerCase(), d])));
  }

  setPresence(message: GatewayPresence): void {
    this.presence.set(message.gateway, message);
    this.sentSincePresence.set(message.gateway, 0);
  }

  presenceOf(gateway: string): GatewayPresence | undefined {
    return this.presence.get(gateway);
  }

  isOnline(gateway: string): boolean {
    return this.presence.get(gateway)?.state === 'online';
  }

  noteTaskSent(gateway: string): void {
    this.sentSincePresence.set(gateway, (this.sentSincePresence.get(gateway) ?? 0) + 1);
  }

  /** Free slots: what the gateway last said, less the tasks sent since, and never more than total less ours running there. */
  freeSlots(gateway: string, oursInFlight: number): number {
    const p = this.presence.get(gateway);
    if (!p || p.state !== 'online') return 0;
    const total = Number.isFinite(p.slots.total) ? p.slots.total : 0;
    const free = Number.isFinite(p.slots.free) ? p.slots.free : 0;
    return Math.max(0, Math.min(free - (this.sentSincePresence.get(gateway) ?? 0), total - oursInFlight));
  }

  /** Every gateway's sighting of `address` with lastSeen at or after `since`. */
  seenBy(address: string, since: number): GatewaySeen[] {
    const key = address.toLowerCase();
    const out: GatewaySeen[] = [];
    for (const [gateway, byAddress] of this.sightings) {
      const sighting = byAddress.get(key);
      if (sighting && sighting.lastSeen >= since) out.push({ gateway, sighting });
    }
    return out;
  }

  /** The latest sighting of every device seen at or after `since`, across gateways. */
  latestDevices(since: number): DeviceSighting[] {
    const latest = new Map<string, DeviceSighting>();
    for (const byAddress of this.sightings.values()) {
      for (const d of byAddress.values()) {
        if (d.lastSeen < since) continue;
        const key = d.address.toLowerCase();
        const known = latest.get(key);
        if (!known || d.lastSeen > known.lastSeen) latest.set(key, d);
      }
    }
    return [...latest.values()];
  }

  /** The last time any gateway saw the device (-Infinity when none). */
  lastSeen(address: string): number {
    const seen = this.seenBy(address, Number.NEGATIVE_INFINITY);
    return seen.reduce((max, s) => Math.max(max, s.sighting.lastSeen), Number.NEGATIVE_INFINITY);
  }
}

export interface Selection {
  /** Devices to install, in address order. */
  install: DeviceSighting[];
  /** Matching devices already running the image. */
  skipped: DeviceSighting[];
  /** Entries of target.devices no fresh sighting names. */
  missing: string[];
}

function matches(target: TargetSelector, d: DeviceSighting, regex: RegExp | null): boolean {
  if (target.namePrefix !== undefined && !d.name.startsWith(target.namePrefix)) return false;
  if (regex && !regex.test(d.name)) return false;
  if (target.devices !== undefined) {
    const address = d.address.toLowerCase();
    if (!target.devices.some((entry) => entry.toLowerCase() === address || entry === d.name)) return false;
  }
  if (target.versionOlderThan !== undefined && d.version !== null) {
    // An unknown version counts as outdated (lib/image/version.ts): only a comparable, not-older one is left out.
    const order = compareVersions(d.version, target.versionOlderThan);
    if (order !== null && order >= 0) return false;
  }
  return true;
}

/** True when the advertised hash prefix is a prefix of the file's or the app's SHA-256. */
export function runsImage(d: DeviceSighting, fileSha256: string, appSha256: string): boolean {
  const prefix = typeof d.hashPrefix === 'string' ? d.hashPrefix.toLowerCase() : null;
  if (!prefix || !/^[0-9a-f]{4,64}$/.test(prefix)) return false;
  return fileSha256.startsWith(prefix) || appSha256.startsWith(prefix);
}

export function selectDevices(target: TargetSelector, seen: DeviceSighting[], fileSha256: string, appSha256: string): Selection {
  const regex = target.nameRegex !== undefined ? new RegExp(target.nameRegex) : null;
  const chosen = seen.filter((d) => matches(target, d, regex)).sort((a, b) => a.address.localeCompare(b.address));
  const missing = (target.devices ?? []).filter(
    (entry) => !seen.some((d) => d.address.toLowerCase() === entry.toLowerCase() || d.name === entry),
  );
  return {
    install: chosen.filter((d) => !runsImage(d, fileSha256, appSha256)),
    skipped: chosen.filter((d) => runsImage(d, fileSha256, appSha256)),
    missing,
  };
}
