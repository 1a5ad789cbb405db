/**
 * Protocol v2 client (docs/PROTOCOL.md) on one BleConnection: CHALLENGE, BEGIN (fleet-key tag, resume),
 * a windowed write-without-response transfer with ACK/NAK go-back, END, ABORT, CONFIRM, ROLLBACK,
 * REBOOT, Status. Reconnecting and resuming across connections is lib/ota's job: it opens a new client
 * on the new connection and calls begin({resume: true}) then transfer() from the returned offset.
 */
import { OtaError } from '../errors';
import type { Clock, TimerHandle } from '../clock';
import type { BleConnection } from '../ble/central';
import type { FlashPhase, TransferProgress } from './progress';
import { abortError } from '../ble/abort';
import {
  ATT_HEADER_SIZE,
  BEGIN_TAG_OFFSET,
  BeginFlags,
  COMMAND_NAMES,
  Capabilities,
  CONTROL_CHAR_UUID,
  Caps,
  CommandOp,
  DATA_CHAR_UUID,
  DATA_HEADER_SIZE,
  EndFlags,
  ErrorCode,
  MANIFEST_MAX_SIZE,
  MIN_CHUNK_SIZE,
  OTA_SERVICE_UUID,
  Op,
  PROTO_VERSION,
  RESPONSE_BIT,
  SESSION_KEY_SIZE,
  SHA256_SIZE,
  STATUS_CHAR_UUID,
  TaggedOp,
  decodeCaps,
  deviceErrorCode,
  errorName,
  errorSentence,
} from './constants';
import {
  BeginResponse,
  ChallengeResponse,
  ControlNotification,
  EndResponse,
  decodeNotification,
  encodeCommand,
  encodeDataChunk,
  encodeStagingChunk,
} from './codec';
import { DeviceStatus, decodeStatus } from './status';
import { ZERO_TAG, beginTag, commandTag } from './auth';
import { EncodingChoice, TransferEncoding, TransferPayload, encodingByte, prepareTransferPayload } from './payload';

export type { TransferProgress };

export interface V2ClientOptions {
  clock: Clock;
  /**
   * 32-byte session key: the device's own key (see deriveDeviceKey) or the legacy fleet key; needed
   * when the device's caps say a session key is required (bit1).
   */
  fleetKey?: Buffer;
  signal?: AbortSignal;
  onProgress?: (p: TransferProgress) => void;
  /** Wait for a command's response notification (default 5000 ms; END: endTimeoutMs). */
  commandTimeoutMs?: number;
  /** END verifies the whole image before answering (default 30000 ms). */
  endTimeoutMs?: number;
  /** No ACK progress for this long → resend from the last ACKed offset (default 1500 ms). */
  retransmitTimeoutMs?: number;
  /** No ACK progress for this long → TIMEOUT (default 15000 ms). */
  stallTimeoutMs?: number;
  /** Largest chunk to ask for (default: what the MTU allows, capped by 65535). */
  maxChunkSize?: number;
  /**
   * Awaited before each burst of Data writes. An adapter shared by several links lets their set-up
   * traffic go first here: Data queued for a device stalled by a flash erase holds the adapter's ACL
   * buffers for everyone (lib/ble/setup-priority.ts).
   */
  beforeBurst?: () => Promise<void>;
}

export interface ChallengeInfo {
  nonce: Buffer;
  caps: number;
  capabilities: Capabilities;
}

export interface BeginOptions {
  image: Buffer;
  /** Default 'auto'. Ignored when `payload` is given. */
  encoding?: EncodingChoice;
  /** A payload prepared earlier (prepareTransferPayload), e.g. by a previous attempt. */
  payload?: TransferPayload;
  /** Ask the device to continue a kept session with the same digest (flags bit0). */
  resume?: boolean;
  /**
   * BEGIN base_sha256 of a delta transfer (the running_sha256 of the base image); defaults to the
   * delta payload's own. Only with a delta payload (prepareDeltaPayload).
   */
  baseSha256?: Buffer;
  /** The signed manifest (§12) to send after BEGIN's fixed part (sets flags bit1). */
  manifest?: Buffer;
}

