/**
 * The gateway's virtual HCI controller (one per simulated adapter): it answers the HCI commands noble's
 * hci-socket layer sends with the events a Bluetooth 5 controller sends (Core v5.4 Vol 4 Part E 7.x),
 * reports LE advertising, creates and cancels connections, disconnects, and moves ACL data between the
 * host and the link layer with the controller's flow control: LE Read Buffer Size gives the host
 * `aclBuffers.count` packets of `aclBuffers.length` bytes (7.8.2); a packet holds its buffer until the
 * link layer has the acknowledgement of its last PDU, then Number Of Completed Packets (7.7.19) returns
 * it. A host that sends more than the buffers hold is recorded as a violation and the packet is dropped
 * (4.1.1: the host must not send more than the controller has buffers for).
 * docs/LINK-MODEL.md section 4 explains what is answered how.
 */
import type { Clock, TimerHandle } from '../../clock';
import type { AdapterState } from '../../ble/central';
import type { Pdu } from '../radio/link-layer';
import { ACL_PB, ADV_REPORT, EVT, HCI_PACKET, HCI_STATUS, LE_SUBEVENT, OP } from './hci-codes';
import { errnoError, type VirtualHciSocket } from './virtual-hci-socket';
import type { NobleScopeHost } from './noble-hci-loader';

/** What the controller asks of the air (the radio). Peers are named by peripheral id (address without colons). */
export interface CentralAir {
  scanChanged(controller: CentralController): void;
  /** Start initiating a connection to this address; false: nothing to connect to is known (still initiating). */
  initiate(controller: CentralController, peerAddress: string): void;
  /** Stop initiating; true when an attempt was pending. */
  cancelInitiate(controller: CentralController): boolean;
  /** LL_TERMINATE_IND on the link to this peer. */
  terminate(controller: CentralController, peerId: string, reason: number): void;
  /** LL PDUs toward the peer. */
  sendPdus(controller: CentralController, peerId: string, pdus: Pdu[]): void;
  rssi(controller: CentralController, peerId: string): number | undefined;
  /** Someone observes the traffic: observeFrame gets every whole L2CAP frame (else frames are not reassembled). */
  readonly observing: boolean;
  /** A whole L2CAP frame the host sent / the host received. */
  observeFrame(controller: CentralController, peerId: string, direction: 'toPeripheral' | 'toCentral', frame: Buffer): void;
}

export interface AclBufferConfig {
  /** Total_Num_LE_ACL_Data_Packets (default 8). */
  count: number;
  /** LE_ACL_Data_Packet_Length (default 251). */
  length: number;
}

export const DEFAULT_ACL_BUFFERS: AclBufferConfig = { count: 8, length: 251 };

export interface CentralControllerOptions {
  index: number;
  deviceId: number;
  address: string;
  clock: Clock;
  state: AdapterState;
  air: CentralAir;
  aclBuffers?: AclBufferConfig;
  /** Connection parameters reported in LE Connection Complete. */
  connectionIntervalMs: number;
  supervisionTimeoutMs: number;
}

export interface ControllerCounters {
  commands: number;
  events: number;
  aclToController: number;
  aclToHost: number;
  /** ACL packets the host sent while every buffer was taken (or longer than a buffer): dropped. */
  flowControlViolations: number;
  /** Most ACL packets outstanding at once. */
  maxOutstanding: number;
  commandsFailed: number;
}

interface Link {
  handle: number;
  peerId: string;
  peerAddress: string;
  outstanding: number;
  completed: number;
  /** L2CAP frame being reassembled per direction (observation only). */
  partial: { toPeripheral: Buffer[] | null; toCentral: Buffer[] | null; want: { toPeripheral: number; toCentral: number } };
}

/** First connection handle: 64, as on Broadcom controllers (btmon traces in noble/noble#467); failed completions carry 0. */
const FIRST_HANDLE = 0x0040;

