/**
 * The peripheral's ATT server over L2CAP, byte for byte as NimBLE answers (espressif/esp-nimble
 * nimble-1.6.0-idf; file:line references below are to nimble/host/src/). One instance per link; the
 * device's VirtualPeripheral serves the characteristic values through its access callbacks.
 *
 * The rules that matter most for the OTA protocols:
 * - A response goes out only when the access callback has returned (ble_att_svr.c:2251-2315
 *   ble_att_svr_rx_write -> ble_att_svr_write_handle -> ble_att_svr_tx_rsp). A callback that returns a
 *   promise holds the response until it settles; one that never settles is never answered. Meanwhile
 *   the device's host task processes nothing else (see AttHost).
 * - An L2CAP PDU longer than the channel's MTU is dropped unanswered (ble_l2cap.c:402-409; the
 *   ble_l2cap_disconnect it calls is a stub returning BLE_HS_ENOTSUP with ESP-IDF's default
 *   CONFIG_BT_NIMBLE_L2CAP_COC_MAX_NUM=0, ble_l2cap_sig_priv.h:144-148). A Write Command over MTU-3 bytes
 *   never reaches the device.
 * - ATT MTU: the response carries the device's preferred MTU; the link's MTU is then
 *   min(preferred, max(23, client's)) (ble_att_svr.c:731-826, ble_att.c:437-466).
 * - Every PDU the server sends is cut to the MTU (ble_att_cmd.c:58-81, ble_att.c:401-413): a
 *   notification carries at most MTU-3 bytes of the value, a read response at most MTU-1.
 */
import type { Clock, TimerHandle } from '../../clock';
import type { WriteVerdict } from '../faults';
import { AttError, type VirtualPeripheral } from '../types';
import { ATT_ATTR_MAX_LEN, ATT_DEFAULT_MTU, AttErr, AttOp, GattType } from './att-codes';
import { AttDatabase, type Attribute, type BuiltinConnectionState, indicates, isUuid16, notifies, sameUuid } from './att-database';
import { AttHost } from './att-host';
import { Cid, l2capFrame, parseL2capFrame } from './l2cap-frames';

export type { WriteVerdict };

export interface GattCounters {
  /** ATT Error Responses sent, except Attribute Not Found ending a discovery. */
  attErrors: number;
  /** ATT PDUs longer than the MTU carrying a write: NimBLE drops them unanswered. */
  oversizeWritesDropped: number;
  /** Notifications the device sent while the central was not subscribed. */
  notificationsDropped: number;
  valueBytesToPeripheral: number;
  valueBytesToCentral: number;
  lastAttError?: { code: number; message: string };
}

export interface AttServerOptions {
  device: VirtualPeripheral;
  connectionId: number;
  clock: Clock;
  /** A whole L2CAP basic frame (u16 len LE, u16 cid LE, payload) toward the central. */
  sendFrame(frame: Buffer): void;
  /** Fault injection on every characteristic write as it reaches the device. */
  filterWrite?: (data: Buffer, withoutResponse: boolean, characteristicUuid: string) => WriteVerdict;
  /** A 'loseLink' verdict: the server stops there; the radio ends the link. */
  onLinkLost?: () => void;
  /** The device's host task, shared by all its links (default: one for this link only). */
  host?: AttHost;
  /** The device's host terminates the link with this HCI reason (queued-write timeout). */
  terminate?: (reason: number) => void;
  /**
   * The device sends notifications whatever the CCCD says: ble_gatts_notify_custom does not look at
   * it (ble_gattc.c:4411-4474); the seed calls it directly (gatt_svr.c:164, 202). Our firmware keeps
   * its own CCCD state and only notifies subscribers (ble_ota_gatt.c), which is the default here.
   */
  notifyWithoutSubscription?: boolean;
  /** Register the GAP and GATT services first, as both firmwares do (default true). */
  standardServices?: boolean;
  /**
   * The host task takes a received frame for processing (at once, or when a stall or a pending access
   * callback has ended): the controller's RX buffers holding it are free again. Not called for frames
   * dropped by close().
   */
  onFrameConsumed?: (frame: Buffer) => void;
}

export interface CloseOptions {
  /**
   * Tell the device (device.onDisconnect, default true). False when the device cannot learn of it:
   * power loss ends the link of a device whose RAM, and so its view of the link, is gone.
   */
  notifyDevice?: boolean;
}

/** BLE_L2CAP_SIG_MTU and BLE_SM_MTU: the signaling and SMP channels' receive MTUs. */
const SIGNALING_MTU = 100;
const SMP_MTU = 65;
/** BLE_ATT_SVR_QUEUED_WRITE_TMO (esp_nimble_cfg.h): prepared writes left this long end the link. */
const QUEUED_WRITE_TIMEOUT_MS = 30000;
/** BLE_ERR_REM_USER_CONN_TERM, the reason ble_hs_conn_timer terminates with (ble_hs_conn.c:550-553). */
const HCI_REMOTE_USER_TERMINATED = 0x13;
/** BLE_ATT_MTU_MAX (ble_att.h:271). */
const ATT_MAX_MTU = 527;
const SigCode = { REJECT: 0x01, UPDATE_RSP: 0x13 } as const;
const SigReject = { NOT_UNDERSTOOD: 0x0000, INVALID_CID: 0x0002 } as const;
const SMP_PAIRING_FAILED = 0x05;
const SMP_PAIRING_NOT_SUPPORTED = 0x05;
const CCCD_NOTIFY = 0x0001;
const CCCD_INDICATE = 0x0002;

