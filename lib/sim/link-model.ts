/**
 * BLE link physics (shared/DESIGN.md section 6, docs/LINK-MODEL.md): PDU air times, fragmentation of
 * ATT PDUs into link-layer PDUs, the link scenarios of the benchmark, and the best payload rate a link
 * allows. The event-by-event engine that moves PDUs on the virtual clock is radio/link-layer.ts.
 */
import { OtaError } from '../errors';

export type Phy = '1M' | '2M';

export interface LinkProfile {
  name: string;
  phy: Phy;
  /** 7.5 .. 4000 ms in 1.25 ms steps. */
  connectionIntervalMs: number;
  /**
   * ATT MTU the ceiling (bestPayloadRate) assumes. The simulated link's MTU is negotiated as noble does
   * it: noble asks 256 (gatt.js), the link gets min(256, the device's maxMtu) (docs/LINK-MODEL.md §4).
   */
  attMtu: number;
  /** Largest LL data PDU payload: 251 with data length extension, 27 without. */
  dataLength: number;
  /** Encrypted link: every non-empty PDU carries a 4-byte MIC. */
  encrypted: boolean;
  /** Most data-carrying PDU exchanges per connection event (null: events run to the interval's end). */
  maxPdusPerEvent: number | null;
  /** Link loss is noticed after this long without a packet (Linux default 420 ms). */
  supervisionTimeoutMs: number;
  /** Every PDU takes no time at all: measures the host (noble, clients, device models) alone. */
  zeroLatency?: boolean;
  /**
   * Probability that one PDU on air is not received (each direction, each transmission); the link layer
   * retransmits it (docs/LINK-MODEL.md "LL retransmission"). Default 0.
   */
  pduLossRate?: number;
  /** Seed of the loss draws (runs repeat exactly); default 1. */
  lossSeed?: number;
}

export const LINK_SCENARIO_NAMES = ['reference', 'seed-mac', '2m-phy', 'no-dle', 'mtu-23', 'capped-4', 'real-gateway', 'zero'] as const;
export type LinkScenarioName = (typeof LINK_SCENARIO_NAMES)[number];

const reference: LinkProfile = {
  name: 'reference',
  phy: '1M',
  connectionIntervalMs: 15,
  attMtu: 247,
  dataLength: 251,
  encrypted: false,
  maxPdusPerEvent: null,
  supervisionTimeoutMs: 420,
};

export const LINK_SCENARIOS: Readonly<Record<LinkScenarioName, Readonly<LinkProfile>>> = {
  reference,
  'seed-mac': { ...reference, name: 'seed-mac', attMtu: 256 },
  '2m-phy': { ...reference, name: '2m-phy', phy: '2M' },
  'no-dle': { ...reference, name: 'no-dle', dataLength: 27 },
  'mtu-23': { ...reference, name: 'mtu-23', attMtu: 23 },
  'capped-4': { ...reference, name: 'capped-4', maxPdusPerEvent: 4 },
  /** A gateway as it is: noble's MTU 256, 1 % of PDUs lost on air and retransmitted by the link layer. */
  'real-gateway': { ...reference, name: 'real-gateway', attMtu: 256, pduLossRate: 0.01 },
  zero: { ...reference, name: 'zero', zeroLatency: true },
};

/** Interframe space between two PDUs of a connection event. */
export const T_IFS_US = 150;
/** L2CAP basic header in front of every ATT PDU. */
export const L2CAP_HEADER_BYTES = 4;
/** ATT header of a write request/command and of a notification: opcode + handle. */
export const ATT_WRITE_HEADER_BYTES = 3;
/** Encryption adds a message integrity check to every PDU with a payload. */
export const MIC_BYTES = 4;
/** Delay from CONNECT_IND to the first connection event (transmitWindowDelay, Core Vol 6 B 4.5.3). */
export const TRANSMIT_WINDOW_DELAY_MS = 1.25;

/** Air time of one LL data PDU with `payload` bytes (0 = empty PDU). */
export function pduAirtimeUs(payload: number, phy: Phy, encrypted = false): number {
  const bytes = payload + (encrypted && payload > 0 ? MIC_BYTES : 0);
  return phy === '1M' ? (10 + bytes) * 8 : (11 + bytes) * 4;
}