export class CentralController implements NobleScopeHost {
  readonly index: number;
  readonly deviceId: number;
  readonly address: string;
  readonly counters: ControllerCounters = { commands: 0, events: 0, aclToController: 0, aclToHost: 0, flowControlViolations: 0, maxOutstanding: 0, commandsFailed: 0 };
  /** Every command opcode the host sent, in order (tests). */
  readonly commandLog: number[] = [];
  readonly aclBuffers: AclBufferConfig;
  scanning: { active: boolean; filterDuplicates: boolean; reported: Set<string> } | null = null;
  /** Peer address the controller is initiating a connection to. */
  initiating: string | null = null;
  private adapterState: AdapterState;
  private readonly clock: Clock;
  private readonly air: CentralAir;
  private readonly sockets = new Set<VirtualHciSocket>();
  private readonly links = new Map<number, Link>();
  private readonly byPeer = new Map<string, Link>();
  private nextHandle = FIRST_HANDLE;
  private outstanding = 0;
  private outbound: Buffer[] = [];
  private flushTimer: TimerHandle | null = null;
  private readonly failures = new Map<number, { status: number; times: number }>();
  private scanParams = { active: true };
  private leEventMask = Buffer.alloc(8);
  private poll: { fn: () => void; due: number; ms: number; timer: TimerHandle | null } | null = null;
  /** isDevUp as the host last saw it. */
  private seenUp: boolean | null = null;
  private readonly processListeners: Array<[string, (...args: unknown[]) => void]> = [];
  private closed = false;
  private readonly intervalUnits: number;
  private readonly timeoutUnits: number;

  constructor(o: CentralControllerOptions) {
    this.index = o.index;
    this.deviceId = o.deviceId;
    this.address = o.address;
    this.clock = o.clock;
    this.air = o.air;
    this.adapterState = o.state;
    this.aclBuffers = { ...(o.aclBuffers ?? DEFAULT_ACL_BUFFERS) };
    this.intervalUnits = Math.round(o.connectionIntervalMs / 1.25);
    this.timeoutUnits = Math.round(o.supervisionTimeoutMs / 10);
  }

  get state(): AdapterState {
    return this.adapterState;
  }

  /** ACL packets the host has outstanding now (all links). */
  get aclOutstanding(): number {
    return this.outstanding;
  }

  // ---- NobleScopeHost / HciTransport ----

  isUp(): boolean {
    this.seenUp = this.adapterState !== 'poweredOff';
    return this.seenUp;
  }

  open(socket: VirtualHciSocket): void {
    this.sockets.add(socket);
  }

  close(socket: VirtualHciSocket): void {
    this.sockets.delete(socket);
  }

  pollTimer(fn: () => void, ms: number): unknown {
    // hci.js polls isDevUp every second and acts only when the answer changed (hci.js:169-200): the poll
    // runs on the clock at its due instants, and only when the answer would differ.
    this.poll?.timer?.cancel();
    this.poll = { fn, due: this.clock.now() + ms, ms, timer: null };
    this.armPoll();
    return this.poll;
  }

  processListener(event: string, fn: (...args: unknown[]) => void): void {
    this.processListeners.push([event, fn]);
  }

  fromHost(packet: Buffer): void {
    if (this.closed || packet.length === 0) return;
    if (this.adapterState === 'unauthorized') {
      // A raw HCI socket without CAP_NET_RAW fails writes with EPERM; hci.js turns it into 'unauthorized' (hci.js:900-908).
      for (const s of this.sockets) s.emit('error', errnoError('Operation not permitted', 'EPERM'));
      return;
    }
    if (this.adapterState === 'poweredOff') return; // the device is down: nothing is sent
    const type = packet[0];
    if (type === HCI_PACKET.command) this.command(packet);
    else if (type === HCI_PACKET.acl) this.aclFromHost(packet);
  }

  // ---- test and radio controls ----

  /** Fault injection: the next `times` commands with this opcode fail with `status`. */
  failCommand(op: number, status: number, times = 1): void {
    this.failures.set(op, { status, times });
  }

  /** Fault injection: an arbitrary HCI packet to the host (an event noble does not expect, say). */
  injectToHost(packet: Buffer): void {
    this.queue(Buffer.from(packet));
  }

