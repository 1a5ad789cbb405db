/**
 * The link layer of one radio (the central's adapter) on the clock: connection events every interval,
 * PDU exchanges alternating central -> peripheral inside an event until neither side has more data,
 * the event's time is up or the per-event cap is hit, and several connections sharing the radio
 * without overlapping events. It carries LL data PDUs (with their real payload when the controllers
 * give one), in order, with acknowledgement and retransmission: a PDU lost on air (profile.pduLossRate)
 * or refused by a receiver without a free RX buffer (NAK) is sent again in a later exchange.
 * docs/LINK-MODEL.md explains the rules.
 */
import type { Clock, TimerHandle } from '../../clock';
import { T_IFS_US, exchangeUs, llFragments, lossDraws, pduAirtimeUs, type LinkProfile } from '../link-model';

export type Direction = 'toPeripheral' | 'toCentral';

export interface DirectionStats {
  /** LL data PDUs with a payload. */
  dataPdus: number;
  /** Empty PDUs (poll / acknowledgement only). */
  emptyPdus: number;
  /** LL payload bytes (L2CAP header, ATT header and value; LL control PDUs). */
  llPayloadBytes: number;
  /** Air time of this direction's PDUs in microseconds. */
  airtimeUs: number;
  /** ATT PDUs (SDUs) delivered. */
  attPdus: number;
  /** PDUs sent again (after a loss, a missing acknowledgement or a NAK). */
  retransmissions: number;
  /** PDUs lost on air (the receiver heard nothing). */
  lost: number;
  /** PDUs the receiver refused for want of an RX buffer (flow control by NESN). */
  naks: number;
}

export interface LinkStats {
  connectionEvents: number;
  toPeripheral: DirectionStats;
  toCentral: DirectionStats;
}

export function emptyLinkStats(): LinkStats {
  const d = (): DirectionStats => ({ dataPdus: 0, emptyPdus: 0, llPayloadBytes: 0, airtimeUs: 0, attPdus: 0, retransmissions: 0, lost: 0, naks: 0 });
  return { connectionEvents: 0, toPeripheral: d(), toCentral: d() };
}

export function addLinkStats(into: LinkStats, from: LinkStats): void {
  into.connectionEvents += from.connectionEvents;
  for (const dir of ['toPeripheral', 'toCentral'] as const) {
    const a = into[dir];
    const b = from[dir];
    a.dataPdus += b.dataPdus;
    a.emptyPdus += b.emptyPdus;
    a.llPayloadBytes += b.llPayloadBytes;
    a.airtimeUs += b.airtimeUs;
    a.attPdus += b.attPdus;
    a.retransmissions += b.retransmissions;
    a.lost += b.lost;
    a.naks += b.naks;
  }
}

/** One LL data (or control) PDU queued for the air. */
export interface Pdu {
  /** LL payload bytes. */
  bytes: number;
  /** The payload itself when the sender gives it (HCI ACL data, frames of the device's host). */
  payload?: Buffer;
  /** LLID: start of an L2CAP frame (or a complete one) rather than a continuation. */
  start?: boolean;
  /** The receiving link layer accepted it (once, in order; a retransmitted copy is not delivered again). */
  onDelivered?: () => void;
  /** The sender's link layer got the acknowledgement (the buffer it held may be freed). */
  onAcked?: () => void;
  /** Internal: the receiver has it, the acknowledgement has not come back yet. */
  received?: boolean;
  /** Internal: it went on air at least once. */
  sent?: boolean;
}

type Fragment = Pdu;

