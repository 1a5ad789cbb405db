/** Which gateway installs a device: the online one that sees it best and has a free slot. */
import type { PlantView } from './selection';

export interface GatewayChoiceInput {
  address: string;
  now: number;
  /** Sightings older than this do not count (default 30 s). */
  freshMs: number;
  /** Gateways the device was given to before in this campaign: used only when no other one sees it. */
  triedBefore: ReadonlySet<string>;
  /** Our tasks in flight per gateway (all campaigns of this coordinator). */
  inFlight: (gateway: string) => number;
  /** Only the gateway(s) that see the device best are candidates (free slot or not); default false. */
  bestOnly?: boolean;
}

export interface GatewayChoice {
  gateway: string;
  rssi: number;
}

/**
 * Among online gateways with a fresh sighting of the device and a free slot: best RSSI, then most free
 * slots, then the freshest sighting, then the gateway id (deterministic). Gateways tried before are only
 * candidates when no other gateway sees the device at all. With bestOnly, null unless a gateway with the
 * best RSSI has a free slot.
 */
export function chooseGateway(view: PlantView, input: GatewayChoiceInput): GatewayChoice | null {
  const seen = view.seenBy(input.address, input.now - input.freshMs).filter((s) => view.isOnline(s.gateway));
  const fresh = seen.filter((s) => !input.triedBefore.has(s.gateway));
  const pool = fresh.length > 0 ? fresh : seen;
  const best = Math.max(...pool.map((s) => s.sighting.rssi));
  const candidates = pool
    .map((s) => ({ gateway: s.gateway, rssi: s.sighting.rssi, lastSeen: s.sighting.lastSeen, free: view.freeSlots(s.gateway, input.inFlight(s.gateway)) }))
    .filter((c) => c.free > 0 && (!input.bestOnly || c.rssi === best))
    .sort((a, b) => b.rssi - a.rssi || b.free - a.free || b.lastSeen - a.lastSeen || a.gateway.localeCompare(b.gateway));
  return candidates.length > 0 ? { gateway: candidates[0].gateway, rssi: candidates[0].rssi } : null;
}

/** True when some online gateway has a fresh sighting of the device (free slot or not). */
export function isSeen(view: PlantView, address: string, now: number, freshMs: number): boolean {
  return view.seenBy(address, now - freshMs).some((s) => view.isOnline(s.gateway));
}