/** Ops a client sends as responses/confirmations: no client procedure of ours waits for them. */
const CLIENT_SIDE_OPS = new Set<number>([
  AttOp.ERROR_RSP,
  AttOp.MTU_RSP,
  AttOp.FIND_INFO_RSP,
  AttOp.FIND_TYPE_VALUE_RSP,
  AttOp.READ_TYPE_RSP,
  AttOp.READ_RSP,
  AttOp.READ_BLOB_RSP,
  AttOp.READ_MULT_RSP,
  AttOp.READ_GROUP_TYPE_RSP,
  AttOp.WRITE_RSP,
  AttOp.PREP_WRITE_RSP,
  AttOp.EXEC_WRITE_RSP,
  AttOp.READ_MULT_VAR_RSP,
]);

const DISCOVERY_OPS = new Set<number>([AttOp.FIND_INFO_REQ, AttOp.FIND_TYPE_VALUE_REQ, AttOp.READ_TYPE_REQ, AttOp.READ_GROUP_TYPE_REQ]);

type ReadResult = { ok: true; value: Buffer } | { ok: false; code: number; message?: string };
type WriteResult = { ok: true } | { ok: false; code: number; message?: string } | { ok: false; lost: true };

interface PrepEntry {
  handle: number;
  offset: number;
  value: Buffer;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

type Failure = { ok: false; code: number; message?: string };

function failure(code: number, message?: string): Failure {
  return { ok: false, code, message };
}

function le16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
}

export class AttServer {
  readonly counters: GattCounters = { attErrors: 0, oversizeWritesDropped: 0, notificationsDropped: 0, valueBytesToPeripheral: 0, valueBytesToCentral: 0 };
  private readonly host: AttHost;
  private readonly db: AttDatabase;
  private readonly builtinState: BuiltinConnectionState = { clientFeatures: 0 };
  /** CCCD flags per characteristic value handle (no bonding: fresh per link). */
  private readonly cccd = new Map<number, number>();
  private readonly myMtu: number;
  private peerMtu = 0;
  private prepQueue: PrepEntry[] = [];
  private prepTimer: TimerHandle | null = null;
  private indicationsPending = 0;
  private closed = false;
  /** Set when a multi-step handler has finished; checked right after calling it (see inline()). */
  private handlerDone = false;

  constructor(private readonly o: AttServerOptions) {
    this.host = o.host ?? new AttHost(o.clock);
    this.myMtu = Math.min(ATT_MAX_MTU, Math.max(ATT_DEFAULT_MTU, o.device.maxMtu));
    this.db = new AttDatabase(o.device.gatt(), { deviceName: o.device.name, standardServices: o.standardServices }, this.builtinState);
    // Link up: the application's BLE_GAP_EVENT_CONNECT sees the default MTU (our firmware:
    // ble_ota_core_on_connect(conn, ble_att_mtu(conn)), ble_ota_gap.c).
    o.device.onConnect(ATT_DEFAULT_MTU, o.connectionId);
  }

  /** ATT MTU of the link: 23 until the exchange, then min(device's preferred, client's) (ble_att.c:447-466). */
  get mtu(): number {
    return this.peerMtu === 0 ? ATT_DEFAULT_MTU : Math.min(this.myMtu, this.peerMtu);
  }

  /** Received frames waiting for the device's host task. */
  get queuedFrames(): number {
    return this.host.queued(this);
  }

  /** The characteristic whose value has this handle. */
  characteristicAt(handle: number): { serviceUuid: string; characteristicUuid: string } | undefined {
    const a = this.db.at(handle);
    if (!a || a.kind !== 'value' || !a.characteristic) return undefined;
    return { serviceUuid: a.serviceUuid, characteristicUuid: a.characteristic.uuid };
  }

  /** The handle table (tests, diagnostics). */
  get attributes(): readonly Attribute[] {
    return this.db.attributes;
  }

  /** A whole L2CAP basic frame from the central; processed in the device's host task, in order. */
  receiveFrame(frame: Buffer): void {
    if (this.closed) return;
    const copy = Buffer.from(frame);
    this.host.submit(this, () => {
      this.o.onFrameConsumed?.(copy);
      return this.process(copy);
    });
  }

