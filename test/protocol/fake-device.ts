/**
 * A small scripted v2 device behind an in-memory BleConnection, for testing the client's logic in
 * isolation (window, go-back, probe, auth, stall, abort). It follows PROTOCOL.md §2–§3 and §7 in the
 * simplest way; the full device behaviour is tested by the conformance suite against lib/sim/device
 * and the C twin. Writes and notifications each take 1 ms of VirtualClock time, in order.
 */
import { EventEmitter } from 'events';
import { createHash } from 'crypto';
import { inflateSync } from 'zlib';
import type { BleConnection, GattServiceInfo } from '../../lib/ble/central';
import type { VirtualClock } from '../../lib/sim/virtual-clock';
import { OtaError } from '../../lib/errors';
import {
  CONTROL_CHAR_UUID,
  Caps,
  DATA_CHAR_UUID,
  ErrorCode,
  OTA_SERVICE_UUID,
  Op,
  STAGING_OFFSET_FLAG,
  STATUS_CHAR_UUID,
} from '../../lib/protocol/constants';
import { BeginCommand, Command, decodeCommand, decodeDataChunk, encodeNotification, malformedCommandResponse } from '../../lib/protocol/codec';
import { beginTag, commandTag, tagsEqual } from '../../lib/protocol/auth';
import { encodeStatus } from '../../lib/protocol/status';
import { applyPatchReference } from './patch-reference';
import { appHash } from '../../lib/image';

export interface FakeDeviceOptions {
  caps?: number;
  fleetKey?: Buffer;
  maxChunk?: number;
  window?: number;
  ackInterval?: number;
  /** Data offsets whose first arrival is lost on the link. */
  loseOnce?: number[];
  /** Stop answering data (no ACK, no NAK) once this transfer offset is reached. */
  silentFrom?: number;
  /** Send SESSION_ABORTED with this code after the first data write. */
  abortWith?: number;
  /** Answer BEGIN with this error code. */
  beginError?: number;
  /** Answer MANIFEST with this error code (default OK: stored). */
  manifestError?: number;
  /** Answer the commit of staged bytes (MANIFEST `0x09` alone) with this error code (default: as manifestError). */
  commitError?: number;
  /** Drop the link (session kept) right after acknowledging this offset or more, once. */
  dropLinkAtAck?: number;
  /** The writer is slower than the link: each DATA_ACK goes out this long after its bytes arrived (ms). */
  ackDelayMs?: number;
  /** Called when END arrives, before the device answers it. */
  onEndReceived?: () => void;
  /** PROVISION is accepted (the provisioning window is open; caps bit8). */
  provisioningWindow?: boolean;
  /** Status format to serve (default 2). */
  statusFormat?: 1 | 2;
  /** The app image the device runs: Status running_sha256 = its app hash, the base of a delta (encoding 2, with caps bit7). */
  runningImage?: Buffer;
}

interface Session {
  begin: BeginCommand;
  chunkSize: number;
  expected: number;
  lastAck: number;
  nakedGapAt: number;
  nakedDupAt: number;
  received: Buffer;
}

export class FakeDevice {
  readonly log: string[] = [];
  /** Largest (offset + length − acked-by-device) seen on Data: the client's in-flight maximum. */
  maxInFlight = 0;
  dataWrites = 0;
  bytesWritten = 0;
  completedImage: Buffer | null = null;
  session: Session | null = null;
  /** The last BEGIN as decoded (base_sha256, manifest, flags). */
  lastBegin: BeginCommand | null = null;
  /** Key stored by PROVISION. */
  provisionedKey: Buffer | null = null;
  /** Manifests received with MANIFEST (op 0x09), in order; a commit adds the bytes it staged. */
  readonly manifestCommands: Buffer[] = [];
  /** Staging writes on Data (offset bit31; revision 2.3): manifest offset and length of each. */
  readonly stagingWrites: Array<{ manifestOffset: number; length: number }> = [];
  private staged: Buffer[] = [];
  private nonce: Buffer | null = null;
  private readonly lost = new Set<number>();
  private conn: FakeConnection | null = null;
  private sentAbort = false;