export interface SessionInfo {
  encoding: TransferEncoding;
  imageSize: number;
  transferSize: number;
  chunkSize: number;
  window: number;
  ackInterval: number;
  /** Transfer offset the device asked to continue from. */
  resumeOffset: number;
  /** Highest DATA_ACK so far. */
  acked: number;
}

/** BEGIN base_sha256: the delta payload's base (zero for raw/deflate); a conflicting option is refused. */
function beginBaseSha256(payload: TransferPayload, option: Buffer | undefined): Buffer {
  if (option !== undefined && (!Buffer.isBuffer(option) || option.length !== SHA256_SIZE)) {
    throw new OtaError('BAD_PARAMETER', `baseSha256 must be a Buffer of ${SHA256_SIZE} bytes.`);
  }
  if (payload.encoding !== 'delta') {
    if (option && option.some((b) => b !== 0)) throw new OtaError('BAD_PARAMETER', `baseSha256 is only for a delta transfer; this payload is ${payload.encoding}.`);
    return Buffer.alloc(SHA256_SIZE);
  }
  const base = option ?? payload.baseSha256;
  if (!base || base.every((b) => b === 0)) throw new OtaError('BAD_PARAMETER', 'A delta transfer needs the base image\'s SHA-256 (baseSha256).');
  if (option && payload.baseSha256 && !option.equals(payload.baseSha256)) {
    throw new OtaError('BAD_PARAMETER', 'baseSha256 differs from the base the delta payload was made for.');
  }
  return base;
}

const L2CAP_HEADER_SIZE = 4;
/** The LL data length every link supports (Bluetooth Core Specification, Link Layer: 27 octets is the minimum of connMaxTxOctets). */
const MIN_LL_DATA_LENGTH = 27;

/**
 * Manifest bytes per staging write: the Data chunk rule (§2.2) for a link whose data length the client
 * cannot see, taken as 27 (the LL minimum, every link has it): the write's L2CAP frame of 4 + 3 + 4 +
 * chunk bytes fills whole PDUs. MTU - 7 when the frame fits one PDU (MTU 23: 16 bytes), else the largest
 * k * 27 - 11 <= MTU - 7. On a link with a larger data length this costs at most a few more writes.
 */
export function stagingChunkSize(mtu: number): number {
  const limit = mtu - ATT_HEADER_SIZE - DATA_HEADER_SIZE;
  const frameOverhead = L2CAP_HEADER_SIZE + ATT_HEADER_SIZE + DATA_HEADER_SIZE;
  if (limit + frameOverhead <= MIN_LL_DATA_LENGTH) return limit;
  return Math.floor((limit + frameOverhead) / MIN_LL_DATA_LENGTH) * MIN_LL_DATA_LENGTH - frameOverhead;
}

const DEFAULTS = { commandTimeoutMs: 5000, endTimeoutMs: 30000, retransmitTimeoutMs: 1500, stallTimeoutMs: 15000 };
/** Go-backs without any ACK progress before the client gives up as PROTOCOL_STUCK. */
const MAX_GO_BACKS_WITHOUT_PROGRESS = 50;

type Waiter = () => void;

export class V2Client {
  /** ATT value bytes written (commands and data, retransmissions included). */
  bytesOnAir = 0;
  /** Chunks resent after NAKs or timeouts (for statistics). */
  retransmittedChunks = 0;
  private readonly clock: Clock;
  private readonly opts: V2ClientOptions;
  private readonly queue: ControlNotification[] = [];
  private waiter: Waiter | null = null;
  /** Disconnect or a malformed notification: ends this client. */
  private fatal: OtaError | null = null;
  /** SESSION_ABORTED: ends the current session; a new begin() clears it. */
  private sessionAborted: OtaError | null = null;
  private subscribed = false;
  private caps: number | null = null;
  /** proto_version from the last Status read (the CHALLENGE response does not carry it). */
  private statusProtoVersion: number | null = null;
  /** caps from the last Status read (before any CHALLENGE). */
  private statusCaps: number | null = null;
  /** The manifest the device stored for this connection with MANIFEST (§2.4); the next BEGIN goes without it. */
  private stagedManifest: Buffer | null = null;
  private nonce: Buffer | null = null;
  private payload: TransferPayload | null = null;
  private sessionInfo: SessionInfo | null = null;
  private phase: FlashPhase = 'connecting';
  private readonly onDisconnect = (reason?: string) => {
    this.fail(new OtaError('DISCONNECTED', `The device disconnected${reason ? ` (${reason})` : ''}.`));
  };
  private readonly onAbortSignal = () => this.wake();

