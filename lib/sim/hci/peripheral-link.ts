/**
 * The device's end of one link: its controller's RX buffers, the L2CAP reassembly of its host and the
 * ATT server (att-server.ts) that serves the frames. PDUs the link layer delivers take an RX buffer
 * until the host has taken the frame they belong to; while the host is stalled (flash erase with the
 * cache disabled: PeripheralHost.hostStall) or busy in an access callback, frames wait and their PDUs
 * keep their buffers; when every buffer is taken the controller NAKs what comes next and the central's
 * link layer sends it again (link-layer.ts). Frames the server sends are cut into PDUs of the data
 * length; during a stall they wait in the host until it runs again.
 */
import type { Pdu } from '../radio/link-layer';

/** The server side this end drives (AttServer's surface). */
export interface FrameServer {
  receiveFrame(frame: Buffer): void;
  readonly queuedFrames: number;
}

export interface PeripheralLinkOptions {
  /** LL data length of the link (251 with DLE, 27 without). */
  dataLength: number;
  /** ACL RX buffers of the device's controller (each holds one PDU). */
  rxBuffers: number;
  /** Queues PDUs toward the central. */
  sendPdus(pdus: Pdu[]): void;
  /** The device's host cannot run now (stall); frames it sends wait. */
  hostStalled(): boolean;
}

export class PeripheralLinkEnd {
  server: FrameServer | null = null;
  /** Most RX buffers in use at once (tests, stats). */
  maxRxInUse = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private partialWant = 0;
  /** PDUs of frames handed to the server, per frame, oldest first; freed once the host took the frame. */
  private readonly framePdus: number[] = [];
  private heldPdus = 0;
  private readonly heldFrames: Buffer[] = [];
  private closed = false;

  constructor(private readonly o: PeripheralLinkOptions) {}

  /** RX buffers in use: PDUs of the frame being reassembled and of frames the host has not taken yet. */
  rxInUse(): number {
    const waiting = this.server?.queuedFrames ?? 0;
    while (this.framePdus.length > waiting) this.heldPdus -= this.framePdus.shift() as number;
    return this.heldPdus + this.partial.length;
  }

  canReceive(): boolean {
    return this.closed || this.rxInUse() < this.o.rxBuffers;
  }

  /** A PDU the link layer delivered (it had a buffer: canReceive was true). */
  receivePdu(pdu: Pdu): void {
    if (this.closed || !pdu.payload) return;
    const data = pdu.payload;
    if (pdu.start) {
      this.partial = [];
      this.partialBytes = 0;
      this.partialWant = data.length >= 2 ? data.readUInt16LE(0) + 4 : 4;
    } else if (this.partial.length === 0) {
      return; // a continuation without a start: dropped, as NimBLE's ble_l2cap_rx does
    }
    this.partial.push(data);
    this.partialBytes += data.length;
    const inUse = this.heldPdus + this.partial.length;
    if (inUse > this.maxRxInUse) this.maxRxInUse = inUse;
    if (this.partialBytes < this.partialWant) return;
    const frame = this.partial.length === 1 ? data : Buffer.concat(this.partial, this.partialBytes);
    this.framePdus.push(this.partial.length);
    this.heldPdus += this.partial.length;
    this.partial = [];
    this.partialBytes = 0;
    this.server?.receiveFrame(frame.length > this.partialWant ? frame.subarray(0, this.partialWant) : frame);
  }

  /** A whole L2CAP frame from the device's host. */
  sendFrame(frame: Buffer): void {
    if (this.closed) return;
    if (this.o.hostStalled() || this.heldFrames.length > 0) {
      this.heldFrames.push(frame);
      return;
    }
    this.transmit(frame);
  }

  /** The host runs again: frames it sent meanwhile go out in order. */
  hostResumed(): void {
    while (!this.closed && this.heldFrames.length > 0 && !this.o.hostStalled()) this.transmit(this.heldFrames.shift() as Buffer);
  }

  close(): void {
    this.closed = true;
    this.partial = [];
    this.heldFrames.length = 0;
    this.framePdus.length = 0;
    this.heldPdus = 0;
  }

  private transmit(frame: Buffer): void {
    const dl = this.o.dataLength;
    const pdus: Pdu[] = [];
    for (let off = 0; off < frame.length; off += dl) {
      const part = frame.subarray(off, Math.min(off + dl, frame.length));
      pdus.push({ bytes: part.length, payload: part, start: off === 0 });
    }
    this.o.sendPdus(pdus);
  }
}