/** One central PDU + T_IFS + peripheral PDU + T_IFS: the step of a connection event. */
export function exchangeUs(centralPayload: number, peripheralPayload: number, profile: LinkProfile): number {
  return pduAirtimeUs(centralPayload, profile.phy, profile.encrypted) + T_IFS_US + pduAirtimeUs(peripheralPayload, profile.phy, profile.encrypted) + T_IFS_US;
}

/** LL payload sizes carrying one ATT PDU of attPduBytes (L2CAP header included). */
export function llFragments(attPduBytes: number, dataLength: number): number[] {
  let rest = attPduBytes + L2CAP_HEADER_BYTES;
  const out: number[] = [];
  while (rest > 0) {
    const n = Math.min(rest, dataLength);
    out.push(n);
    rest -= n;
  }
  return out;
}

export function negotiatedMtu(profile: LinkProfile, deviceMaxMtu: number): number {
  return Math.max(23, Math.min(profile.attMtu, deviceMaxMtu));
}

/**
 * Best rate of ATT value bytes (bytes per second) for a stream of full-size writes without response
 * in one direction, the other side answering with empty PDUs: fragments packed into exchanges,
 * exchanges into connection events (interval and per-event cap). Infinity on the zero link.
 */
export function bestPayloadRate(profile: LinkProfile, deviceMaxMtu = 517): number {
  if (profile.zeroLatency) return Number.POSITIVE_INFINITY;
  const mtu = negotiatedMtu(profile, deviceMaxMtu);
  // The largest write is not always the fastest: one that fills whole PDUs can beat it (at MTU 256 a
  // 253-byte value needs PDUs of 251 + 9 bytes, a 244-byte one exactly 251). Best of both.
  const largest = mtu - ATT_WRITE_HEADER_BYTES;
  const wholePdus = Math.floor((largest + ATT_WRITE_HEADER_BYTES + L2CAP_HEADER_BYTES) / profile.dataLength) * profile.dataLength - ATT_WRITE_HEADER_BYTES - L2CAP_HEADER_BYTES;
  const values = wholePdus > 0 && wholePdus < largest ? [largest, wholePdus] : [largest];
  return Math.max(...values.map((value) => payloadRateFor(profile, value)));
}

/** Best rate (value bytes per second) of a stream of writes of exactly `value` bytes each. */
export function payloadRateFor(profile: LinkProfile, value: number): number {
  const fragments = llFragments(value + ATT_WRITE_HEADER_BYTES, profile.dataLength);
  if ((profile.pduLossRate ?? 0) > 0) return lossyPayloadRate(profile, fragments, value);
  const intervalUs = profile.connectionIntervalMs * 1000;
  // Pack a endless stream of fragments into events; an event's packing depends only on the fragment
  // it starts with, so the pattern repeats: the rate over one period is exact.
  const seen = new Map<number, { events: number; fragments: number }>();
  let start = 0;
  let events = 0;
  let sent = 0;
  for (;;) {
    const earlier = seen.get(start);
    if (earlier) {
      const periodFragments = sent - earlier.fragments;
      const periodUs = (events - earlier.events) * intervalUs;
      return ((periodFragments / fragments.length) * value) / (periodUs / 1e6);
    }
    seen.set(start, { events, fragments: sent });
    let t = 0;
    let exchanges = 0;
    let i = start;
    for (;;) {
      const step = exchangeUs(fragments[i], 0, profile);
      if (exchanges > 0 && t + step > intervalUs) break;
      if (profile.maxPdusPerEvent !== null && exchanges >= profile.maxPdusPerEvent) break;
      t += step;
      exchanges++;
      i = (i + 1) % fragments.length;
    }
    sent += exchanges;
    events++;
    start = i;
  }
}

/**
 * Deterministic draws in [0, 1) (mulberry32), so that a lossy link repeats exactly: the link layer and
 * the ceiling of a lossy profile use the same sequence.
 */