  constructor(
    readonly connection: BleConnection,
    options: V2ClientOptions,
  ) {
    this.clock = options.clock;
    this.opts = { ...options };
    connection.on('disconnect', this.onDisconnect);
    options.signal?.addEventListener('abort', this.onAbortSignal);
  }

  /** Subscribes to Control (PROTOCOL.md §1: before the first command). Idempotent. */
  async open(): Promise<void> {
    if (this.subscribed) return;
    if (!this.connection.connected) throw new OtaError('DISCONNECTED', 'The device is not connected.');
    await this.connection.subscribe(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, (data) => this.onControl(data));
    this.subscribed = true;
  }

  /** Detaches from the connection (listeners); does not disconnect. */
  close(): void {
    this.connection.removeListener('disconnect', this.onDisconnect);
    this.opts.signal?.removeEventListener('abort', this.onAbortSignal);
  }

  get session(): SessionInfo | null {
    return this.sessionInfo ? { ...this.sessionInfo } : null;
  }

  get deviceCaps(): number | null {
    return this.caps;
  }

  /**
   * Sets the session key after construction: a per-device key is derived from the device id that Status
   * reports, so it is known only once Status has been read (before the CHALLENGE of BEGIN or a command).
   */
  setSessionKey(key: Buffer | undefined): void {
    if (key !== undefined && (!Buffer.isBuffer(key) || key.length !== SESSION_KEY_SIZE)) {
      throw new OtaError('BAD_FLEET_KEY', `The session key must be ${SESSION_KEY_SIZE} bytes (64 hex digits).`);
    }
    this.opts.fleetKey = key;
  }

  /** The caps of the last CHALLENGE by name (§5), or null before the first one. */
  get deviceCapabilities(): Capabilities | null {
    return this.caps === null ? null : decodeCaps(this.caps);
  }

  /** The payload of the current session (reuse it for a resume on a new connection). */
  get transferPayload(): TransferPayload | null {
    return this.payload;
  }