  /**
   * The device notifies: a Handle Value Notification (or an Indication when the client subscribed to
   * indications only) with at most MTU-3 bytes of data. False when the central is not subscribed
   * (dropped and counted) or the link is gone.
   */
  notify(serviceUuid: string, characteristicUuid: string, data: Buffer): boolean {
    if (this.closed) return false;
    const a = this.db.valueOf(serviceUuid, characteristicUuid);
    const flags = a ? (this.cccd.get(a.handle) ?? 0) : 0;
    let op: number | null = null;
    if (flags & CCCD_NOTIFY) op = AttOp.NOTIFY;
    else if (flags & CCCD_INDICATE) op = AttOp.INDICATE;
    else if (a && this.o.notifyWithoutSubscription) op = AttOp.NOTIFY;
    if (!a || op === null) {
      this.counters.notificationsDropped++;
      return false;
    }
    const value = data.subarray(0, this.mtu - 3);
    this.counters.valueBytesToCentral += value.length;
    if (op === AttOp.INDICATE) this.indicationsPending++;
    this.sendAtt(Buffer.concat([Buffer.from([op]), le16(a.handle), value]));
    return true;
  }

  /** Indications sent and not confirmed yet. */
  get unconfirmedIndications(): number {
    return this.indicationsPending;
  }

  /** The link is gone: nothing more is sent, queued frames and pending callbacks' results are dropped. */
  close(options: CloseOptions = {}): void {
    if (this.closed) return;
    this.closed = true;
    this.host.forget(this);
    this.clearPrepQueue();
    if (options.notifyDevice !== false) this.o.device.onDisconnect(this.o.connectionId);
  }

  // ---- L2CAP ----

  private process(frame: Buffer): void | Promise<void> {
    if (this.closed) return;
    const f = parseL2capFrame(frame);
    if (!f) return; // reassembly mismatch: ble_l2cap_rx_payload drops it (ble_l2cap.c:279-283)
    switch (f.cid) {
      case Cid.ATT:
        if (f.payload.length > this.mtu) {
          const op = f.payload[0];
          if (op === AttOp.WRITE_CMD || op === AttOp.WRITE_REQ || op === AttOp.PREP_WRITE_REQ || op === AttOp.SIGNED_WRITE_CMD) this.counters.oversizeWritesDropped++;
          return;
        }
        return this.att(f.payload);
      case Cid.LE_SIGNALING:
        if (f.payload.length <= SIGNALING_MTU) this.signaling(f.payload);
        return;
      case Cid.SMP:
        // Without SM, every SMP PDU is answered Pairing Failed / Pairing Not Supported (ble_sm.c:3101-3131).
        if (f.payload.length <= SMP_MTU) this.send(Cid.SMP, Buffer.from([SMP_PAIRING_FAILED, SMP_PAIRING_NOT_SUPPORTED]));
        return;
      case Cid.BLACK_HOLE:
        return;
      default: {
        // Unknown channel: Command Reject "invalid CID", identifier 0 (ble_l2cap.c:371-385, ble_hs_hci_evt.c:1259-1262,
        // ble_l2cap_sig_cmd.c:78-93).
        const data = Buffer.concat([le16(f.cid), le16(0)]);
        this.sendSignal(SigCode.REJECT, 0, Buffer.concat([le16(SigReject.INVALID_CID), data]));
        return;
      }
    }
  }

  /**
   * LE signaling channel (ble_l2cap_sig.c:1819-1866): only a Command Reject or an Update Response
   * (neither expected: no procedure of ours is open) pass silently; every other command, the
   * Connection Parameter Update Request included (only a master processes it, 436-440), gets a Command
   * Reject "not understood" with the request's identifier. The device's own L2CAP update request
   * (our firmware's ble_gap_update_params when the LL procedure is not used) is not modelled here.
   */
  private signaling(p: Buffer): void {
    if (p.length < 4) return;
    const code = p[0];
    const identifier = p[1];
    if (p.readUInt16LE(2) !== p.length - 4) return;
    if (code === SigCode.REJECT || code === SigCode.UPDATE_RSP) return;
    this.sendSignal(SigCode.REJECT, identifier, le16(SigReject.NOT_UNDERSTOOD));
  }

  private sendSignal(code: number, identifier: number, data: Buffer): void {
    const header = Buffer.from([code, identifier, 0, 0]);
    header.writeUInt16LE(data.length, 2);
    this.send(Cid.LE_SIGNALING, Buffer.concat([header, data]));
  }

  private send(cid: number, payload: Buffer): void {
    if (this.closed) return;
    this.o.sendFrame(l2capFrame(cid, payload));
  }

  /** An ATT PDU toward the central, cut to the MTU (ble_att_truncate_to_mtu). */
  private sendAtt(pdu: Buffer): void {
    this.send(Cid.ATT, pdu.length > this.mtu ? pdu.subarray(0, this.mtu) : pdu);
  }

  private error(reqOp: number, handle: number, code: number, message?: string): void {
    if (!(code === AttErr.ATTR_NOT_FOUND && DISCOVERY_OPS.has(reqOp))) {
      this.counters.attErrors++;
      this.counters.lastAttError = { code, message: message ?? `ATT error 0x${code.toString(16)} for request 0x${reqOp.toString(16)}, handle ${handle}` };
    }
    const pdu = Buffer.from([AttOp.ERROR_RSP, reqOp, 0, 0, code]);
    pdu.writeUInt16LE(handle, 2);
    this.sendAtt(pdu);
  }