export function lossDraws(seed: number): () => number {
  let state = seed | 0;
  return () => {
    let t = (state = (state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * bestPayloadRate on a lossy link: the same packing, event after event, with the link layer's loss
 * rules (link-layer.ts airExchange): a lost central PDU or a lost acknowledgement ends the event; a PDU
 * whose acknowledgement was lost goes again as a duplicate. Run over enough events for a stable mean.
 */
function lossyPayloadRate(profile: LinkProfile, fragments: number[], value: number): number {
  const loss = profile.pduLossRate ?? 0;
  const draw = lossDraws(profile.lossSeed ?? 1);
  const intervalUs = profile.connectionIntervalMs * 1000;
  const EVENTS = 20000;
  let i = 0;
  let unacked = false;
  let delivered = 0;
  for (let e = 0; e < EVENTS; e++) {
    let t = 0;
    let exchanges = 0;
    for (;;) {
      const step = exchangeUs(fragments[i], 0, profile);
      if (exchanges > 0 && t + step > intervalUs) break;
      if (profile.maxPdusPerEvent !== null && exchanges >= profile.maxPdusPerEvent) break;
      t += step;
      exchanges++;
      if (draw() < loss) break; // the central's PDU lost
      if (!unacked) delivered++;
      if (draw() < loss) {
        unacked = true; // the acknowledgement lost: sent again, a duplicate
        break;
      }
      unacked = false;
      i = (i + 1) % fragments.length;
    }
  }
  return ((delivered / fragments.length) * value) / ((EVENTS * intervalUs) / 1e6);
}

/** Shortest time this link needs to carry valueBytes of ATT write payload (no flash, no protocol). */
export function ceilingSeconds(valueBytes: number, profile: LinkProfile, deviceMaxMtu = 517): number {
  const rate = bestPayloadRate(profile, deviceMaxMtu);
  return Number.isFinite(rate) ? valueBytes / rate : 0;
}

export function validateLinkProfile(p: LinkProfile): LinkProfile {
  const bad = (what: string) => new OtaError('LINK_PROFILE_INVALID', `link profile "${p.name}": ${what}`, { profile: p.name });
  if (p.phy !== '1M' && p.phy !== '2M') throw bad(`phy must be "1M" or "2M", not ${JSON.stringify(p.phy)}`);
  const steps = p.connectionIntervalMs / 1.25;
  if (!(p.connectionIntervalMs >= 7.5 && p.connectionIntervalMs <= 4000) || Math.abs(steps - Math.round(steps)) > 1e-9) {
    throw bad(`connection interval ${p.connectionIntervalMs} ms is not 7.5 .. 4000 ms in 1.25 ms steps`);
  }
  if (!Number.isInteger(p.attMtu) || p.attMtu < 23 || p.attMtu > 517) throw bad(`ATT MTU ${p.attMtu} is not 23 .. 517`);
  if (!Number.isInteger(p.dataLength) || p.dataLength < 27 || p.dataLength > 251) throw bad(`data length ${p.dataLength} is not 27 .. 251`);
  if (p.maxPdusPerEvent !== null && (!Number.isInteger(p.maxPdusPerEvent) || p.maxPdusPerEvent < 1)) {
    throw bad(`maxPdusPerEvent ${p.maxPdusPerEvent} must be a positive integer or null`);
  }
  if (p.pduLossRate !== undefined && !(p.pduLossRate >= 0 && p.pduLossRate <= 0.5)) throw bad(`PDU loss rate ${p.pduLossRate} is not 0 .. 0.5`);
  if (!(p.supervisionTimeoutMs >= 100 && p.supervisionTimeoutMs <= 32000)) throw bad(`supervision timeout ${p.supervisionTimeoutMs} ms is not 100 .. 32000 ms`);
  return p;
}

/** A scenario by name, or a custom profile (checked). */
export function resolveLinkProfile(link: LinkScenarioName | string | LinkProfile): LinkProfile {
  if (typeof link === 'string') {
    const found = (LINK_SCENARIOS as Record<string, LinkProfile>)[link];
    if (!found) {
      throw new OtaError('UNKNOWN_LINK_SCENARIO', `unknown link scenario "${link}"; known: ${LINK_SCENARIO_NAMES.join(', ')}`, { link });
    }
    return { ...found };
  }
  return validateLinkProfile({ ...link });
}