  /**
   * Reads Status (a long read when the MTU is small). Status notifications carry only the first MTU-3
   * bytes (PROTOCOL.md §1), so the full value always comes from a read, never from a notification.
   */
  async readStatus(): Promise<DeviceStatus> {
    const status = decodeStatus(await this.connection.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID));
    this.statusProtoVersion = status.protoVersion;
    this.statusCaps = status.caps;
    return status;
  }

  /**
   * MANIFEST (§2.4, revision 2.2): sends the signed manifest alone, before BEGIN, so the device verifies
   * its signature while CHALLENGE and BEGIN travel instead of after BEGIN (and BEGIN carries no manifest).
   * Returns true when the device stored it: begin() with the same manifest then sends a 93-byte BEGIN.
   * When the command does not fit one Write Request at this MTU and the device stages (caps bit12,
   * revision 2.3), the manifest goes in Data Write Commands (§3, offsets with bit31) and an empty MANIFEST
   * commits it. Returns false, sending nothing, when the device's caps (Status or CHALLENGE, read before)
   * do not have bit11, or the command does not fit and there is no bit12; false too when the device answers
   * BUSY (another connection's manifest holds its one slot), and when a commit of staged bytes is refused
   * for any reason (a staging problem never fails the update). begin() then sends the manifest with BEGIN
   * (flags bit1), which every revision-2.1 device takes, and gets the verdict there. Any other refusal of
   * a whole MANIFEST (DEVICE_MANIFEST_INVALID, DEVICE_MANIFEST_MISMATCH, DEVICE_RELEASE_TOO_OLD, ...) is
   * what BEGIN would have got: thrown.
   */
  async sendManifest(manifest: Buffer): Promise<boolean> {
    return this.cancellable(async () => {
      this.stagedManifest = null;
      const caps = this.caps ?? this.statusCaps;
      if (caps === null || (caps & Caps.MANIFEST_COMMAND) === 0) return false;
      const request = encodeCommand({ op: Op.MANIFEST, manifest });
      const fits = request.length <= this.connection.mtu - ATT_HEADER_SIZE;
      // staging takes at most the largest valid manifest; a longer one goes with BEGIN, for the device to refuse
      if (!fits && ((caps & Caps.MANIFEST_STAGING) === 0 || manifest.length > MANIFEST_MAX_SIZE)) return false;
      try {
        if (fits) {
          await this.command(request, Op.MANIFEST);
        } else {
          await this.stageOnData(manifest);
          await this.command(encodeCommand({ op: Op.MANIFEST }), Op.MANIFEST);
        }
      } catch (e) {
        if (e instanceof OtaError && e.code === deviceErrorCode(ErrorCode.BUSY)) return false;
        if (!fits && e instanceof OtaError && typeof e.details?.deviceCode === 'number') return false;
        throw e;
      }
      this.stagedManifest = manifest;
      return true;
    });
  }

  /** The manifest in staging writes (§3, revision 2.3): Write Commands of whole LL PDUs, in order. */
  private async stageOnData(manifest: Buffer): Promise<void> {
    const size = stagingChunkSize(this.connection.mtu);
    for (let at = 0; at < manifest.length; at += size) {
      await this.write(DATA_CHAR_UUID, encodeStagingChunk(at, manifest.subarray(at, at + size)), true);
    }
  }

  async challenge(): Promise<ChallengeInfo> {
    const res = (await this.command(Buffer.from([Op.CHALLENGE]), Op.CHALLENGE)) as ChallengeResponse;
    this.caps = res.caps;
    this.nonce = res.nonce;
    return { nonce: res.nonce, caps: res.caps, capabilities: decodeCaps(res.caps) };
  }

  /**
   * PROVISION (§7): stores `key` as the device's session key. Only while the device's provisioning
   * window is open (a physical action at boot; caps bit8): otherwise the device answers INVALID_STATE.
   * Untagged: physical presence is the proof, and the key crosses the link in clear.
   */
  async provision(key: Buffer): Promise<void> {
    if (!Buffer.isBuffer(key) || key.length !== SESSION_KEY_SIZE) {
      throw new OtaError('BAD_FLEET_KEY', `The key to provision must be ${SESSION_KEY_SIZE} bytes (64 hex digits).`);
    }
    await this.open();
    try {
      await this.command(encodeCommand({ op: Op.PROVISION, key }), Op.PROVISION);
    } catch (e) {
      if (e instanceof OtaError && e.code === deviceErrorCode(ErrorCode.INVALID_STATE)) {
        throw new OtaError(e.code, 'PROVISION: the device\'s provisioning window is not open (hold the provisioning pin at reset, then provision within the window).', e.details);
      }
      throw e;
    }
  }

  /**
   * BEGIN: checks the MTU and the fleet key before anything is sent, prepares the payload, and returns
   * the device's session parameters (resumeOffset > 0 when it continues a kept session).
   */
  async begin(options: BeginOptions): Promise<SessionInfo> {
    return this.cancellable(async () => {
      this.setPhase('authenticating');
      this.sessionAborted = null;
      this.checkProtocolVersion();
      const requested = this.requestedChunkSize();
      if (this.caps === null || this.keyRequired()) await this.challenge();
      const caps = this.caps ?? 0;
      this.checkKey();
      const payload = options.payload ?? prepareTransferPayload(options.image, options.encoding ?? 'auto', caps);
      const baseSha256 = beginBaseSha256(payload, options.baseSha256);
      if (options.resume && (caps & Caps.RESUME) === 0) options = { ...options, resume: false };
      // A manifest the device stored with MANIFEST is not sent again (§2.4): a plain BEGIN uses it.
      const manifest = options.manifest && !(this.stagedManifest && this.stagedManifest.equals(options.manifest)) ? options.manifest : undefined;
      const request = encodeCommand({
        op: Op.BEGIN,
        imageSize: payload.image.length,
        transferSize: payload.transfer.length,
        encoding: encodingByte(payload.encoding),
        flags: (options.resume ? BeginFlags.RESUME : 0) | (manifest ? BeginFlags.MANIFEST : 0),
        chunkSize: requested,
        sha256: payload.sha256,
        baseSha256,
        tag: ZERO_TAG,
        ...(manifest ? { manifest } : {}),
      });
      this.tagInto(request, BEGIN_TAG_OFFSET, (key, nonce) => beginTag(key, nonce, request));
      const res = (await this.command(request, Op.BEGIN)) as BeginResponse;
      this.checkBeginResponse(res, requested, payload, !!options.resume);
      this.stagedManifest = null; // the session took it over
      this.payload = payload;
      this.sessionInfo = {
        encoding: payload.encoding,
        imageSize: payload.image.length,
        transferSize: payload.transfer.length,
        chunkSize: res.chunkSize,
        window: res.window,
        ackInterval: res.ackInterval,
        resumeOffset: res.resumeOffset,
        acked: res.resumeOffset,
      };
      return { ...this.sessionInfo };
    });
  }

  /** Sends the transfer stream from `fromOffset` (default: the BEGIN resume offset) until all is ACKed. */
  async transfer(fromOffset?: number): Promise<void> {
    return this.cancellable(async () => {
      const s = this.sessionInfo;
      const payload = this.payload;
      if (!s || !payload) throw new OtaError('INVALID_STATE', 'transfer() needs a successful begin() first.');
      const start = fromOffset ?? s.resumeOffset;
      if (!Number.isInteger(start) || start < 0 || start > s.transferSize) {
        throw new OtaError('BAD_PARAMETER', `Transfer offset ${start} is outside 0..${s.transferSize}.`);
      }
      this.setPhase('transferring');
      await this.runWindow(s, payload.transfer, start);
    });
  }

  /** END: the device verifies and activates the image; returns the image size it reports. */
  async end(options: { reboot?: boolean } = {}): Promise<number> {
    // Once END is written the device may already be committing the image, and a cancel can no longer
    // undo that: END runs to its answer so the result says what the device really did.
    const signal = this.opts.signal;
    this.opts.signal = undefined;
    try {
      return await this.endUncancellable(options);
    } finally {
      this.opts.signal = signal;
    }
  }

  private async endUncancellable(options: { reboot?: boolean }): Promise<number> {
    return this.cancellable(async () => {
      const reboot = options.reboot ?? true;
      this.setPhase('finishing');
      const res = (await this.command(
        encodeCommand({ op: Op.END, flags: reboot ? EndFlags.REBOOT : 0 }),
        Op.END,
        this.opts.endTimeoutMs ?? DEFAULTS.endTimeoutMs,
      )) as EndResponse;
      if (this.sessionInfo && res.imageSize !== this.sessionInfo.imageSize) {
        throw new OtaError('PROTOCOL_MALFORMED', `END reported ${res.imageSize} image bytes; ${this.sessionInfo.imageSize} were sent.`);
      }
      this.sessionInfo = null;
      this.setPhase(reboot ? 'rebooting' : 'done');
      return res.imageSize;
    });
  }

  /** Full update on this connection: begin, transfer, end. Returns the session as begun. */
  async update(options: BeginOptions & { reboot?: boolean }): Promise<SessionInfo> {
    await this.open();
    const info = await this.begin(options);
    await this.transfer();
    await this.end({ reboot: options.reboot });
    return info;
  }

  abort(): Promise<void> {
    return this.taggedCommand(Op.ABORT).then(() => {
      this.sessionInfo = null;
    });
  }

  confirm(): Promise<void> {
    return this.taggedCommand(Op.CONFIRM);
  }

  rollback(): Promise<void> {
    return this.taggedCommand(Op.ROLLBACK);
  }

  reboot(): Promise<void> {
    return this.taggedCommand(Op.REBOOT);
  }

  // ---------- transfer ----------

  private async runWindow(s: SessionInfo, data: Buffer, start: number): Promise<void> {
    let acked = start;
    let next = start;
    let lastProgressAt = this.clock.now();
    let goBacksWithoutProgress = 0;
    /** After a retransmit timeout only the chunk at `acked` is resent until the device answers. */
    let probing = false;
    /**
     * Every transfer byte below this reached the device (a NAK's expected offset says so). A device
     * answers DUPLICATE once until its offset advances (§3), so a second probe below it would go
     * unanswered and the next ACK would then send everything from there again.
     */
    let received = start;
    const startedAt = lastProgressAt;
    const goBack = (wanted: number) => {
      const to = Math.max(wanted, received);
      if (to < next) this.retransmittedChunks += Math.ceil((next - to) / s.chunkSize);
      next = to;
      if (++goBacksWithoutProgress > MAX_GO_BACKS_WITHOUT_PROGRESS) {
        throw new OtaError('PROTOCOL_STUCK', `The device keeps refusing data at offset ${to} without acknowledging anything.`, { offset: to });
      }
    };
    const handle = (ev: ControlNotification) => {
      probing = false;
      if (ev.op === Op.DATA_ACK) {
        const n = (ev as { nextOffset: number }).nextOffset;
        if (n > s.transferSize) throw new OtaError('PROTOCOL_MALFORMED', `DATA_ACK ${n} is past the transfer size ${s.transferSize}.`);
        if (n > acked) {
          acked = n;
          s.acked = n;
          lastProgressAt = this.clock.now();
          goBacksWithoutProgress = 0;
          if (next < acked) next = acked;
          this.reportProgress(s, acked, start, startedAt);
        }
      } else if (ev.op === Op.DATA_NAK) {
        const { err, expectedOffset } = ev as { err: number; expectedOffset: number };
        if (expectedOffset > s.transferSize) throw new OtaError('PROTOCOL_MALFORMED', `DATA_NAK expects offset ${expectedOffset}, past the transfer size.`);
        if (err === ErrorCode.GAP || err === ErrorCode.OUT_OF_WINDOW || err === ErrorCode.DUPLICATE) received = Math.max(received, expectedOffset);
        if (err === ErrorCode.GAP || err === ErrorCode.OUT_OF_WINDOW) goBack(Math.max(expectedOffset, acked));
        else if (err === ErrorCode.DUPLICATE) {
          if (expectedOffset > next) next = expectedOffset;
        } else throw this.deviceError(err, 'DATA', { expectedOffset });
      }
      // Stale command responses are ignored here.
    };

    this.reportProgress(s, acked, start, startedAt);
    while (acked < s.transferSize) {
      this.drain(handle);
      // A probe is one chunk, not a burst: it goes at once (and an event seen while waiting would end it).
      if (this.opts.beforeBurst && !probing && next < s.transferSize && next < acked + s.window) {
        await this.opts.beforeBurst();
        this.drain(handle);
      }
      while (next < s.transferSize && next < acked + s.window) {
        const len = Math.min(s.chunkSize, s.transferSize - next, acked + s.window - next);
        if (len < s.chunkSize && next + len < s.transferSize) break; // wait for room for a full chunk
        const chunk = encodeDataChunk({ offset: next, payload: data.subarray(next, next + len) });
        next += len;
        await this.write(DATA_CHAR_UUID, chunk, true);
        if (probing) break;
        this.drain(handle);
      }
      if (acked >= s.transferSize) break;
      const ev = await this.nextEvent(this.opts.retransmitTimeoutMs ?? DEFAULTS.retransmitTimeoutMs);
      if (ev) {
        handle(ev);
        continue;
      }
      if (this.clock.now() - lastProgressAt >= (this.opts.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs)) {
        throw new OtaError('TIMEOUT', `The device acknowledged nothing for ${this.opts.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs} ms (stuck at ${acked} of ${s.transferSize} transfer bytes).`, {
          acked,
          transferSize: s.transferSize,
        });
      }
      // A lost chunk with nothing after it produces no NAK (§3): probe from the last ACK. Nothing to
      // probe when the device said it has every byte (it is still writing them): keep waiting.
      if (received >= s.transferSize) continue;
      goBack(acked);
      probing = true;
    }
  }

  private reportProgress(s: SessionInfo, acked: number, start: number, startedAt: number): void {
    if (!this.opts.onProgress) return;
    const scale = s.imageSize / s.transferSize;
    const bytesDone = Math.min(s.imageSize, Math.round(acked * scale));
    const seconds = (this.clock.now() - startedAt) / 1000;
    const rate = seconds > 0 ? ((acked - start) * scale) / seconds : 0;
    this.opts.onProgress({
      phase: this.phase,
      bytesDone,
      totalBytes: s.imageSize,
      percent: s.imageSize ? (100 * bytesDone) / s.imageSize : 100,
      kBps: rate / 1000,
      etaSeconds: rate > 0 ? (s.imageSize - bytesDone) / rate : null,
      transferBytesAcked: acked,
      transferSize: s.transferSize,
    });
  }

  // ---------- commands ----------

  private async taggedCommand(op: TaggedOp): Promise<void> {
    await this.open();
    this.sessionAborted = null; // a session the device gave up does not block ABORT/CONFIRM/...
    if (this.caps === null || this.keyRequired()) await this.challenge();
    this.checkKey();
    const request = encodeCommand({ op, tag: ZERO_TAG });
    this.tagInto(request, 1, (key, nonce) => commandTag(key, nonce, op));
    await this.command(request, op);
  }

  private checkProtocolVersion(): void {
    const v = this.statusProtoVersion;
    if (v !== null && v !== PROTO_VERSION) {
      throw new OtaError('PROTOCOL_VERSION_UNSUPPORTED', `The device's Status says protocol version ${v}; this client speaks ${PROTO_VERSION}.`, { protoVersion: v });
    }
  }

  private keyRequired(): boolean {
    return this.caps !== null && (this.caps & Caps.SESSION_KEY_REQUIRED) !== 0;
  }

  private checkKey(): void {
    if (this.keyRequired() && !this.opts.fleetKey) {
      throw new OtaError('FLEET_KEY_REQUIRED', 'The device requires a session key (device key or fleet key) for updates and commands; none was configured.');
    }
  }

  /** Writes the tag into the request when the device needs one; the nonce is then spent. */
  private tagInto(request: Buffer, at: number, tag: (key: Buffer, nonce: Buffer) => Buffer): void {
    if (!this.keyRequired()) return;
    const key = this.opts.fleetKey as Buffer;
    if (!this.nonce) throw new OtaError('INTERNAL', 'No CHALLENGE nonce to tag the command with.');
    tag(key, this.nonce).copy(request, at);
    this.nonce = null;
  }

  /** Writes a command and waits for its response; a device error becomes OtaError DEVICE_<NAME>. */
  private async command(request: Buffer, op: CommandOp, timeoutMs?: number): Promise<ControlNotification> {
    await this.open();
    const expected = op | RESPONSE_BIT;
    const name = COMMAND_NAMES[op];
    this.queue.length = 0; // anything still queued belongs to an earlier exchange
    await this.write(CONTROL_CHAR_UUID, request, false);
    const limit = timeoutMs ?? this.opts.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
    const deadline = this.clock.now() + limit;
    for (;;) {
      const ev = await this.nextEvent(deadline - this.clock.now());
      if (!ev) throw new OtaError('TIMEOUT', `The device did not answer ${name} within ${limit} ms.`, { command: name });
      if (ev.op === Op.UNKNOWN_OPCODE_RESPONSE && (ev as { unknownOp: number }).unknownOp === op) {
        throw this.deviceError(ErrorCode.UNKNOWN_OPCODE, name);
      }
      if (ev.op !== expected) continue;
      const err = (ev as { err: number }).err;
      if (err !== ErrorCode.OK) throw this.deviceError(err, name);
      return ev;
    }
  }

  private deviceError(err: number, command: string, details: Record<string, unknown> = {}): OtaError {
    return new OtaError(deviceErrorCode(err), `${command}: ${errorSentence(err)}`, { deviceError: errorName(err), deviceCode: err, command, ...details });
  }

  private async write(characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    this.throwIfStopped();
    this.bytesOnAir += data.length;
    try {
      await this.connection.write(OTA_SERVICE_UUID, characteristic, data, withoutResponse);
    } catch (e) {
      if (!this.connection.connected || this.fatal) throw this.fatal ?? new OtaError('DISCONNECTED', 'The device disconnected during a write.');
      throw e;
    }
  }

  private checkBeginResponse(res: BeginResponse, requested: number, payload: TransferPayload, resume: boolean): void {
    const bad = (why: string) => new OtaError('PROTOCOL_MALFORMED', `BEGIN response: ${why}.`, { ...res });
    if (res.chunkSize < 1 || res.chunkSize > requested) throw bad(`chunk_size ${res.chunkSize} is outside 1..${requested}`);
    if (res.window < res.chunkSize) throw bad(`window ${res.window} is smaller than chunk_size ${res.chunkSize}`);
    if (res.resumeOffset > payload.transfer.length) throw bad(`resume_offset ${res.resumeOffset} is past the transfer size`);
    if (!resume && res.resumeOffset !== 0) throw bad(`resume_offset ${res.resumeOffset} for a fresh session`);
  }

  private requestedChunkSize(): number {
    const fits = this.connection.mtu - ATT_HEADER_SIZE - DATA_HEADER_SIZE;
    if (fits < MIN_CHUNK_SIZE) {
      throw new OtaError('MTU_TOO_SMALL', `The ATT MTU of ${this.connection.mtu} leaves ${fits} bytes per data chunk; at least ${MIN_CHUNK_SIZE} are needed.`, {
        mtu: this.connection.mtu,
      });
    }
    return Math.min(fits, this.opts.maxChunkSize ?? 0xffff, 0xffff);
  }

  private setPhase(phase: FlashPhase): void {
    this.phase = phase;
  }

  // ---------- events ----------

  private onControl(data: Buffer): void {
    try {
      const msg = decodeNotification(data);
      if (msg.op === Op.SESSION_ABORTED) {
        const err = (msg as { err: number }).err;
        this.sessionInfo = null;
        this.sessionAborted = this.deviceError(err, 'SESSION_ABORTED');
        this.wake();
        return;
      }
      this.queue.push(msg);
    } catch (e) {
      this.fail(e as OtaError);
      return;
    }
    this.wake();
  }

  private fail(err: OtaError): void {
    if (!this.fatal) this.fatal = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private throwIfStopped(): void {
    if (this.fatal) throw this.fatal;
    if (this.sessionAborted) throw this.sessionAborted;
    if (this.opts.signal?.aborted) throw abortError(this.opts.signal);
  }

  private drain(handle: (ev: ControlNotification) => void): void {
    this.throwIfStopped();
    while (this.queue.length) handle(this.queue.shift() as ControlNotification);
  }

  /** The next notification, or null after timeoutMs; throws on disconnect, SESSION_ABORTED or abort. */
  private async nextEvent(timeoutMs: number): Promise<ControlNotification | null> {
    this.throwIfStopped();
    if (this.queue.length) return this.queue.shift() as ControlNotification;
    if (timeoutMs <= 0) return null;
    let timer: TimerHandle | undefined;
    let timedOut = false;
    await new Promise<void>((resolve) => {
      this.waiter = resolve;
      timer = this.clock.setTimer(() => {
        timedOut = true;
        this.wake();
      }, timeoutMs);
    });
    timer?.cancel();
    this.throwIfStopped();
    if (this.queue.length) return this.queue.shift() as ControlNotification;
    return timedOut ? null : this.nextEvent(0);
  }

  /** Runs fn; when it is cancelled while a session may be open, tells the device (best effort). */
  private async cancellable<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      this.setPhase('failed');
      const cancelled = !this.fatal && !this.sessionAborted && this.opts.signal?.aborted;
      if (cancelled && this.connection.connected) await this.abortAfterCancel();
      throw e;
    }
  }

  private async abortAfterCancel(): Promise<void> {
    const signal = this.opts.signal;
    // The signal has fired: send ABORT as if it had not, then restore it.
    this.opts.signal = undefined;
    try {
      await this.taggedCommand(Op.ABORT);
      this.sessionInfo = null;
    } catch {
      // best effort: the device drops a kept session after its resume timeout anyway
    } finally {
      this.opts.signal = signal;
    }
  }
}