  constructor(
    readonly clock: VirtualClock,
    readonly opts: FakeDeviceOptions = {},
  ) {
    for (const o of opts.loseOnce ?? []) this.lost.add(o);
  }

  get caps(): number {
    return (
      (this.opts.caps ?? Caps.DEFLATE | Caps.RESUME) |
      (this.opts.fleetKey ? Caps.SESSION_KEY_REQUIRED : 0) |
      (this.opts.provisioningWindow ? Caps.PROVISIONING_WINDOW : 0)
    );
  }

  connect(mtu = 247): FakeConnection {
    this.conn = new FakeConnection(this, mtu);
    return this.conn;
  }

  /** The link drops; the session is kept for resume. */
  dropLink(): void {
    this.conn?.drop();
    this.conn = null;
  }

  notify(msg: Parameters<typeof encodeNotification>[0]): void {
    this.conn?.deliver(encodeNotification(msg));
  }

  onControl(data: Buffer): void {
    const bad = malformedCommandResponse(data);
    if (bad) return this.conn?.deliver(bad);
    const cmd = decodeCommand(data);
    this.log.push(`cmd ${cmd.op}`);
    this.handle(cmd, data);
  }

  private handle(cmd: Command, raw: Buffer): void {
    const respond = (err: number) => this.notify({ op: cmd.op | 0x80, err });
    if (cmd.op === Op.CHALLENGE) {
      this.nonce = createHash('sha256').update(String(this.clock.now())).update(String(this.log.length)).digest().subarray(0, 16);
      return this.notify({ op: 0x81, err: 0, nonce: this.nonce, caps: this.caps });
    }
    if (cmd.op === Op.END) {
      this.opts.onEndReceived?.();
      const s = this.session;
      if (!s) return respond(ErrorCode.NO_SESSION);
      if (s.expected < s.begin.transferSize) return respond(ErrorCode.INVALID_STATE);
      const decoded = s.begin.encoding === 0 ? s.received : inflateSync(s.received);
      const image = s.begin.encoding === 2 ? applyPatchReference(this.opts.runningImage ?? Buffer.alloc(0), decoded, s.begin.imageSize) : decoded;
      if (!createHash('sha256').update(image).digest().equals(s.begin.sha256)) return respond(ErrorCode.HASH_MISMATCH);
      this.completedImage = image;
      this.session = null;
      return this.notify({ op: 0x83, err: 0, imageSize: image.length });
    }
    if (cmd.op === Op.MANIFEST) {
      const staged = Buffer.concat(this.staged);
      this.staged = [];
      if (!cmd.manifest) {
        if (staged.length === 0) return respond(ErrorCode.BAD_LENGTH);
        this.manifestCommands.push(staged);
        return respond(this.opts.commitError ?? this.opts.manifestError ?? ErrorCode.OK);
      }
      this.manifestCommands.push(cmd.manifest);
      return respond(this.opts.manifestError ?? ErrorCode.OK);
    }
    if (cmd.op === Op.PROVISION) {
      if (!this.opts.provisioningWindow) return respond(ErrorCode.INVALID_STATE);
      this.provisionedKey = cmd.key;
      return respond(ErrorCode.OK);
    }
    if (this.opts.fleetKey) {
      if (!this.nonce) return respond(ErrorCode.AUTH_REQUIRED);
      const nonce = this.nonce;
      this.nonce = null;
      const expectedTag = cmd.op === Op.BEGIN ? beginTag(this.opts.fleetKey, nonce, raw) : commandTag(this.opts.fleetKey, nonce, cmd.op);
      if (!tagsEqual(expectedTag, (cmd as { tag: Buffer }).tag)) return respond(ErrorCode.AUTH_FAILED);
    }
    if (cmd.op === Op.BEGIN) {
      this.lastBegin = cmd;
      if (this.opts.beginError) return respond(this.opts.beginError);
      if (cmd.encoding === 2 && this.opts.runningImage && !cmd.baseSha256?.equals(this.runningSha256)) return respond(ErrorCode.BASE_MISMATCH);
      const mtuChunk = (this.conn?.mtu ?? 23) - 7;
      const chunkSize = Math.min(cmd.chunkSize, this.opts.maxChunk ?? 508, mtuChunk);
      const kept = this.session;
      if (kept && (cmd.flags & 1) && kept.begin.sha256.equals(cmd.sha256)) {
        kept.chunkSize = chunkSize;
        kept.expected = kept.lastAck;
        kept.nakedGapAt = kept.nakedDupAt = -1;
        this.log.push(`resume ${kept.lastAck}`);
      } else {
        this.session = {
          begin: cmd,
          chunkSize,
          expected: 0,
          lastAck: 0,
          nakedGapAt: -1,
          nakedDupAt: -1,
          received: Buffer.alloc(cmd.transferSize),
        };
      }
      const s = this.session as Session;
      return this.notify({ op: 0x82, err: 0, chunkSize, window: this.window, ackInterval: this.ackInterval, resumeOffset: s.lastAck });
    }
    if (cmd.op === Op.ABORT) this.session = null;
    respond(ErrorCode.OK);
  }