  setState(next: AdapterState): void {
    if (next === this.adapterState) return;
    const wasUp = this.adapterState !== 'poweredOff';
    this.adapterState = next;
    if (wasUp && next === 'poweredOff') {
      // The device goes down: its links end without events (the host learns it from isDevUp).
      this.scanning = null;
      this.initiating = null;
      this.air.scanChanged(this);
      for (const link of [...this.links.values()]) this.air.terminate(this, link.peerId, -1);
      this.links.clear();
      this.byPeer.clear();
      this.outstanding = 0;
      this.outbound = [];
    }
    this.armPoll();
  }

  shutdown(): void {
    this.closed = true;
    this.poll?.timer?.cancel();
    this.poll = null;
    this.flushTimer?.cancel();
    this.flushTimer = null;
    this.outbound = [];
    this.processListeners.length = 0;
    this.sockets.clear();
  }

  // ---- from the air ----

  /** A device's advertising event heard while scanning: ADV_IND, then (active scan) SCAN_RSP. */
  advertisingReport(peerAddress: string, advData: Buffer, scanResponse: Buffer, rssi: number): void {
    const scan = this.scanning;
    if (!scan) return;
    const report = (type: number, data: Buffer) => {
      const key = `${peerAddress}/${type}`;
      if (scan.filterDuplicates) {
        if (scan.reported.has(key)) return;
        scan.reported.add(key);
      }
      const p = Buffer.alloc(12 + data.length);
      p[0] = LE_SUBEVENT.advertisingReport;
      p[1] = 1;
      p[2] = type;
      p[3] = 0x00; // public address
      addressBytes(peerAddress).copy(p, 4);
      p[10] = data.length;
      data.copy(p, 11);
      p.writeInt8(rssi, 11 + data.length);
      this.event(EVT.leMeta, p);
    };
    report(ADV_REPORT.advInd, advData);
    if (scan.active) report(ADV_REPORT.scanRsp, scanResponse);
  }

  /** The link to a peer is up (first anchor): LE Connection Complete. Returns the handle. */
  connectionComplete(peerId: string, peerAddress: string): number {
    const handle = this.nextHandle;
    this.nextHandle = this.nextHandle >= 0x0eff ? FIRST_HANDLE : this.nextHandle + 1;
    const link: Link = { handle, peerId, peerAddress, outstanding: 0, completed: 0, partial: { toPeripheral: null, toCentral: null, want: { toPeripheral: 0, toCentral: 0 } } };
    this.links.set(handle, link);
    this.byPeer.set(peerId, link);
    this.initiating = null;
    this.leConnectionComplete(HCI_STATUS.success, handle, peerAddress);
    return handle;
  }

  /** The pending connection attempt ended without a link. */
  connectionFailed(status: number, peerAddress: string): void {
    this.initiating = null;
    this.leConnectionComplete(status, 0x0000, peerAddress);
  }

  /** A PDU from the peer: an HCI ACL packet to the host (one per LL PDU, PB from its LLID). */
  pduToHost(peerId: string, pdu: Pdu): void {
    const link = this.byPeer.get(peerId);
    if (!link || !pdu.payload) return;
    const p = Buffer.allocUnsafe(5 + pdu.payload.length);
    p[0] = HCI_PACKET.acl;
    p.writeUInt16LE(link.handle | ((pdu.start ? ACL_PB.firstFlushable : ACL_PB.continuing) << 12), 1);
    p.writeUInt16LE(pdu.payload.length, 3);
    pdu.payload.copy(p, 5);
    this.counters.aclToHost++;
    if (this.air.observing) this.observe(link, 'toCentral', pdu.payload, pdu.start === true);
    this.queue(p);
  }

  /** The link ended (terminated, supervision timeout, remote): Disconnection Complete. */
  disconnected(peerId: string, reason: number): void {
    const link = this.byPeer.get(peerId);
    if (!link) return;
    this.dropLink(link);
    const p = Buffer.alloc(4);
    p[0] = HCI_STATUS.success;
    p.writeUInt16LE(link.handle, 1);
    p[3] = reason;
    this.event(EVT.disconnectionComplete, p);
  }