  // ---- ATT dispatch (ble_att.c:45-76, 484-526) ----

  private att(pdu: Buffer): void | Promise<void> {
    if (pdu.length === 0) return; // ble_att_rx: no opcode (ble_att.c:501-504)
    const op = pdu[0];
    const body = pdu.subarray(1);
    switch (op) {
      case AttOp.MTU_REQ:
        return this.exchangeMtu(body);
      case AttOp.FIND_INFO_REQ:
        return this.findInformation(body);
      case AttOp.FIND_TYPE_VALUE_REQ:
        return this.inline(() => this.findByTypeValue(body));
      case AttOp.READ_TYPE_REQ:
        return this.inline(() => this.readByType(body));
      case AttOp.READ_REQ:
        return this.read(body);
      case AttOp.READ_BLOB_REQ:
        return this.readBlob(body);
      case AttOp.READ_MULT_REQ:
        return this.inline(() => this.readMultiple(body, false));
      case AttOp.READ_MULT_VAR_REQ:
        return this.inline(() => this.readMultiple(body, true));
      case AttOp.READ_GROUP_TYPE_REQ:
        return this.readByGroupType(body);
      case AttOp.WRITE_REQ:
        return this.writeRequest(body);
      case AttOp.WRITE_CMD:
        return this.writeCommand(body);
      case AttOp.PREP_WRITE_REQ:
        return this.prepareWrite(body);
      case AttOp.EXEC_WRITE_REQ:
        return this.inline(() => this.executeWrite(body));
      case AttOp.CONFIRM:
        if (this.indicationsPending > 0) this.indicationsPending--;
        return;
      case AttOp.INDICATE:
        // ble_att_svr.c:2990-3052: confirmed when the handle is not 0.
        if (body.length >= 2 && body.readUInt16LE(0) !== 0) this.sendAtt(Buffer.from([AttOp.CONFIRM]));
        return;
      case AttOp.NOTIFY:
      case AttOp.SIGNED_WRITE_CMD: // no CSRK is ever stored (no bonding): dropped (ble_att_svr.c:2382-2386)
        return;
      default:
        if (CLIENT_SIDE_OPS.has(op)) return;
        // Unknown: commands (bit 6) are ignored, requests get Request Not Supported (ble_att.c:468-482).
        if (op & 0x40) return;
        this.error(op, 0, AttErr.REQ_NOT_SUPPORTED);
    }
  }

  /**
   * Runs a multi-step handler (written as async for callbacks that return promises). When nothing it
   * called was asynchronous it has finished before returning (each such handler sets handlerDone in a
   * finally block, which runs synchronously then), and the host may go on at once.
   */
  private inline(handler: () => Promise<void>): void | Promise<void> {
    this.handlerDone = false;
    const p = handler();
    if (!this.handlerDone) return p;
    p.catch(() => undefined);
  }

  // ---- MTU (ble_att_svr.c:731-826) ----

  private exchangeMtu(body: Buffer): void {
    if (body.length < 2) return;
    const clientMtu = body.readUInt16LE(0);
    // The response goes out before the new MTU applies: it carries our preferred value.
    this.sendAtt(Buffer.concat([Buffer.from([AttOp.MTU_RSP]), le16(this.myMtu)]));
    this.peerMtu = Math.max(ATT_DEFAULT_MTU, clientMtu);
    this.o.device.onMtu?.(this.mtu, this.o.connectionId);
  }

  // ---- discovery ----

  /** Find Information (ble_att_svr.c:844-1008): handles + types, one UUID size per response. */
  private findInformation(body: Buffer): void {
    if (body.length < 4) return;
    const start = body.readUInt16LE(0);
    const end = body.readUInt16LE(2);
    if (start > end || start === 0) return this.error(AttOp.FIND_INFO_REQ, start, AttErr.INVALID_HANDLE);
    const entries: Buffer[] = [];
    let format = 0;
    let length = 2;
    for (const a of this.db.attributes) {
      if (a.handle > end) break;
      if (a.handle < start) continue;
      const f = a.type.length === 2 ? 1 : 2;
      if (format !== 0 && f !== format) break;
      format = f;
      const size = 2 + a.type.length;
      if (length + size > this.mtu) break;
      entries.push(le16(a.handle), a.type);
      length += size;
    }
    if (entries.length === 0) return this.error(AttOp.FIND_INFO_REQ, start, AttErr.ATTR_NOT_FOUND);
    this.sendAtt(Buffer.concat([Buffer.from([AttOp.FIND_INFO_RSP, format]), ...entries]));
  }