  get runningSha256(): Buffer {
    // ESP-IDF's running_sha256: through the checksum byte (the appended digest), not the file's SHA-256.
    return this.opts.runningImage ? appHash(this.opts.runningImage) : Buffer.alloc(32);
  }

  get window(): number {
    return this.opts.window ?? 4096;
  }

  get ackInterval(): number {
    return this.opts.ackInterval ?? 1024;
  }

  onData(data: Buffer): void {
    this.dataWrites++;
    const { offset, payload } = decodeDataChunk(data);
    if (offset >= STAGING_OFFSET_FLAG) {
      // staging in order only (the simplest device); offset 0 restarts
      const manifestOffset = offset - STAGING_OFFSET_FLAG;
      if (manifestOffset === 0) this.staged = [];
      this.stagingWrites.push({ manifestOffset, length: payload.length });
      this.staged.push(payload);
      return;
    }
    if (this.lost.delete(offset)) {
      this.log.push(`lost ${offset}`);
      return;
    }
    const s = this.session;
    if (!s) return this.notify({ op: Op.DATA_NAK, err: ErrorCode.NO_SESSION, expectedOffset: 0 });
    if (this.opts.silentFrom !== undefined && offset >= this.opts.silentFrom) return;
    if (this.opts.abortWith && !this.sentAbort) {
      this.sentAbort = true;
      this.session = null;
      return this.notify({ op: Op.SESSION_ABORTED, err: this.opts.abortWith });
    }
    this.maxInFlight = Math.max(this.maxInFlight, offset + payload.length - s.lastAck);
    if (payload.length > s.chunkSize) return this.notify({ op: Op.DATA_NAK, err: ErrorCode.OVERSIZED, expectedOffset: s.expected });
    if (offset < s.expected) {
      if (s.nakedDupAt === s.expected) return;
      s.nakedDupAt = s.expected;
      return this.notify({ op: Op.DATA_NAK, err: ErrorCode.DUPLICATE, expectedOffset: s.expected });
    }
    if (offset > s.expected) {
      if (s.nakedGapAt === s.expected) return;
      s.nakedGapAt = s.expected;
      return this.notify({ op: Op.DATA_NAK, err: ErrorCode.GAP, expectedOffset: s.expected });
    }
    if (offset + payload.length > s.begin.transferSize || offset + payload.length > s.lastAck + this.window) {
      return this.notify({ op: Op.DATA_NAK, err: ErrorCode.OUT_OF_WINDOW, expectedOffset: s.expected });
    }
    payload.copy(s.received, offset);
    s.expected += payload.length;
    if (s.expected - s.lastAck >= this.ackInterval || s.expected === s.begin.transferSize) {
      s.lastAck = s.expected;
      const ack = { op: Op.DATA_ACK, nextOffset: s.expected } as const;
      if (this.opts.ackDelayMs) this.clock.setTimer(() => this.notify(ack), this.opts.ackDelayMs);
      else this.notify(ack);
      if (this.opts.dropLinkAtAck !== undefined && s.lastAck >= this.opts.dropLinkAtAck) {
        this.opts.dropLinkAtAck = undefined;
        this.dropLink();
      }
    }
  }