  handleOf(peerId: string): number | undefined {
    return this.byPeer.get(peerId)?.handle;
  }

  // ---- commands ----

  private command(packet: Buffer): void {
    if (packet.length < 4) return;
    const op = packet.readUInt16LE(1);
    const params = packet.subarray(4, 4 + packet[3]);
    this.counters.commands++;
    this.commandLog.push(op);
    const failure = this.failures.get(op);
    if (failure && failure.times > 0) {
      failure.times--;
      this.counters.commandsFailed++;
      if (STATUS_COMMANDS.has(op)) this.commandStatus(op, failure.status);
      else this.commandComplete(op, failure.status, Buffer.alloc(RETURN_LENGTH.get(op) ?? 0));
      return;
    }
    switch (op) {
      case OP.setEventMask:
      case OP.writeLeHostSupported:
      case OP.leSetRandomAddress:
      case OP.leSetDefaultPhy:
        return this.commandComplete(op, HCI_STATUS.success);
      case OP.reset:
        return this.reset();
      case OP.leSetEventMask:
        this.leEventMask = Buffer.from(params.subarray(0, 8));
        return this.commandComplete(op, HCI_STATUS.success);
      case OP.readLocalVersion: {
        // HCI/LMP version 0x09 = Bluetooth 5.0 (Assigned Numbers 2.1); an adapter without LE reports 0x05
        // (hci.js:934 treats < 0x06 as unsupported). Company 0xffff: reserved for tests (Assigned Numbers 7).
        const version = this.adapterState === 'unsupported' ? 0x05 : 0x09;
        const r = Buffer.alloc(8);
        r[0] = version;
        r.writeUInt16LE(0x0001, 1);
        r[3] = version;
        r.writeUInt16LE(0xffff, 4);
        r.writeUInt16LE(0x0001, 6);
        return this.commandComplete(op, HCI_STATUS.success, r);
      }
      case OP.readLocalSupportedCommands:
        return this.commandComplete(op, HCI_STATUS.success, Buffer.alloc(64));
      case OP.readLeHostSupported:
        return this.commandComplete(op, HCI_STATUS.success, Buffer.from([0x01, 0x00]));
      case OP.leReadBufferSize: {
        const r = Buffer.alloc(3);
        r.writeUInt16LE(this.aclBuffers.length, 0);
        r[2] = this.aclBuffers.count;
        return this.commandComplete(op, HCI_STATUS.success, r);
      }
      case OP.readBufferSize: {
        // 7.4.5: ACL length (2), SCO length (1), ACL count (2), SCO count (2); LE shares the ACL buffers here.
        const r = Buffer.alloc(7);
        r.writeUInt16LE(this.aclBuffers.length, 0);
        r.writeUInt16LE(this.aclBuffers.count, 3);
        return this.commandComplete(op, HCI_STATUS.success, r);
      }
      case OP.readBdAddr:
        return this.commandComplete(op, HCI_STATUS.success, addressBytes(this.address));
      case OP.leSetScanParameters:
        // 7.8.10: not allowed while scanning is enabled.
        if (this.scanning) return this.commandComplete(op, HCI_STATUS.commandDisallowed);
        this.scanParams = { active: params[0] === 0x01 };
        return this.commandComplete(op, HCI_STATUS.success);
      case OP.leSetScanEnable:
        return this.setScanEnable(params[0] === 0x01, params[1] === 0x01);
      case OP.leCreateConnection:
        return this.createConnection(params);
      case OP.leCreateConnectionCancel:
        return this.createConnectionCancel();
      case OP.disconnect:
        return this.disconnect(params.readUInt16LE(0), params[2]);
      case OP.readRssi: {
        const handle = params.readUInt16LE(0);
        const link = this.links.get(handle);
        const rssi = link ? this.air.rssi(this, link.peerId) : undefined;
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        if (rssi === undefined) return this.commandComplete(op, HCI_STATUS.unknownConnectionId, r);
        r.writeInt8(rssi, 2);
        return this.commandComplete(op, HCI_STATUS.success, r);
      }
      case OP.leSetDataLength: {
        const handle = params.readUInt16LE(0);
        const r = Buffer.alloc(2);
        r.writeUInt16LE(handle, 0);
        return this.commandComplete(op, this.links.has(handle) ? HCI_STATUS.success : HCI_STATUS.unknownConnectionId, r);
      }
      case OP.leConnectionUpdate:
        return this.connectionUpdate(params);
      default:
        // 4.5 / Zephyr's controller (hci.c hci_cmd_handle): an unsupported opcode gets Command Status 0x01.
        return this.commandStatus(op, HCI_STATUS.unknownCommand);
    }
  }