  /** Find By Type Value (ble_att_svr.c:1024-1317): groups whose declaration value matches. */
  private async findByTypeValue(body: Buffer): Promise<void> {
    try {
      if (body.length < 6) return;
      const start = body.readUInt16LE(0);
      const end = body.readUInt16LE(2);
      const type = body.subarray(4, 6);
      const wanted = body.subarray(6);
      if (start > end || start === 0) return this.error(AttOp.FIND_TYPE_VALUE_REQ, start, AttErr.INVALID_HANDLE);
      const entries: Buffer[] = [];
      let length = 1;
      let first = 0;
      let prev = 0;
      let failed: { code: number; message?: string } | null = null;
      const flush = (): boolean => {
        if (length + 4 > this.mtu) return false;
        entries.push(le16(first), le16(prev));
        length += 4;
        return true;
      };
      let full = false;
      for (const a of this.db.attributes) {
        if (a.handle < start) continue;
        if (!first && a.handle > end) break;
        if (first) {
          if (!groupEnds(type, a.type)) {
            prev = a.handle;
            continue;
          }
          if (!flush()) {
            full = true;
            break;
          }
          first = prev = 0;
          if (a.handle > end) break;
        }
        if (sameUuid(a.type, type)) {
          const pending = this.readFlat(a, 16);
          const r = isThenable(pending) ? await pending : pending;
          if (this.closed) return;
          if (!r.ok) {
            failed = r;
            break;
          }
          // os_mbuf_cmpf compares attr_len bytes of the request value (a longer request value still matches).
          if (wanted.length >= r.value.length && wanted.subarray(0, r.value.length).equals(r.value)) first = prev = a.handle;
        }
      }
      // A failed read answers with its error even after matches (1180-1184, 1208-1216, 1302-1308).
      if (failed) return this.error(AttOp.FIND_TYPE_VALUE_REQ, start, failed.code, failed.message);
      if (!full && first) flush();
      if (entries.length === 0) return this.error(AttOp.FIND_TYPE_VALUE_REQ, start, AttErr.ATTR_NOT_FOUND);
      this.sendAtt(Buffer.concat([Buffer.from([AttOp.FIND_TYPE_VALUE_RSP]), ...entries]));
    } finally {
      this.handlerDone = true;
    }
  }

  /** Read By Type (ble_att_svr.c:1350-1540): handle-value pairs of one value length. */
  private async readByType(body: Buffer): Promise<void> {
    try {
      if (body.length !== 6 && body.length !== 20) return; // malformed: no response (1486-1491)
      const start = body.readUInt16LE(0);
      const end = body.readUInt16LE(2);
      const type = body.subarray(4);
      if (start > end || start === 0) return this.error(AttOp.READ_TYPE_REQ, start, AttErr.INVALID_HANDLE);
      const entries: Buffer[] = [];
      let length = 2;
      let valueLength = 0;
      let failure: { code: number; message?: string; handle: number } | null = null;
      for (const a of this.db.attributes) {
        if (a.handle > end) break;
        if (a.handle < start || !sameUuid(a.type, type)) continue;
        const pending = this.readFlat(a, 19);
        const r = isThenable(pending) ? await pending : pending;
        if (this.closed) return;
        if (!r.ok) {
          failure = { code: r.code, message: r.message, handle: a.handle };
          break;
        }
        const v = r.value.subarray(0, this.mtu - 4);
        if (valueLength === 0) valueLength = v.length;
        else if (valueLength !== v.length) break;
        if (length + 2 + v.length > this.mtu) break;
        entries.push(le16(a.handle), v);
        length += 2 + v.length;
      }
      if (entries.length === 0) {
        // Send what we can; an error only when nothing could be read (1442-1458).
        if (failure) return this.error(AttOp.READ_TYPE_REQ, failure.handle, failure.code, failure.message);
        return this.error(AttOp.READ_TYPE_REQ, start, AttErr.ATTR_NOT_FOUND);
      }
      this.countToCentral(entries, 2);
      this.sendAtt(Buffer.concat([Buffer.from([AttOp.READ_TYPE_RSP, 2 + valueLength]), ...entries]));
    } finally {
      this.handlerDone = true;
    }
  }