  statusValue(): Buffer {
    return encodeStatus({
      format: this.opts.statusFormat ?? 2, protoVersion: 2, caps: this.caps, otaState: 2, confirmPolicy: 0, sessionState: this.session ? 1 : 0,
      resetReason: 1, bootCount: 0, chipId: 5, secureVersion: 0, sessionOffset: this.session?.lastAck ?? 0,
      runningPartition: 'ota_0', appVersion: '1.0.0', projectName: 'fake', idfVersion: 'v5.2',
      runningSha256: this.runningSha256.toString('hex'), lastResult: 0xff, lastFlags: 0, lastSha256: '00'.repeat(32), lastMessage: '',
      updatePartitionSize: 0x1e0000, releaseFloor: 3, deviceId: '24:0a:c4:12:34:56', releaseKeyIds: 0b0101,
    });
  }
}

/** BleConnection to a FakeDevice: each write and each notification is delivered 1 ms later, in order. */
export class FakeConnection extends EventEmitter implements BleConnection {
  readonly deviceId = 'fake';
  connected = true;
  bytesWritten = 0;
  private controlListener: ((data: Buffer) => void) | null = null;
  /** Time the link is busy until: keeps writes and notifications in order. */
  private linkFreeAt = 0;

  constructor(
    private readonly device: FakeDevice,
    readonly mtu: number,
  ) {
    super();
  }

  private later(fn: () => void): Promise<void> {
    const clock = this.device.clock;
    this.linkFreeAt = Math.max(this.linkFreeAt, clock.now()) + 1;
    return new Promise((resolve) => {
      clock.setTimer(() => {
        if (this.connected) fn();
        resolve();
      }, this.linkFreeAt - clock.now());
    });
  }

  async discover(): Promise<GattServiceInfo[]> {
    return [
      {
        uuid: OTA_SERVICE_UUID,
        characteristics: [
          { uuid: CONTROL_CHAR_UUID, properties: ['write', 'notify'] },
          { uuid: DATA_CHAR_UUID, properties: ['writeWithoutResponse'] },
          { uuid: STATUS_CHAR_UUID, properties: ['read', 'notify'] },
        ],
      },
    ];
  }

  async read(_service: string, characteristic: string): Promise<Buffer> {
    if (characteristic !== STATUS_CHAR_UUID) throw new OtaError('GATT_ERROR', 'not readable');
    return this.device.statusValue();
  }

  async write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    if (!this.connected) throw new OtaError('DISCONNECTED', 'not connected');
    if (service !== OTA_SERVICE_UUID) throw new OtaError('GATT_ERROR', `no service ${service}`);
    this.bytesWritten += data.length;
    const copy = Buffer.from(data);
    if (characteristic === CONTROL_CHAR_UUID && !withoutResponse) return this.later(() => this.device.onControl(copy));
    if (characteristic === DATA_CHAR_UUID && withoutResponse) {
      this.device.bytesWritten += copy.length;
      return this.later(() => this.device.onData(copy));
    }
    throw new OtaError('GATT_ERROR', `wrong write to ${characteristic}`);
  }

  async subscribe(_service: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void> {
    if (characteristic === CONTROL_CHAR_UUID) this.controlListener = onValue;
  }

  deliver(data: Buffer): void {
    void this.later(() => this.controlListener?.(data));
  }

  drop(): void {
    if (!this.connected) return;
    this.connected = false;
    this.emit('disconnect', 'link lost');
  }

  async disconnect(): Promise<void> {
    this.drop();
  }
}