  private reset(): void {
    this.scanning = null;
    this.initiating = null;
    this.air.scanChanged(this);
    this.air.cancelInitiate(this);
    for (const link of [...this.links.values()]) {
      this.air.terminate(this, link.peerId, -1);
      this.dropLink(link);
    }
    this.outstanding = 0;
    this.commandComplete(OP.reset, HCI_STATUS.success);
  }

  private setScanEnable(enable: boolean, filterDuplicates: boolean): void {
    // Core 5.x 7.8.11: enabling while enabled only updates the duplicate filter; disabling while disabled is no error.
    if (enable) {
      const reported = this.scanning && this.scanning.filterDuplicates === filterDuplicates ? this.scanning.reported : new Set<string>();
      this.scanning = { active: this.scanParams.active, filterDuplicates, reported };
    } else this.scanning = null;
    this.commandComplete(OP.leSetScanEnable, HCI_STATUS.success);
    this.air.scanChanged(this);
  }

  private createConnection(params: Buffer): void {
    if (this.initiating) return this.commandStatus(OP.leCreateConnection, HCI_STATUS.commandDisallowed);
    const peerAddress = addressFromBytes(params.subarray(6, 12));
    if (this.byPeer.has(peerAddress.replace(/:/g, ''))) return this.commandStatus(OP.leCreateConnection, HCI_STATUS.connectionAlreadyExists);
    this.initiating = peerAddress;
    this.commandStatus(OP.leCreateConnection, HCI_STATUS.success);
    this.air.initiate(this, peerAddress);
  }

  private createConnectionCancel(): void {
    // 7.8.13: Command Complete, then LE Connection Complete with Unknown Connection Identifier; nothing
    // pending: Command Disallowed.
    const peer = this.initiating;
    if (!peer || !this.air.cancelInitiate(this)) return this.commandComplete(OP.leCreateConnectionCancel, HCI_STATUS.commandDisallowed);
    this.initiating = null;
    this.commandComplete(OP.leCreateConnectionCancel, HCI_STATUS.success);
    this.leConnectionComplete(HCI_STATUS.unknownConnectionId, 0x0000, peer);
  }

  private disconnect(handle: number, reason: number): void {
    const link = this.links.get(handle);
    if (!link) return this.commandStatus(OP.disconnect, HCI_STATUS.unknownConnectionId);
    this.commandStatus(OP.disconnect, HCI_STATUS.success);
    // 7.1.6: the Disconnection Complete reports Connection Terminated by Local Host.
    void reason;
    this.air.terminate(this, link.peerId, HCI_STATUS.localHostTerminated);
  }

  private connectionUpdate(params: Buffer): void {
    const handle = params.readUInt16LE(0);
    const link = this.links.get(handle);
    if (!link) return this.commandStatus(OP.leConnectionUpdate, HCI_STATUS.unknownConnectionId);
    this.commandStatus(OP.leConnectionUpdate, HCI_STATUS.success);
    // Parameter changes are not modelled: a request the current interval satisfies completes with it,
    // any other is refused (Unacceptable Connection Parameters) rather than pretending to apply it.
    const min = params.readUInt16LE(2);
    const max = params.readUInt16LE(4);
    const ok = this.intervalUnits >= min && this.intervalUnits <= max;
    const p = Buffer.alloc(10);
    p[0] = LE_SUBEVENT.connectionUpdateComplete;
    p[1] = ok ? HCI_STATUS.success : HCI_STATUS.unacceptableConnectionParameters;
    p.writeUInt16LE(handle, 2);
    p.writeUInt16LE(this.intervalUnits, 4);
    p.writeUInt16LE(0, 6);
    p.writeUInt16LE(this.timeoutUnits, 8);
    this.event(EVT.leMeta, p);
  }