/** One connection's link layer state. */
export class LinkConnection {
  readonly stats = emptyLinkStats();
  readonly queues: Record<Direction, Array<Fragment | undefined>> = { toPeripheral: [], toCentral: [] };
  /**
   * Index of the first queued fragment (queues are consumed from the front without shifting; a taken
   * slot is cleared so that its onDelivered closure, and the data it holds, can be collected).
   */
  readonly heads: Record<Direction, number> = { toPeripheral: 0, toCentral: 0 };
  eventTimer: TimerHandle | null = null;
  /** Zero link: a delivery timer is pending for this direction. */
  readonly zeroFlush: Record<Direction, boolean> = { toPeripheral: false, toCentral: false };
  nextEventAt: number | null = null;
  /**
   * Anchors missed in a row while this connection wanted the radio (another event held it, or this
   * event gave way). The controller raises a connection's priority with it so that no link starves.
   */
  skipped = 0;
  /** Anchors missed in total (stats/tests). */
  missedAnchors = 0;
  /** Data channel (0..36) of the current connection event (only other airs look at it: interference). */
  channel = 0;
  closed = false;
  /**
   * Whether the receiving controller of `dir` has a free RX buffer now; without one it NAKs the PDU
   * (Core Vol 6 Part B 4.5.9: a receiver that cannot take a PDU does not acknowledge it). Default: always.
   */
  canReceive: (dir: Direction) => boolean = () => true;

  constructor(
    readonly id: string,
    /** Clock time of the connection's first anchor point. */
    readonly firstAnchor: number,
    readonly intervalMs: number,
  ) {}

  pending(dir: Direction): number {
    return this.queues[dir].length - this.heads[dir];
  }

  hasData(): boolean {
    return this.pending('toPeripheral') > 0 || this.pending('toCentral') > 0;
  }

  take(dir: Direction): Fragment | undefined {
    const q = this.queues[dir];
    const f = q[this.heads[dir]];
    if (!f) return undefined;
    q[this.heads[dir]] = undefined;
    this.heads[dir]++;
    if (this.heads[dir] > 1024 && this.heads[dir] * 2 > q.length) {
      q.splice(0, this.heads[dir]);
      this.heads[dir] = 0;
    }
    return f;
  }

  peek(dir: Direction): Fragment | undefined {
    return this.queues[dir][this.heads[dir]];
  }

  /** First anchor point at or after t. */
  anchorAtOrAfter(t: number): number {
    if (t <= this.firstAnchor) return this.firstAnchor;
    const k = Math.ceil((t - this.firstAnchor) / this.intervalMs - 1e-9);
    return this.firstAnchor + k * this.intervalMs;
  }
}

/** One central/peripheral PDU pair on air (for traces and tests). */
export interface ExchangeTrace {
  connection: string;
  /** ms of clock time */
  start: number;
  end: number;
  /** LL payload bytes each way (0: empty PDU) */
  toPeripheral: number;
  toCentral: number;
  /** index of the exchange inside its connection event */
  index: number;
}

export class LinkLayer {
  /** Called for every exchange as it goes on air. */
  onExchange: ((e: ExchangeTrace) => void) | null = null;
  private readonly connections = new Set<LinkConnection>();
  /** The radio is on air for some connection until this time. */
  private busyUntil = Number.NEGATIVE_INFINITY;
  /** The connection whose event holds the radio (between its exchanges too). */
  private owner: LinkConnection | null = null;
  /** Aggregate over all connections ever (closed ones too). */
  readonly totals = emptyLinkStats();
  /** Loss draws in [0, 1), deterministic per profile (lossSeed). */
  private readonly random: () => number;
  /** Clock interval of the exchange on air last (other airs test their exchanges against it). */
  readonly lastExchange = { start: Number.NEGATIVE_INFINITY, end: Number.NEGATIVE_INFINITY, channel: -1 };
  /**
   * Optional: extra loss probability of each PDU of an exchange that was on air from start to end on this
   * data channel, on top of the profile's pduLossRate (another gateway's radio on the same channel;
   * docs/LINK-MODEL.md §10a). Null or 0: the profile alone decides, exactly as without it.
   */
  interference: ((start: number, end: number, channel: number) => number) | null = null;

  constructor(
    private readonly clock: Clock,
    readonly profile: LinkProfile,
  ) {
    this.random = lossDraws(profile.lossSeed ?? 1);
  }