  /** Read By Group Type (ble_att_svr.c:1901-2221): primary/secondary services and their handle ranges. */
  private readByGroupType(body: Buffer): void {
    if (body.length !== 6 && body.length !== 20) return;
    const start = body.readUInt16LE(0);
    const end = body.readUInt16LE(2);
    const type = body.subarray(4);
    if (start > end || start === 0) return this.error(AttOp.READ_GROUP_TYPE_REQ, start, AttErr.INVALID_HANDLE);
    if (!isUuid16(type, GattType.PRIMARY_SERVICE) && !isUuid16(type, GattType.SECONDARY_SERVICE)) {
      return this.error(AttOp.READ_GROUP_TYPE_REQ, start, AttErr.UNSUPPORTED_GROUP);
    }
    const entries: Buffer[] = [];
    let length = 2;
    let entrySize = 0;
    let groupStart = 0;
    let groupEnd = 0;
    let groupUuid: Buffer = Buffer.alloc(0);
    let reachedEnd = true;
    let full = false;
    const write = (endHandle: number): boolean => {
      if (length + 4 + groupUuid.length > this.mtu) return false;
      entries.push(le16(groupStart), le16(endHandle), groupUuid);
      length += 4 + groupUuid.length;
      return true;
    };
    for (const a of this.db.attributes) {
      if (a.handle < start) continue;
      if (a.handle > end) {
        reachedEnd = false;
        break;
      }
      if (groupStart !== 0) {
        if (!isUuid16(a.type, GattType.PRIMARY_SERVICE) && !isUuid16(a.type, GattType.SECONDARY_SERVICE)) {
          groupEnd = a.handle;
        } else {
          const ok = write(groupEnd);
          groupStart = 0;
          if (!ok) {
            full = true;
            reachedEnd = false;
            break;
          }
        }
      }
      if (groupStart === 0 && sameUuid(a.type, type)) {
        const uuid = a.value ?? Buffer.alloc(0);
        const size = 4 + uuid.length;
        if (entrySize !== 0 && entrySize !== size) {
          reachedEnd = false;
          break; // one UUID size per response
        }
        entrySize = size;
        groupStart = groupEnd = a.handle;
        groupUuid = uuid;
      }
    }
    // The last group of the table ends at 0xFFFF so that the client need not ask again (2105-2111).
    if (!full && groupStart !== 0) write(reachedEnd ? 0xffff : groupEnd);
    if (entries.length === 0) return this.error(AttOp.READ_GROUP_TYPE_REQ, start, AttErr.ATTR_NOT_FOUND);
    this.sendAtt(Buffer.concat([Buffer.from([AttOp.READ_GROUP_TYPE_RSP, entrySize]), ...entries]));
  }

  // ---- reads ----

  /** Read (ble_att_svr.c:1542-1603). */
  private read(body: Buffer): void | Promise<void> {
    if (body.length < 2) return;
    return this.readAndRespond(AttOp.READ_REQ, AttOp.READ_RSP, body.readUInt16LE(0), 0);
  }

  /** Read Blob (ble_att_svr.c:1605-1671): the access callback runs again for every part. */
  private readBlob(body: Buffer): void | Promise<void> {
    if (body.length < 4) return;
    return this.readAndRespond(AttOp.READ_BLOB_REQ, AttOp.READ_BLOB_RSP, body.readUInt16LE(0), body.readUInt16LE(2));
  }

  private readAndRespond(reqOp: number, rspOp: number, handle: number, offset: number): void | Promise<void> {
    const a = this.db.at(handle);
    if (!a) return this.error(reqOp, handle, AttErr.INVALID_HANDLE);
    const respond = (r: ReadResult): void => {
      if (this.closed) return;
      if (!r.ok) return this.error(reqOp, handle, r.code, r.message);
      const value = r.value.subarray(0, this.mtu - 1);
      this.counters.valueBytesToCentral += value.length;
      this.sendAtt(Buffer.concat([Buffer.from([rspOp]), value]));
    };
    const r = this.readAttribute(a, offset, true);
    if (isThenable(r)) return r.then(respond);
    respond(r);
  }

  /** Read Multiple / Read Multiple Variable (ble_att_svr.c:1673-1900). */
  private async readMultiple(body: Buffer, variable: boolean): Promise<void> {
    try {
      const reqOp = variable ? AttOp.READ_MULT_VAR_REQ : AttOp.READ_MULT_REQ;
      const parts: Buffer[] = [Buffer.from([variable ? AttOp.READ_MULT_VAR_RSP : AttOp.READ_MULT_RSP])];
      let length = 1;
      for (let i = 0; i + 2 <= body.length && length < this.mtu; i += 2) {
        const handle = body.readUInt16LE(i);
        const a = this.db.at(handle);
        if (!a) return this.error(reqOp, handle, AttErr.INVALID_HANDLE);
        const pending = this.readAttribute(a, 0, true);
        const r = isThenable(pending) ? await pending : pending;
        if (this.closed) return;
        if (!r.ok) return this.error(reqOp, handle, r.code, r.message);
        if (variable) parts.push(le16(r.value.length));
        parts.push(r.value);
        length += r.value.length + (variable ? 2 : 0);
      }
      const pdu = Buffer.concat(parts);
      this.counters.valueBytesToCentral += Math.min(pdu.length, this.mtu) - 1;
      this.sendAtt(pdu);
    } finally {
      this.handlerDone = true;
    }
  }

  /** ble_att_svr_read_flat: a whole value into a buffer of maxLength, longer values fail Unlikely (477-517). */
  private readFlat(a: Attribute, maxLength: number): ReadResult | Promise<ReadResult> {
    const check = (r: ReadResult): ReadResult =>
      r.ok && r.value.length > maxLength ? failure(AttErr.UNLIKELY, `value of ${r.value.length} bytes > ${maxLength}`) : r;
    const pending = this.readAttribute(a, 0, true);
    return isThenable(pending) ? pending.then(check) : check(pending);
  }