  // ---- ACL ----

  private aclFromHost(packet: Buffer): void {
    if (packet.length < 5) return;
    const header = packet.readUInt16LE(1);
    const handle = header & 0x0fff;
    const pb = (header >> 12) & 0x3;
    const length = packet.readUInt16LE(3);
    const data = packet.subarray(5, 5 + length);
    this.counters.aclToController++;
    const link = this.links.get(handle);
    if (!link) return; // no such connection (any more): discarded
    if (this.outstanding >= this.aclBuffers.count || length > this.aclBuffers.length) {
      this.counters.flowControlViolations++;
      return;
    }
    this.outstanding++;
    link.outstanding++;
    if (this.outstanding > this.counters.maxOutstanding) this.counters.maxOutstanding = this.outstanding;
    const start = pb !== ACL_PB.continuing;
    if (this.air.observing) this.observe(link, 'toPeripheral', data, start);
    // The LL cuts the packet into PDUs of at most the data length; the buffer is free when the last one
    // is acknowledged. (hci.js allocates every packet afresh, so its bytes are not copied.)
    const pdus = this.fragment(data, start);
    pdus[pdus.length - 1].onAcked = () => this.completed(link);
    this.air.sendPdus(this, link.peerId, pdus);
  }

  /** LL data length of the links; set by the radio. */
  dataLength = 251;

  private fragment(payload: Buffer, start: boolean): Pdu[] {
    const dl = this.dataLength;
    if (payload.length <= dl) return [{ bytes: payload.length, payload, start }];
    const pdus: Pdu[] = [];
    for (let off = 0; off < payload.length; off += dl) {
      const part = payload.subarray(off, Math.min(off + dl, payload.length));
      pdus.push({ bytes: part.length, payload: part, start: start && off === 0 });
    }
    return pdus;
  }

  private completed(link: Link): void {
    if (this.links.get(link.handle) !== link) return;
    link.outstanding--;
    link.completed++;
    this.outstanding--;
    this.scheduleFlush();
  }

  private dropLink(link: Link): void {
    // 7.7.5: after Disconnection Complete the host takes the link's packets as flushed; their buffers are free.
    this.outstanding -= link.outstanding;
    link.outstanding = 0;
    link.completed = 0;
    this.links.delete(link.handle);
    if (this.byPeer.get(link.peerId) === link) this.byPeer.delete(link.peerId);
  }

  private observe(link: Link, dir: 'toPeripheral' | 'toCentral', data: Buffer, start: boolean): void {
    const partial = link.partial;
    if (start) {
      if (data.length < 4) return;
      const want = data.readUInt16LE(0) + 4;
      if (data.length >= want) {
        this.air.observeFrame(this, link.peerId, dir, data.subarray(0, want));
        partial[dir] = null;
        return;
      }
      partial[dir] = [Buffer.from(data)];
      partial.want[dir] = want;
      return;
    }
    const parts = partial[dir];
    if (!parts) return;
    parts.push(Buffer.from(data));
    const frame = Buffer.concat(parts);
    if (frame.length >= partial.want[dir]) {
      partial[dir] = null;
      this.air.observeFrame(this, link.peerId, dir, frame.subarray(0, partial.want[dir]));
    } else partial[dir] = [frame];
  }

  // ---- events ----

  private leConnectionComplete(status: number, handle: number, peerAddress: string): void {
    const p = Buffer.alloc(19);
    p[0] = LE_SUBEVENT.connectionComplete;
    p[1] = status;
    p.writeUInt16LE(handle, 2);
    p[4] = 0x00; // role: central
    p[5] = 0x00; // peer address type: public
    addressBytes(peerAddress).copy(p, 6);
    p.writeUInt16LE(status === HCI_STATUS.success ? this.intervalUnits : 0, 12);
    p.writeUInt16LE(0, 14);
    p.writeUInt16LE(status === HCI_STATUS.success ? this.timeoutUnits : 0, 16);
    p[18] = 0x00; // central clock accuracy 500 ppm
    this.event(EVT.leMeta, p);
  }