  /**
   * A new connection; its first anchor is placed after `earliest` (CONNECT_IND + transmit window
   * delay) in the middle of the largest gap between the anchors of existing connections, as
   * controllers do to keep connection events apart.
   */
  open(id: string, earliest: number): LinkConnection {
    const interval = this.profile.connectionIntervalMs;
    const phases = [...this.connections].map((c) => mod(c.firstAnchor, interval)).sort((a, b) => a - b);
    let phase = mod(earliest, interval);
    if (phases.length > 0) {
      let bestGap = -1;
      for (let i = 0; i < phases.length; i++) {
        const from = phases[i];
        const to = i + 1 < phases.length ? phases[i + 1] : phases[0] + interval;
        if (to - from > bestGap) {
          bestGap = to - from;
          phase = mod(from + (to - from) / 2, interval);
        }
      }
    }
    const offset = mod(phase - mod(earliest, interval), interval);
    const conn = new LinkConnection(id, earliest + offset, interval);
    this.connections.add(conn);
    return conn;
  }

  /**
   * Queues an SDU of attPduBytes (ATT PDU, the L2CAP header is added here) as payload-less PDUs, or an
   * LL control PDU; onDelivered runs when its last PDU is received. (Tests of the timing alone use it.)
   */
  send(conn: LinkConnection, dir: Direction, attPduBytes: number, onDelivered: () => void, control = false): void {
    const sizes = control ? [attPduBytes] : llFragments(attPduBytes, this.profile.dataLength);
    const pdus: Pdu[] = sizes.map((bytes, i) => ({ bytes, start: i === 0, onDelivered: i === sizes.length - 1 ? () => this.delivered(conn, dir, onDelivered) : undefined }));
    this.sendPdus(conn, dir, pdus);
  }

  /** Queues LL PDUs (each at most the data length) in order. */
  sendPdus(conn: LinkConnection, dir: Direction, pdus: Pdu[]): void {
    if (conn.closed) return;
    const q = conn.queues[dir];
    for (const pdu of pdus) q.push(pdu);
    if (this.profile.zeroLatency) this.armZero(conn, dir);
    else this.arm(conn);
  }

  /**
   * A receiver freed RX buffers: a zero link resumes delivery at once (a timed link retransmits the
   * refused PDU at its next exchange anyway).
   */
  resume(conn: LinkConnection): void {
    if (conn.closed) return;
    if (this.profile.zeroLatency) {
      this.armZero(conn, 'toPeripheral');
      this.armZero(conn, 'toCentral');
    } else this.arm(conn);
  }

  /**
   * Zero link: everything queued at one instant is delivered, in order, by one timer at the same
   * instant (one timer per PDU would make the clock, not the host, the bottleneck). A receiver without
   * a free RX buffer stops the flush; resume() goes on.
   */
  private armZero(conn: LinkConnection, dir: Direction): void {
    if (conn.zeroFlush[dir] || conn.pending(dir) === 0) return;
    conn.zeroFlush[dir] = true;
    this.clock.setTimer(() => {
      conn.zeroFlush[dir] = false;
      while (!conn.closed) {
        const f = conn.peek(dir);
        if (!f || !conn.canReceive(dir)) break;
        conn.take(dir);
        this.count(conn, dir, f.bytes, true, false);
        f.onDelivered?.();
        f.onAcked?.();
      }
    }, 0);
  }