  /**
   * ble_att_svr_read (440-475): permission check, then the attribute's access function. Declarations and
   * the CCCD ignore the offset (ble_gatts.c:187-208, 333-364, 909-916); characteristic values apply it,
   * an offset past the end fails Invalid Offset (ble_gatts.c:467-494).
   */
  private readAttribute(a: Attribute, offset: number, checkPermissions: boolean): ReadResult | Promise<ReadResult> {
    if (checkPermissions && !a.readable) return failure(AttErr.READ_NOT_PERMITTED);
    if (a.kind === 'service' || a.kind === 'characteristic') return { ok: true, value: a.value ?? Buffer.alloc(0) };
    if (a.kind === 'cccd') return { ok: true, value: le16(this.cccd.get(a.handle - 1) ?? 0) };
    const fromOffset = (value: Buffer): ReadResult =>
      offset > value.length ? failure(AttErr.INVALID_OFFSET, `offset ${offset} > value length ${value.length}`) : { ok: true, value: value.subarray(offset) };
    if (a.builtin) return fromOffset(a.builtin.read ? a.builtin.read() : Buffer.alloc(0));
    const c = a.characteristic;
    if (!c) return failure(AttErr.UNLIKELY);
    let value: Buffer | Promise<Buffer>;
    try {
      value = this.o.device.onRead(a.serviceUuid, c.uuid, this.o.connectionId);
    } catch (err) {
      return accessFailure(err);
    }
    if (isThenable(value)) return value.then((v) => fromOffset(Buffer.from(v)), accessFailure);
    return fromOffset(Buffer.from(value));
  }

  // ---- writes ----

  /** Write Request (ble_att_svr.c:2251-2315): the response after the callback returned. */
  private writeRequest(body: Buffer): void | Promise<void> {
    if (body.length < 2) return;
    const handle = body.readUInt16LE(0);
    const a = this.db.at(handle);
    if (!a) return this.error(AttOp.WRITE_REQ, handle, AttErr.INVALID_HANDLE);
    const respond = (r: WriteResult): void => {
      if (this.closed || 'lost' in r) return;
      if (!r.ok) return this.error(AttOp.WRITE_REQ, handle, r.code, r.message);
      this.sendAtt(Buffer.from([AttOp.WRITE_RSP]));
    };
    const r = this.writeAttribute(a, body.subarray(2), false);
    if (isThenable(r)) return r.then(respond);
    respond(r);
  }

  /** Write Command (ble_att_svr.c:2317-2352): errors are not reported. */
  private writeCommand(body: Buffer): void | Promise<void> {
    if (body.length < 2) return;
    const a = this.db.at(body.readUInt16LE(0));
    if (!a) return;
    const r = this.writeAttribute(a, body.subarray(2), true);
    if (isThenable(r)) return r.then(() => undefined);
  }

  /** Prepare Write (ble_att_svr.c:2672-2823): queued in handle/offset order, echoed back. */
  private prepareWrite(body: Buffer): void {
    if (body.length < 4) return;
    const handle = body.readUInt16LE(0);
    const offset = body.readUInt16LE(2);
    const a = this.db.at(handle);
    if (!a) return this.error(AttOp.PREP_WRITE_REQ, handle, AttErr.INVALID_HANDLE);
    if (!a.writable) return this.error(AttOp.PREP_WRITE_REQ, handle, AttErr.WRITE_NOT_PERMITTED);
    if (!this.host.takePrepEntry()) return this.error(AttOp.PREP_WRITE_REQ, handle, AttErr.PREPARE_QUEUE_FULL);
    const entry: PrepEntry = { handle, offset, value: Buffer.from(body.subarray(4)) };
    // ble_att_svr_prep_find_prev: after every entry with a lower handle, or the same handle and offset <= ours.
    let at = 0;
    while (at < this.prepQueue.length) {
      const e = this.prepQueue[at];
      if (e.handle > handle || (e.handle === handle && e.offset > offset)) break;
      at++;
    }
    this.prepQueue.splice(at, 0, entry);
    this.prepTimer?.cancel();
    this.prepTimer = this.o.clock.setTimer(() => {
      this.prepTimer = null;
      if (this.closed || this.prepQueue.length === 0) return;
      this.clearPrepQueue();
      this.o.terminate?.(HCI_REMOTE_USER_TERMINATED);
    }, QUEUED_WRITE_TIMEOUT_MS);
    this.sendAtt(Buffer.concat([Buffer.from([AttOp.PREP_WRITE_RSP]), body]));
  }

  /** Execute Write (ble_att_svr.c:2548-2670, 2825-2913): validate the whole queue, then write attribute by attribute. */
  private async executeWrite(body: Buffer): Promise<void> {
    try {
      if (body.length < 1) return;
      const queue = this.prepQueue;
      this.prepQueue = [];
      this.prepTimer?.cancel();
      this.prepTimer = null;
      this.host.releasePrepEntries(queue.length);
      if (body[0] !== 0 && queue.length > 0) {
        const invalid = validatePrepQueue(queue);
        if (invalid) return this.error(AttOp.EXEC_WRITE_REQ, invalid.handle, invalid.code);
        for (let i = 0; i < queue.length; ) {
          const handle = queue[i].handle;
          const parts: Buffer[] = [];
          while (i < queue.length && queue[i].handle === handle) parts.push(queue[i++].value);
          const a = this.db.at(handle);
          if (!a) return this.error(AttOp.EXEC_WRITE_REQ, handle, AttErr.UNLIKELY);
          const pending = this.writeAttribute(a, Buffer.concat(parts), false);
          const r = isThenable(pending) ? await pending : pending;
          if (this.closed || 'lost' in r) return;
          if (!r.ok) return this.error(AttOp.EXEC_WRITE_REQ, handle, r.code, r.message);
        }
      }
      this.sendAtt(Buffer.from([AttOp.EXEC_WRITE_RSP]));
    } finally {
      this.handlerDone = true;
    }
  }