  private commandComplete(op: number, status: number, ret: Buffer = Buffer.alloc(0)): void {
    const p = Buffer.alloc(4 + ret.length);
    p[0] = 1; // Num_HCI_Command_Packets
    p.writeUInt16LE(op, 1);
    p[3] = status;
    ret.copy(p, 4);
    this.event(EVT.commandComplete, p);
  }

  private commandStatus(op: number, status: number): void {
    const p = Buffer.alloc(4);
    p[0] = status;
    p[1] = 1;
    p.writeUInt16LE(op, 2);
    this.event(EVT.commandStatus, p);
  }

  private event(code: number, params: Buffer): void {
    const p = Buffer.allocUnsafe(3 + params.length);
    p[0] = HCI_PACKET.event;
    p[1] = code;
    p[2] = params.length;
    params.copy(p, 3);
    this.counters.events++;
    this.queue(p);
  }

  /** Packets to the host leave in order, after the host's current call returns (as over a socket). */
  private queue(packet: Buffer): void {
    if (this.closed) return;
    this.outbound.push(packet);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = this.clock.setTimer(() => this.flush(), 0);
  }

  private flush(): void {
    this.flushTimer = null;
    const batch = this.outbound;
    this.outbound = [];
    const nocp = this.completedPackets();
    if (nocp) batch.push(nocp);
    for (const packet of batch) {
      if (this.closed) return;
      for (const s of this.sockets) s.deliver(packet);
    }
  }

  /** Number Of Completed Packets for every link with completions (7.7.19). */
  private completedPackets(): Buffer | null {
    const done = [...this.links.values()].filter((l) => l.completed > 0);
    if (done.length === 0) return null;
    const p = Buffer.alloc(1 + done.length * 4);
    p[0] = done.length;
    done.forEach((l, i) => {
      p.writeUInt16LE(l.handle, 1 + i * 4);
      p.writeUInt16LE(l.completed, 3 + i * 4);
      l.completed = 0;
    });
    const e = Buffer.allocUnsafe(3 + p.length);
    e[0] = HCI_PACKET.event;
    e[1] = EVT.numberOfCompletedPackets;
    e[2] = p.length;
    p.copy(e, 3);
    this.counters.events++;
    return e;
  }

  private armPoll(): void {
    const poll = this.poll;
    if (!poll || poll.timer || this.closed) return;
    const up = this.adapterState !== 'poweredOff';
    if (this.seenUp === up) return;
    const now = this.clock.now();
    const due = poll.due >= now ? poll.due : poll.due + Math.ceil((now - poll.due) / poll.ms) * poll.ms;
    poll.timer = this.clock.setTimer(() => {
      if (this.poll !== poll) return;
      this.poll = null;
      poll.fn();
    }, due - now);
  }
}

/** Commands answered by Command Status (then an event of their own, or none). */
const STATUS_COMMANDS = new Set<number>([OP.leCreateConnection, OP.disconnect, OP.leConnectionUpdate, OP.leReadRemoteFeatures, OP.leStartEncryption]);

/** Return parameter lengths after the status (sent, zeroed, with an error status too: hci.js reads some regardless). */
const RETURN_LENGTH = new Map<number, number>([
  [OP.readLocalVersion, 8],
  [OP.readLocalSupportedCommands, 64],
  [OP.readLeHostSupported, 2],
  [OP.leReadBufferSize, 3],
  [OP.readBufferSize, 7],
  [OP.readBdAddr, 6],
  [OP.readRssi, 3],
  [OP.leSetDataLength, 2],
]);

/** aa:bb:cc:dd:ee:ff -> 6 bytes little-endian, as on HCI. */
export function addressBytes(address: string): Buffer {
  return Buffer.from(address.replace(/:/g, ''), 'hex').reverse();
}

export function addressFromBytes(bytes: Buffer): string {
  return Buffer.from(bytes)
    .reverse()
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1:');
}