  /** Ends a connection at once: queued PDUs are dropped, no more events. */
  close(conn: LinkConnection): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.eventTimer?.cancel();
    conn.eventTimer = null;
    conn.nextEventAt = null;
    conn.queues.toPeripheral.length = 0;
    conn.queues.toCentral.length = 0;
    conn.heads.toPeripheral = 0;
    conn.heads.toCentral = 0;
    if (this.owner === conn) this.owner = null;
    this.connections.delete(conn);
  }

  /** Schedules the connection's next event when it has data and none is scheduled or running. */
  private arm(conn: LinkConnection, notBefore = this.clock.now()): void {
    if (conn.closed || conn.eventTimer || !conn.hasData()) return;
    const at = conn.anchorAtOrAfter(notBefore);
    conn.nextEventAt = at;
    conn.eventTimer = this.clock.setTimer(() => this.startEvent(conn, at), at - this.clock.now());
  }

  private startEvent(conn: LinkConnection, anchor: number): void {
    conn.eventTimer = null;
    conn.nextEventAt = null;
    if (conn.closed) return;
    const now = this.clock.now();
    if (this.busyUntil > now + 1e-9) {
      // Another connection's exchange is on air: this anchor is missed.
      this.miss(conn, anchor);
      return;
    }
    if (this.givesWay(conn, now)) {
      this.miss(conn, anchor);
      return;
    }
    conn.skipped = 0;
    // An event of another connection that is between two exchanges ends here (its next exchange sees it).
    this.owner = conn;
    conn.stats.connectionEvents++;
    this.totals.connectionEvents++;
    if (this.interference) conn.channel = eventChannel(conn.id, conn.stats.connectionEvents);
    this.exchange(conn, anchor, 0, 0);
  }

  private miss(conn: LinkConnection, anchor: number): void {
    conn.skipped++;
    conn.missedAnchors++;
    this.arm(conn, anchor + conn.intervalMs);
  }

  /**
   * The first exchange of an event always runs to its end, so it may cross the anchor of another
   * connection that wants the radio. The controller then serves the one that has missed more anchors
   * in a row (ties: the earlier anchor). Without this rule, connections whose anchors are closer than
   * one exchange would take turns in a fixed pattern that skips the same links every interval.
   */
  private givesWay(conn: LinkConnection, now: number): boolean {
    const first = exchangeUs(conn.peek('toPeripheral')?.bytes ?? 0, conn.peek('toCentral')?.bytes ?? 0, this.profile) / 1000;
    for (const other of this.connections) {
      if (other === conn || other.nextEventAt === null) continue;
      if (other.nextEventAt > now + 1e-9 && other.nextEventAt < now + first - 1e-9 && other.skipped > conn.skipped) return true;
    }
    return false;
  }

  /**
   * The event may run until this connection's next anchor and must end before the next anchor of any
   * other connection that wants the radio (checked at every exchange: one may get data meanwhile).
   */
  private eventLimit(conn: LinkConnection, anchor: number, now: number): number {
    let limit = anchor + conn.intervalMs;
    for (const other of this.connections) {
      if (other !== conn && other.nextEventAt !== null && other.nextEventAt >= now - 1e-9) limit = Math.min(limit, other.nextEventAt);
    }
    return limit;
  }

  /** One central PDU + peripheral PDU starting now. */
  private exchange(conn: LinkConnection, anchor: number, index: number, dataExchanges: number): void {
    conn.eventTimer = null;
    if (conn.closed) return;
    const now = this.clock.now();
    if (index > 0 && this.owner !== conn) {
      // Another connection's anchor came and took the radio at this very instant.
      this.endEvent(conn, anchor);
      return;
    }
    const limit = this.eventLimit(conn, anchor, now);
    const c = conn.peek('toPeripheral');
    const p = conn.peek('toCentral');
    const step = exchangeUs(c?.bytes ?? 0, p?.bytes ?? 0, this.profile) / 1000;
    if (index > 0 && now + step > limit + 1e-9) {
      this.endEvent(conn, anchor);
      return;
    }
    const carriesData = c !== undefined || p !== undefined;
    // More-data bits as sent in the two PDUs: each side has something queued behind this PDU.
    const moreData = conn.pending('toPeripheral') > 1 || conn.pending('toCentral') > 1;
    this.busyUntil = now + step;
    this.lastExchange.start = now;
    this.lastExchange.end = now + step;
    this.lastExchange.channel = conn.channel;
    this.onExchange?.({ connection: conn.id, start: now, end: now + step, toPeripheral: c?.bytes ?? 0, toCentral: p?.bytes ?? 0, index });
    // Both PDUs are in once the peripheral's PDU ends; the trailing T_IFS leads to the next exchange.
    const timer = this.clock.setTimer(() => {
      if (conn.closed) return;
      const heard = this.airExchange(conn, c, p, this.lossFor(now, now + step, conn.channel));
      const exchanges = dataExchanges + (carriesData ? 1 : 0);
      const capped = this.profile.maxPdusPerEvent !== null && exchanges >= this.profile.maxPdusPerEvent;
      if (!heard || !moreData || capped) {
        this.endEvent(conn, anchor);
        return;
      }
      // A separate timer lets both hosts react to what was just delivered before the next exchange.
      conn.eventTimer = this.clock.setTimer(() => this.exchange(conn, anchor, index + 1, exchanges), T_IFS_US / 1000);
    }, step - T_IFS_US / 1000);
    conn.eventTimer = timer;
  }

  /**
   * What the exchange achieved (Core Vol 6 Part B 4.5.9 acknowledgement and flow control, 4.5.6
   * closing events), pessimistic where the specification leaves room:
   * - the central's PDU lost: the peripheral heard nothing and sends nothing; nothing moves;
   * - else the peripheral takes the central's PDU if it has an RX buffer (else NAK: not acknowledged),
   *   a copy it already has is acknowledged again without being delivered twice;
   * - the peripheral's PDU lost: the central misses the acknowledgement too, so its PDU stays queued
   *   (sent again, as a duplicate if the peripheral had it);
   * - a loss closes the connection event (the central does not go on without a valid packet).
   * Returns whether both PDUs were heard (the event may go on).
   */
  private airExchange(conn: LinkConnection, c: Pdu | undefined, p: Pdu | undefined, loss: number): boolean {
    const centralLost = loss > 0 && this.random() < loss;
    this.count(conn, 'toPeripheral', c?.bytes ?? 0, false, c?.sent === true);
    if (c) c.sent = true;
    if (centralLost) {
      this.lostOne(conn, 'toPeripheral');
      return false;
    }
    if (c && !c.received) {
      if (conn.canReceive('toPeripheral')) {
        c.received = true;
        c.onDelivered?.();
        if (conn.closed) return false;
      } else this.nak(conn, 'toPeripheral');
    }
    const peripheralLost = loss > 0 && this.random() < loss;
    this.count(conn, 'toCentral', p?.bytes ?? 0, false, p?.sent === true);
    if (p) p.sent = true;
    if (peripheralLost) {
      this.lostOne(conn, 'toCentral');
      return false;
    }
    if (p && conn.peek('toCentral') === p && conn.canReceive('toCentral')) {
      conn.take('toCentral');
      p.onDelivered?.();
      if (conn.closed) return false;
    } else if (p) this.nak(conn, 'toCentral');
    if (c && c.received && conn.peek('toPeripheral') === c) {
      conn.take('toPeripheral');
      c.onAcked?.();
    }
    return true;
  }

  /** Per-PDU loss of an exchange on air from start to end: the profile's, combined with interference. */
  private lossFor(start: number, end: number, channel: number): number {
    const base = this.profile.pduLossRate ?? 0;
    const extra = this.interference?.(start, end, channel) ?? 0;
    return extra > 0 ? 1 - (1 - base) * (1 - extra) : base;
  }

  private lostOne(conn: LinkConnection, dir: Direction): void {
    conn.stats[dir].lost++;
    this.totals[dir].lost++;
  }

  private nak(conn: LinkConnection, dir: Direction): void {
    conn.stats[dir].naks++;
    this.totals[dir].naks++;
  }


  private endEvent(conn: LinkConnection, anchor: number): void {
    conn.eventTimer = null;
    if (this.owner === conn) this.owner = null;
    if (conn.closed) return;
    this.arm(conn, anchor + conn.intervalMs);
  }

  /** Counts a delivered SDU (ATT PDU, LL control PDU) and runs its handler. */
  delivered(conn: LinkConnection, dir: Direction, fn: () => void): void {
    conn.stats[dir].attPdus++;
    this.totals[dir].attPdus++;
    fn();
  }

  private count(conn: LinkConnection, dir: Direction, bytes: number, zero: boolean, again: boolean): void {
    const air = zero ? 0 : pduAirtimeUs(bytes, this.profile.phy, this.profile.encrypted);
    for (const s of [conn.stats[dir], this.totals[dir]]) {
      if (bytes > 0) s.dataPdus++;
      else s.emptyPdus++;
      if (again) s.retransmissions++;
      s.llPayloadBytes += bytes;
      s.airtimeUs += air;
    }
  }
}

/**
 * The data channel of a connection's event: a stable pseudo-random function of the connection and its
 * event counter over the 37 data channels, as channel selection algorithm #2 is (docs/LINK-MODEL.md §10a).
 */
function eventChannel(id: string, counter: number): number {
  let h = 2166136261;
  const key = `${id}#${counter}`;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h ^= h >>> 12;
  return h % DATA_CHANNELS;
}

/** Data channels of a connection with every channel in its map (esp-nimble controller/ble_phy.h:34). */
export const DATA_CHANNELS = 37;

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}