  /** ble_att_svr_write (569-599): permission check, then the access function. */
  private writeAttribute(a: Attribute, data: Buffer, withoutResponse: boolean): WriteResult | Promise<WriteResult> {
    if (!a.writable) return failure(AttErr.WRITE_NOT_PERMITTED);
    if (a.kind === 'cccd') return this.writeCccd(a, data);
    if (a.builtin) {
      const code = a.builtin.write ? a.builtin.write(data) : AttErr.UNLIKELY;
      return code === 0 ? { ok: true } : failure(code);
    }
    const c = a.characteristic;
    if (a.kind !== 'value' || !c) return failure(AttErr.UNLIKELY);
    const verdict = this.o.filterWrite ? this.o.filterWrite(Buffer.from(data), withoutResponse, c.uuid) : { action: 'deliver' as const, data };
    if (verdict.action === 'loseLink') {
      this.o.onLinkLost?.();
      return { ok: false, lost: true };
    }
    if (verdict.action === 'drop') return { ok: true };
    const value = Buffer.from(verdict.data);
    this.counters.valueBytesToPeripheral += value.length;
    let result: void | Promise<void>;
    try {
      result = this.o.device.onWrite(a.serviceUuid, c.uuid, value, withoutResponse, this.o.connectionId);
    } catch (err) {
      return accessFailure(err);
    }
    if (isThenable(result)) return result.then((): WriteResult => ({ ok: true }), accessFailure);
    return { ok: true };
  }

  /** CCCD write (ble_gatts.c:918-946): exactly 2 bytes, only the bits the characteristic allows. */
  private writeCccd(a: Attribute, data: Buffer): WriteResult {
    if (data.length !== 2) return failure(AttErr.INVALID_ATTR_VALUE_LEN);
    const flags = data.readUInt16LE(0);
    const c = a.characteristic;
    const allowed = c ? (notifies(c) ? CCCD_NOTIFY : 0) | (indicates(c) ? CCCD_INDICATE : 0) : 0;
    if ((flags & ~allowed) !== 0) return failure(AttErr.REQ_NOT_SUPPORTED);
    this.cccd.set(a.handle - 1, flags);
    return { ok: true };
  }

  private clearPrepQueue(): void {
    this.host.releasePrepEntries(this.prepQueue.length);
    this.prepQueue = [];
    this.prepTimer?.cancel();
    this.prepTimer = null;
  }

  private countToCentral(entries: Buffer[], everyOther: number): void {
    for (let i = 1; i < entries.length; i += everyOther) this.counters.valueBytesToCentral += entries[i].length;
  }
}

/** What an access callback's exception becomes: its AttError code, anything else Unlikely Error. */
function accessFailure(err: unknown): Failure {
  const code = err instanceof AttError && err.attCode > 0 && err.attCode <= 0xff ? err.attCode : AttErr.UNLIKELY;
  return failure(code, err instanceof Error ? err.message : String(err));
}

/** ble_att_svr_prep_validate (2551-2591): each attribute's parts start at 0, follow on, stay within 512 bytes. */
function validatePrepQueue(queue: PrepEntry[]): { handle: number; code: number } | null {
  let prev: PrepEntry | null = null;
  for (const e of queue) {
    if (!prev || prev.handle !== e.handle) {
      if (e.offset !== 0) return { handle: e.handle, code: AttErr.INVALID_OFFSET };
    } else if (prev.offset + prev.value.length !== e.offset) {
      return { handle: e.handle, code: AttErr.INVALID_OFFSET };
    }
    if (e.offset + e.value.length > ATT_ATTR_MAX_LEN) return { handle: e.handle, code: AttErr.INVALID_ATTR_VALUE_LEN };
    prev = e;
  }
  return null;
}

/** ble_att_svr_is_valid_group_end (1067-1102). */
function groupEnds(groupType: Buffer, type: Buffer): boolean {
  if (groupType.length !== 2) return true;
  if (type.length !== 2) return false;
  const g = groupType.readUInt16LE(0);
  const t = type.readUInt16LE(0);
  const service = t === GattType.PRIMARY_SERVICE || t === GattType.SECONDARY_SERVICE;
  if (g === GattType.PRIMARY_SERVICE || g === GattType.SECONDARY_SERVICE) return service;
  if (g === GattType.CHARACTERISTIC) return service || t === GattType.CHARACTERISTIC;
  return true;
}

export { AttHost };
