/**
 * Our firmware (protocol v2, docs/PROTOCOL.md) as it runs after one boot: GATT, the Control commands,
 * Data handling, Status and advertising. Flash work goes through UpdateWriter (the transfer) and
 * FlashWork (END, CONFIRM, ROLLBACK, record writes), first-boot policy through first-boot.ts; every
 * flash erase/program stalls the BLE host for its duration. One instance per boot (RAM state).
 */
import type { TimerHandle } from '../../clock';
import { ControlNotification, encodeNotification } from '../../protocol/codec';
import { baseImageBytes } from '../../delta';
import {
  ATT_HEADER_SIZE,
  ATT_INVALID_ATTRIBUTE_VALUE_LENGTH,
  BeginFlags,
  CHIP_IDS,
  CONTROL_CHAR_UUID,
  Caps,
  DATA_CHAR_UUID,
  DATA_HEADER_SIZE,
  DIS_SERVICE_UUID,
  EndFlags,
  Encoding,
  ErrorCode,
  FIRMWARE_REVISION_UUID,
  LastFlags,
  MANUFACTURER_NAME_UUID,
  MAX_CONTROL_VALUE,
  MODEL_NUMBER_UUID,
  OTA_SERVICE_UUID,
  Op,
  OtaStateCode,
  RELEASE_KEY_SLOTS,
  STATUS_CHAR_UUID,
  STAGING_OFFSET_FLAG,
  SessionStateCode,
  TaggedOp,
  errorName,
} from '../../protocol/constants';
import { parseImage } from '../../image/parse';
import { detectSignature } from '../../image/signature';
import { AttError, VirtualAdvertisement, VirtualService } from '../types';
import { BeginRequest, decodeControl } from './control-decode';
import { deviceIdOf } from './device-id';
import { AcceptedManifest, beginMismatch, checkManifestAtBegin, isZero, manifestSignatureValid, releaseTooOld, type DeviceManifestContext } from './manifest';
import { ManifestStage, type StagedManifest, type WriterJob } from './staged-manifest';
import { ManifestStaging } from './manifest-staging';
import { manifestCheckMs } from './manifest-timing';
import { SessionGuard } from './session-guard';
import { deviceChunkSize } from './chunk-size';
import { FirstBoot, rollbackTarget } from './first-boot';
import { FlashWork } from './flash-work';
import { AttCode, advertisedName, v2Gatt } from './gatt-tables';
import { checkEarlyHeader } from './header-check';
import type { Application, BootContext, Machine } from './machine';
import { raiseFloorAtConfirm, type UpdateRecord } from './nvs';
import { otherSlot } from './ota-data';
import { ReceiveWindow } from './receive-window';
import { DeviceSettings, REBOOT_DELAY_MS } from './settings';
import { UpdateWriter, WRITER_TAKE_BYTES } from './update-writer';
import { V2Session, sameImage } from './v2-session';
import { StatusSnapshot, buildManufacturerData, buildStatus } from './v2-status';

export const MANUFACTURER_NAME = 'Espressif';
const SESSION_OFFSET_FIELD = [16, 20] as const;
/**
 * The inflater a deflate session allocates (the firmware port's inflater_t, "about 43 KiB",
 * firmware/components/ble_ota/port/esp_idf/esp_port_inflate.c: a 32 KiB window plus the decoder tables).
 */
export const INFLATER_BYTES = 43_800;

/** The patch applier's state (firmware/components/ble_ota/core/ble_ota_patch.h ble_ota_patch_t: 48 bytes with padding); it reads the base straight into the output buffer. */
export const PATCH_APPLIER_BYTES = 48;

/** Heap a session reserves at BEGIN: the receive ring (the window), the writer's buffer, the inflater (deflate and delta), the patch applier (delta). */
export function sessionBytes(window: number, encoding: number): number {
  const inflater = encoding === Encoding.DEFLATE || encoding === Encoding.DELTA ? INFLATER_BYTES : 0;
  return window + WRITER_TAKE_BYTES + inflater + (encoding === Encoding.DELTA ? PATCH_APPLIER_BYTES : 0);
}

export class V2Firmware implements Application {
  private readonly auth: SessionGuard;
  /** When this boot's application started (the provisioning window counts from here). */
  private readonly bootAt: number;
  private readonly mtus = new Map<number, number>();
  private session: V2Session | null = null;
  private lastStatus: Buffer | null = null;
  private lastAdv: Buffer | null = null;
  private restartScheduled = false;
  private readonly work: FlashWork;
  /** MANIFEST sent before BEGIN (§2.4). */
  private readonly stagedManifests: ManifestStage;
  /** Manifest bytes staged on Data before their MANIFEST commit (revision 2.3, §3). */
  private readonly manifestStaging = new ManifestStaging();
  /** The boot's record work (first-boot diagnostics, confirm) is over. */
  bootSettled = false;
  /** The BLE stack runs (on a first boot only after the diagnostics passed, or under host policy). */
  private bleUp = false;

  constructor(
    private readonly machine: Machine,
    private readonly boot: BootContext,
    private readonly settings: DeviceSettings,
  ) {
    this.auth = new SessionGuard({
      sessionKey: () => machine.flash.nvs.sessionKey,
      hasReleaseKeys: settings.releaseKeys.length > 0,
      allowUnauthenticated: settings.allowUnauthenticated,
    });
    this.work = new FlashWork(machine, settings.timing);
    this.bootAt = machine.clock.now();
    this.stagedManifests = new ManifestStage(() => machine.clock.now(), settings.chip);
  }

  /** The provisioning window this boot opened (physical action at reset) is still open. */
  private get provisioningOpen(): boolean {
    return this.settings.provisioningWindowMs > 0 && this.machine.clock.now() - this.bootAt < this.settings.provisioningWindowMs;
  }

  start(): void {
    const settled = (): void => {
      this.bootSettled = true;
    };
    const startBle = (): void => {
      if (this.bleUp) return;
      this.bleUp = true;
      this.machine.advertisingChanged();
    };
    new FirstBoot(this.machine, this.boot, this.settings, this.work, () => this.publish(), settled, startBle).start();
    // caps bit 8 clears when the window closes: Status and advertising say so.
    if (this.settings.provisioningWindowMs > 0) this.setTimer(() => this.publish(), this.settings.provisioningWindowMs);
    this.lastStatus = this.statusValue();
    this.lastAdv = buildManufacturerData(this.snapshot());
  }

  gatt(): VirtualService[] {
    return v2Gatt();
  }

  advertisement(): VirtualAdvertisement | null {
    if (!this.bleUp || this.settings.model.bleStartFails) return null;
    return {
      localName: advertisedName(this.settings.name),
      serviceUuids: [OTA_SERVICE_UUID],
      manufacturerData: buildManufacturerData(this.snapshot()),
    };
  }

  get caps(): number {
    return (
      Caps.DEFLATE |
      Caps.RESUME |
      Caps.MANIFEST_COMMAND |
      Caps.MANIFEST_STAGING |
      (this.auth.keyRequired ? Caps.FLEET_KEY_REQUIRED : 0) |
      (this.settings.hostPolicy ? Caps.HOST_CONFIRM : 0) |
      (this.settings.allowDowngrade ? 0 : Caps.ANTI_DOWNGRADE) |
      Caps.DELTA |
      (this.settings.signedImagesRequired ? Caps.SIGNED_IMAGES : 0) |
      (this.settings.releaseKeys.length > 0 ? Caps.MANIFEST_REQUIRED : 0) |
      (this.provisioningOpen ? Caps.PROVISIONING_WINDOW : 0) |
      (this.auth.unauthenticatedAllowed ? Caps.UNAUTHENTICATED_ALLOWED : 0) |
      (this.auth.notProvisioned ? Caps.NOT_PROVISIONED : 0)
    );
  }

  // ---- links ----

  onConnect(conn: number, mtu: number): void {
    this.mtus.set(conn, mtu);
  }

  onMtu(conn: number, mtu: number): void {
    this.mtus.set(conn, mtu);
  }

  onDisconnect(conn: number): void {
    this.mtus.delete(conn);
    this.auth.forget(conn);
    this.stagedManifests.forget(conn); // a manifest staged with MANIFEST belongs to its link
    this.manifestStaging.drop(conn);
    const s = this.session;
    if (!s || s.owner !== conn) return;
    s.owner = null;
    if (s.phase !== 'receiving') return; // a finishing session completes on its own
    s.phase = 'suspended';
    if (this.settings.resumeTimeoutMs <= 0) {
      this.endSession(s, ErrorCode.SESSION_TIMEOUT, 'link lost, resume disabled');
    } else {
      s.resumeTimer = this.setTimer(() => this.endSession(s, ErrorCode.SESSION_TIMEOUT, 'resume timeout'), this.settings.resumeTimeoutMs);
    }
    this.publish();
  }

  // ---- GATT access ----

  onRead(_conn: number, service: string, characteristic: string): Buffer {
    if (service === DIS_SERVICE_UUID) {
      if (characteristic === MANUFACTURER_NAME_UUID) return Buffer.from(MANUFACTURER_NAME, 'utf8');
      if (characteristic === MODEL_NUMBER_UUID) return Buffer.from(this.settings.chip, 'utf8');
      if (characteristic === FIRMWARE_REVISION_UUID) return Buffer.from(this.boot.app.version, 'utf8');
    } else if (service === OTA_SERVICE_UUID) {
      if (characteristic === STATUS_CHAR_UUID) return this.statusValue();
      if (characteristic === CONTROL_CHAR_UUID || characteristic === DATA_CHAR_UUID) {
        throw new AttError(AttCode.READ_NOT_PERMITTED, 'characteristic is not readable');
      }
    }
    throw new AttError(AttCode.ATTRIBUTE_NOT_FOUND, `no characteristic ${characteristic} in service ${service}`);
  }

  onWrite(conn: number, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void {
    if (service === OTA_SERVICE_UUID && characteristic === CONTROL_CHAR_UUID && !withoutResponse) {
      if (data.length === 0 || data.length > MAX_CONTROL_VALUE) {
        throw new AttError(ATT_INVALID_ATTRIBUTE_VALUE_LENGTH, `control value of ${data.length} bytes (1..${MAX_CONTROL_VALUE} accepted)`);
      }
      this.onCommand(conn, data);
      return;
    }
    if (service === OTA_SERVICE_UUID && characteristic === DATA_CHAR_UUID && withoutResponse) {
      this.onData(conn, data);
      return;
    }
    if (withoutResponse) return; // nothing to answer a wrong write without response with
    throw new AttError(AttCode.WRITE_NOT_PERMITTED, `characteristic ${characteristic} does not take this write`);
  }

  // ---- Control ----

  private onCommand(conn: number, data: Buffer): void {
    // MANIFEST and BEGIN end this connection's staging on Data (an empty MANIFEST commits it first).
    if (data[0] === Op.MANIFEST && data.length === 1) return this.onManifestCommit(conn);
    if (data[0] === Op.MANIFEST || data[0] === Op.BEGIN) this.manifestStaging.drop(conn);
    const cmd = decodeControl(data);
    switch (cmd.op) {
      case 'malformed':
        if (data[0] === Op.MANIFEST) this.stagedManifests.forget(conn); // replaced by a refused one
        this.machine.notify(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, cmd.response, conn);
        return;
      case Op.CHALLENGE:
        this.reply(conn, { op: 0x81, err: 0, nonce: this.auth.challenge(conn), caps: this.caps });
        return;
      case Op.BEGIN:
        this.onBegin(conn, cmd);
        break;
      case Op.END:
        this.onEnd(conn, cmd.flags);
        break;
      case Op.PROVISION:
        this.onProvision(conn, cmd.key);
        break;
      case Op.MANIFEST:
        if (!cmd.manifest) return this.onManifestCommit(conn); // decodeControl gives 0x09 alone only
        // Answered as the write is handled; the verify runs in the writer meanwhile (ManifestStage).
        this.reply(conn, { op: Op.MANIFEST | 0x80, err: this.stagedManifests.stage(conn, cmd.manifest, this.manifestDevice(), this.session) });
        return;
      default:
        this.onTagged(conn, cmd.op, cmd.tag);
        break;
    }
    this.publish();
  }

  /**
   * MANIFEST `0x09` alone (revision 2.3): the bytes this connection staged on Data, checked exactly as
   * `0x09 ‖ manifest` (its length rule included); nothing staged, or staging broken: BAD_LENGTH. The
   * staged bytes are consumed whatever the answer, and, as any MANIFEST, it replaces the stored one.
   */
  private onManifestCommit(conn: number): void {
    const staged = this.manifestStaging.take(conn);
    if (!staged) {
      this.stagedManifests.forget(conn);
      this.reply(conn, { op: Op.MANIFEST | 0x80, err: ErrorCode.BAD_LENGTH });
      return;
    }
    const cmd = decodeControl(Buffer.concat([Buffer.from([Op.MANIFEST]), staged]));
    if (cmd.op === Op.MANIFEST && cmd.manifest) {
      this.reply(conn, { op: Op.MANIFEST | 0x80, err: this.stagedManifests.stage(conn, cmd.manifest, this.manifestDevice(), this.session) });
    } else {
      this.stagedManifests.forget(conn); // replaced by a refused one
      this.reply(conn, { op: Op.MANIFEST | 0x80, err: ErrorCode.BAD_LENGTH });
    }
  }

  /**
   * PROVISION (§E): inside the window opened by the physical action at reset, stores the session key
   * (NVS device_key, effective at once); no tag, physical presence is the proof.
   */
  private onProvision(conn: number, key: Buffer): void {
    const respond = (err: number): void => this.machine.notify(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeNotification({ op: Op.PROVISION | 0x80, err }), conn);
    if (!this.provisioningOpen) return respond(ErrorCode.INVALID_STATE);
    const nvs = this.machine.flash.nvs;
    this.work.nvsTime(nvs.usedEntries);
    nvs.storeDeviceKey(key);
    respond(ErrorCode.OK);
  }

  /**
   * BEGIN in the §4.1 order: parameters, encoding, authentication, the manifest's BEGIN checks (§12.2: all
   * but the signature), the delta base, then beginChecked. Answered at once: the manifest's signature is
   * verified by the writer as the session's first job (startSession), before anything is erased.
   */
  private onBegin(conn: number, b: BeginRequest): void {
    const fail = (err: number): void => this.reply(conn, { op: 0x82, err });
    const delta = b.encoding === Encoding.DELTA;
    if (b.imageSize === 0 || b.chunkSize === 0 || (b.flags & ~(BeginFlags.RESUME | BeginFlags.MANIFEST)) !== 0) return fail(ErrorCode.BAD_PARAMETER);
    if (!delta && !isZero(b.baseSha256)) return fail(ErrorCode.BAD_PARAMETER);
    if (b.encoding !== Encoding.RAW && b.encoding !== Encoding.DEFLATE && !delta) return fail(ErrorCode.BAD_ENCODING);
    if (b.transferSize === 0 || (b.encoding === Encoding.RAW && b.transferSize !== b.imageSize)) return fail(ErrorCode.BAD_ENCODING);
    const auth = this.auth.checkBegin(conn, b.raw, b.tag);
    if (auth !== ErrorCode.OK) return fail(auth);
    let manifest: AcceptedManifest | null = null;
    const staged = b.manifest ? null : this.stagedManifests.of(conn);
    if (b.manifest) {
      const verdict = checkManifestAtBegin(b.manifest, { imageSha256: b.sha256, imageSize: b.imageSize, baseSha256: b.baseSha256, ...this.manifestDevice() });
      if (!('accepted' in verdict)) return fail(verdict.err);
      manifest = verdict.accepted;
    } else if (staged) {
      // MANIFEST checked the rest; BEGIN's fields must be what it signed.
      if (beginMismatch(staged.accepted.manifest, { imageSha256: b.sha256, imageSize: b.imageSize, baseSha256: b.baseSha256 })) return fail(ErrorCode.MANIFEST_MISMATCH);
      const old = releaseTooOld(staged.accepted.manifest, this.machine.flash.nvs.releaseFloor);
      if (old) return fail(old.err);
      manifest = staged.accepted;
    } else if (this.settings.releaseKeys.length > 0) {
      return fail(ErrorCode.MANIFEST_REQUIRED);
    }
    // The delta base is the image this boot runs: the digest Status running_sha256 reports.
    if (delta && !b.baseSha256.equals(this.boot.app.sha256)) return fail(ErrorCode.BASE_MISMATCH);
    this.beginChecked(conn, b, manifest, staged);
  }

  /** What a manifest is checked against on this device. */
  private manifestDevice(): DeviceManifestContext {
    return {
      chipId: CHIP_IDS[this.settings.chip],
      deviceId: deviceIdOf(this.settings.address),
      releaseFloor: this.machine.flash.nvs.releaseFloor,
      releaseKeys: this.settings.releaseKeys,
    };
  }

  /** The rest of BEGIN once the request is authenticated and its manifest (if any) checked. */
  private beginChecked(conn: number, b: BeginRequest, manifest: AcceptedManifest | null, staged: StagedManifest | null): void {
    const fail = (err: number): void => this.reply(conn, { op: 0x82, err });
    if (b.imageSize > this.settings.partitionSize) return fail(ErrorCode.IMAGE_TOO_LARGE);
    if (this.restartScheduled) return fail(ErrorCode.INVALID_STATE);
    // esp_ota_begin refuses while the running app is unconfirmed: confirm or roll back first (§4.4).
    // The state is read from otadata now, so an app that confirmed itself can begin at once.
    if (this.machine.flash.otadata.state(this.boot.slot) === OtaStateCode.PENDING_VERIFY) return fail(ErrorCode.INVALID_STATE);
    const chunkSize = deviceChunkSize(this.mtus.get(conn) ?? 23, this.settings.model.dataLength, b.chunkSize, this.settings.maxChunk);
    const kept = this.session;
    if (kept) {
      if (kept.phase === 'finishing') return fail(kept.owner === conn ? ErrorCode.INVALID_STATE : ErrorCode.BUSY);
      if (kept.phase === 'receiving' && kept.owner !== conn) return fail(ErrorCode.BUSY);
      if ((b.flags & BeginFlags.RESUME) !== 0 && sameImage(kept, b)) {
        this.stagedManifests.forget(conn); // the kept session keeps the manifest it verified
        this.resume(conn, kept, chunkSize);
        return;
      }
      this.endSession(kept, ErrorCode.ABORTED, 'replaced by a new BEGIN', false);
    }
    // The session's buffers are reserved before anything is erased or recorded.
    if (sessionBytes(this.settings.window, b.encoding) > this.settings.model.freeHeapBytes) return fail(ErrorCode.NO_MEMORY);
    let base: Buffer | undefined;
    if (b.encoding === Encoding.DELTA) {
      base = this.runningImageBase();
      if (!base) return fail(ErrorCode.BASE_MISMATCH);
    }
    // BEGIN takes the staged manifest over: its verify's remainder and verdict become the writer's first job.
    this.stagedManifests.forget(conn);
    const firstJob = staged ? this.stagedManifests.writerJob(staged) : manifest ? this.signatureJob(manifest) : undefined;
    this.startSession(conn, b, chunkSize, manifest, base, firstJob);
  }

  private resume(conn: number, s: V2Session, chunkSize: number): void {
    s.resumeTimer?.cancel();
    s.resumeTimer = null;
    s.owner = conn;
    s.phase = 'receiving';
    const offset = s.writer.discardQueued();
    s.window.rewind(offset);
    s.window.chunkSize = chunkSize;
    this.reply(conn, { op: 0x82, err: 0, chunkSize, window: this.settings.window, ackInterval: this.settings.ackInterval, resumeOffset: offset });
  }

  /**
   * The bytes a patch may read: the running slot's image as esp_image_verify measures it (header through
   * the checksum, plus the appended SHA-256), read through esp_partition_read. Null when the running slot
   * holds no valid image (then nothing can be its base).
   */
  private runningImageBase(): Buffer | undefined {
    try {
      return baseImageBytes(this.machine.flash.imageBytes(this.boot.slot));
    } catch {
      return undefined;
    }
  }

  private startSession(conn: number, b: BeginRequest, chunkSize: number, accepted: AcceptedManifest | null, base: Buffer | undefined, firstJob: WriterJob | undefined): void {
    const manifest = accepted?.manifest ?? null;
    const slot = otherSlot(this.boot.slot);
    const flash = this.machine.flash;
    // The record keeps the manifest's release: release_floor rises to it when the image is confirmed.
    this.recordNow(() => flash.nvs.startAttempt(b.sha256, slot, manifest?.release ?? 0));
    const session: V2Session = {
      owner: conn,
      phase: 'receiving',
      imageSize: b.imageSize,
      transferSize: b.transferSize,
      encoding: b.encoding,
      sha256: Buffer.from(b.sha256),
      baseSha256: Buffer.from(b.baseSha256),
      slot,
      window: new ReceiveWindow(b.transferSize, chunkSize, this.settings.window),
      resumeTimer: null,
      writer: new UpdateWriter({
        timers: this.machine.appTimers,
        timing: this.settings.timing,
        flash,
        slot,
        imageSize: b.imageSize,
        transferSize: b.transferSize,
        deflate: b.encoding === Encoding.DEFLATE,
        delta: base ? { base, readBytesPerMs: this.settings.timing.verifyBytesPerMs } : undefined,
        firstJob,
        ackInterval: this.settings.ackInterval,
        checkHeader: (head) =>
          checkEarlyHeader(head, {
            chipId: CHIP_IDS[this.settings.chip],
            chipRevision: this.settings.model.chipRevision,
            secureVersion: this.boot.app.secureVersion,
            allowDowngrade: this.settings.allowDowngrade,
            manifest: manifest ?? undefined,
          }),
        stall: (ms) => this.machine.stallHost(ms),
        onAck: (nextOffset) => {
          if (session.owner !== null) this.reply(session.owner, { op: Op.DATA_ACK, nextOffset });
        },
        onFailure: (err, message) => {
          if (session.owner !== null) this.reply(session.owner, { op: Op.SESSION_ABORTED, err });
          this.endSession(session, err, message);
        },
      }),
    };
    this.session = session;
    this.reply(conn, { op: 0x82, err: 0, chunkSize, window: this.settings.window, ackInterval: this.settings.ackInterval, resumeOffset: 0 });
  }

  /**
   * The manifest's ECDSA verify (§12.2) as the writer's first job: it runs in the writer task, not in the BLE
   * host, for the SHA-256 + ECDSA time of manifest-timing.ts; nothing is erased or written before it
   * passed, and a bad signature ends the session with SESSION_ABORTED MANIFEST_INVALID.
   */
  private signatureJob(accepted: AcceptedManifest): WriterJob {
    return {
      ms: manifestCheckMs(this.settings.chip, accepted.manifest.body.length),
      run: () => (manifestSignatureValid(accepted) ? null : { err: ErrorCode.MANIFEST_INVALID, message: 'manifest signature does not verify' }),
    };
  }

  private onEnd(conn: number, flags: number): void {
    const s = this.session;
    if (!s || s.owner !== conn) return this.reply(conn, { op: 0x83, err: ErrorCode.NO_SESSION });
    if ((flags & ~EndFlags.REBOOT) !== 0) return this.reply(conn, { op: 0x83, err: ErrorCode.BAD_PARAMETER });
    if (s.phase === 'finishing' || !s.window.complete) return this.reply(conn, { op: 0x83, err: ErrorCode.INVALID_STATE });
    s.phase = 'finishing';
    s.writer.whenIdle(() => this.finish(s, (flags & EndFlags.REBOOT) !== 0));
  }

  /**
   * Once the writer has flushed everything (§4.1 step 5): size, digest, esp_ota_end, the INSTALLED record
   * (before the switch, so a cut after it is told from one before it), esp_ota_set_boot_partition
   * (validates the image, esp_ota_ops.c:443, then writes otadata), the record's INSTALLED flag, the
   * response. The firmware's port closes the handle with esp_ota_abort instead of esp_ota_end when
   * esp_ota_end would have nothing to flush (image size a multiple of 16), so the image is read and
   * validated once, by set_boot (firmware/components/ble_ota/port/esp_idf/esp_port_flash.c ota_end);
   * otherwise esp_ota_end validates it first.
   */
  private finish(s: V2Session, reboot: boolean): void {
    if (this.session !== s) return;
    const flash = this.machine.flash;
    const fail = (err: number, message: string): void => {
      if (s.owner !== null) this.reply(s.owner, { op: 0x83, err });
      this.endSession(s, err, message);
    };
    if (s.writer.decoded !== s.imageSize) return fail(ErrorCode.SIZE_MISMATCH, `decoded ${s.writer.decoded} of ${s.imageSize} bytes`);
    if (s.writer.patchEndsEarly) return fail(ErrorCode.SIZE_MISMATCH, 'patch ends before its last record');
    if (!s.writer.streamComplete) return fail(ErrorCode.DECODE_FAILED, 'deflate stream incomplete');
    if (!s.writer.digest().equals(s.sha256)) return fail(ErrorCode.HASH_MISMATCH, 'SHA-256 differs from BEGIN');
    s.writer.stop();
    const validate = (then: () => void): void =>
      this.work.verify(s.imageSize, () => {
        const invalid = flash.verifyImage(s.slot);
        if (invalid) return fail(ErrorCode.VALIDATION_FAILED, invalid.code);
        if (this.settings.signedImagesRequired && !hasSignatureBlock(flash.imageBytes(s.slot))) return fail(ErrorCode.VALIDATION_FAILED, 'no signature block');
        then();
      });
    const endValidates = s.imageSize % 16 !== 0;
    const setBoot = (): void => {
      const installing: UpdateRecord = { ...flash.nvs.record, stage: 'installed', targetSlot: s.slot, result: ErrorCode.OK, message: 'installing' };
      this.work.nvs(flash.nvs.usedEntries, () => flash.nvs.commit(installing), () =>
        validate(() =>
          this.work.otadata(flash.otadata, flash.otadata.planSetBoot(s.slot), (switched) => {
            // esp_ota_set_boot_partition failed (its otadata write): the core answers SET_BOOT_FAILED
            // (firmware/components/ble_ota/core/ble_ota_writer.c finish_image), the old image stays the boot one.
            if (!switched) return fail(ErrorCode.SET_BOOT_FAILED, 'set boot partition failed');
            flash.noteInstall();
            const installed: UpdateRecord = {
              ...flash.nvs.record,
              flags: flash.nvs.record.flags | LastFlags.INSTALLED,
              installed: true,
              bootCount: 0,
              message: 'installed, first boot pending',
            };
            this.work.nvs(flash.nvs.usedEntries, () => flash.nvs.commit(installed), () => this.installed(s, reboot));
          }),
        ),
      );
    };
    if (endValidates) validate(setBoot);
    else setBoot();
  }

  private installed(s: V2Session, reboot: boolean): void {
    if (this.session !== s) return;
    this.session = null;
    if (s.owner !== null) this.reply(s.owner, { op: 0x83, err: 0, imageSize: s.imageSize });
    this.publish();
    if (reboot) this.scheduleRestart('update installed');
  }

  private onTagged(conn: number, op: TaggedOp, tag: Buffer): void {
    const respond = (err: number): void => this.reply(conn, { op: op | 0x80, err });
    const auth = this.auth.checkCommand(conn, op, tag);
    if (auth !== ErrorCode.OK) return respond(auth);
    const flash = this.machine.flash;
    const running = this.boot.slot;
    switch (op) {
      case Op.ABORT: {
        const s = this.session;
        if (s && s.phase === 'finishing') return respond(ErrorCode.INVALID_STATE);
        if (s && s.phase === 'receiving' && s.owner !== conn) return respond(ErrorCode.BUSY);
        if (s) this.endSession(s, ErrorCode.ABORTED, 'aborted by the client', false);
        return respond(ErrorCode.OK);
      }
      case Op.CONFIRM: {
        // esp_ota_mark_app_valid_cancel_rollback: otadata rewritten, then the record; answered when done.
        if (flash.otadata.state(running) !== OtaStateCode.PENDING_VERIFY) return respond(ErrorCode.NOT_PENDING);
        const plan = flash.otadata.planMarkActive(OtaStateCode.VALID);
        if (plan === 'none') return respond(ErrorCode.INTERNAL);
        const confirmed = (marked = true): void => {
          // The otadata write failed (fault injection): the core answers INTERNAL, nothing confirmed
          // (firmware/components/ble_ota/core/ble_ota_writer.c do_confirm).
          if (!marked) {
            respond(ErrorCode.INTERNAL);
            this.publish();
            return;
          }
          this.recordNow(() => {
            flash.nvs.addFlags(LastFlags.CONFIRMED);
            raiseFloorAtConfirm(flash.nvs, running);
          });
          respond(ErrorCode.OK);
          this.publish();
        };
        if (plan === null) confirmed();
        else this.work.otadata(flash.otadata, plan, (ok) => confirmed(ok));
        return;
      }
      case Op.ROLLBACK: {
        // esp_ota_check_rollback_is_possible (verifies the other image), then the record and the INVALID mark.
        if (flash.otadata.state(running) !== OtaStateCode.PENDING_VERIFY) return respond(ErrorCode.NOT_PENDING);
        const target = rollbackTarget(this.machine);
        this.work.verify(target === null ? 0 : flash.imageExtent(target), () => {
          const plan = target === null ? 'none' : flash.otadata.planMarkActive(OtaStateCode.INVALID);
          if (plan === 'none' || plan === null) {
            respond(ErrorCode.NO_ROLLBACK_IMAGE);
            return;
          }
          if (flash.nvs.hasRecord() && flash.nvs.record.result === ErrorCode.OK) {
            this.recordNow(() => flash.nvs.setResult(ErrorCode.ROLLED_BACK, 'rollback requested by the host'));
          }
          this.work.otadata(flash.otadata, plan, () => {
            respond(ErrorCode.OK);
            this.scheduleRestart('rollback command');
          });
        });
        return;
      }
      case Op.REBOOT:
        respond(ErrorCode.OK);
        this.scheduleRestart('reboot command');
        return;
    }
  }

  // ---- Data ----

  private onData(conn: number, data: Buffer): void {
    const s = this.session;
    const own = s !== null && s.owner === conn && s.phase !== 'suspended' ? s : null;
    if (data.length <= DATA_HEADER_SIZE) {
      this.reply(conn, { op: Op.DATA_NAK, err: ErrorCode.EMPTY_WRITE, expectedOffset: own ? own.window.expected : 0 });
      return;
    }
    const rawOffset = data.readUInt32LE(0);
    if (rawOffset >= STAGING_OFFSET_FLAG) {
      // manifest staging (revision 2.3): before the §3 session rules, no transfer offset has bit31
      const nak = this.manifestStaging.write(conn, rawOffset - STAGING_OFFSET_FLAG, data.subarray(DATA_HEADER_SIZE));
      if (nak !== null) this.reply(conn, { op: Op.DATA_NAK, err: ErrorCode.BAD_LENGTH, expectedOffset: nak });
      return;
    }
    if (!own) {
      this.reply(conn, { op: Op.DATA_NAK, err: ErrorCode.NO_SESSION, expectedOffset: 0 });
      return;
    }
    const offset = data.readUInt32LE(0);
    const payloadLength = data.length - DATA_HEADER_SIZE;
    const verdict = own.window.judge(offset, payloadLength, own.writer.taken);
    if (verdict.kind === 'nak') {
      this.reply(conn, { op: Op.DATA_NAK, err: verdict.err, expectedOffset: verdict.expected });
    } else if (verdict.kind === 'accept') {
      own.writer.enqueue(data.subarray(DATA_HEADER_SIZE)); // copied into the writer's ring
    }
  }

  // ---- session end, status ----

  /** Session over without an install: esp_ota_abort, record the outcome, back to IDLE. */
  private endSession(s: V2Session, result: number, message: string, publish = true): void {
    if (this.session !== s) return;
    s.writer.stop();
    s.resumeTimer?.cancel();
    this.session = null;
    this.recordNow(() => this.machine.flash.nvs.endAttempt(result, message || errorName(result)));
    if (publish) this.publish();
  }

  /** A record write that lands at once (nothing depends on its order): the host stalls for its flash time. */
  private recordNow(mutate: () => void): void {
    const nvs = this.machine.flash.nvs;
    this.work.nvsTime(nvs.usedEntries);
    mutate();
    nvs.commit();
  }

  private reply(conn: number, msg: ControlNotification): void {
    this.machine.notify(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, encodeNotification(msg), conn);
  }

  /** The device answers, then restarts after REBOOT_DELAY_MS; no new session starts meanwhile. */
  private scheduleRestart(reason: string): void {
    this.restartScheduled = true;
    this.setTimer(() => this.machine.restart(reason), REBOOT_DELAY_MS);
  }

  private setTimer(fn: () => void, ms: number): TimerHandle {
    return this.machine.appTimers.set(fn, ms);
  }

  private snapshot(): StatusSnapshot {
    const flash = this.machine.flash;
    const s = this.session;
    const phase = s?.phase;
    return {
      caps: this.caps,
      otaState: flash.otadata.state(this.boot.slot),
      hostPolicy: this.settings.hostPolicy,
      sessionState:
        phase === 'receiving' ? SessionStateCode.RECEIVING : phase === 'suspended' ? SessionStateCode.SUSPENDED : phase === 'finishing' ? SessionStateCode.FINISHING : SessionStateCode.IDLE,
      sessionOffset: s ? s.writer.taken : 0,
      resetReason: this.boot.resetReason,
      bootCount: flash.nvs.bootCount,
      app: this.boot.app,
      record: flash.nvs.record,
      fleetKeyRequired: this.auth.keyRequired,
      updatePartitionSize: this.settings.partitionSize,
      releaseFloor: flash.nvs.releaseFloor,
      deviceId: deviceIdOf(this.settings.address),
      releaseKeyIds: this.settings.releaseKeys.slice(0, RELEASE_KEY_SLOTS).reduce((mask, _k, i) => mask | (1 << i), 0),
    };
  }

  private statusValue(): Buffer {
    return buildStatus(this.snapshot());
  }

  /** Notifies Status (to each link) when a field other than the progress offset changed; refreshes the advertisement. */
  private publish(): void {
    if (this.machine.state !== 'running') return;
    const status = this.statusValue();
    if (!this.lastStatus || !sameIgnoringOffset(status, this.lastStatus)) {
      this.lastStatus = status;
      // Like the BLE stack: a notification carries the first MTU-3 bytes; clients read the rest (§1, §5).
      for (const [conn, mtu] of this.mtus) {
        this.machine.notify(OTA_SERVICE_UUID, STATUS_CHAR_UUID, status.subarray(0, Math.min(mtu - ATT_HEADER_SIZE, status.length)), conn);
      }
    }
    const adv = buildManufacturerData(this.snapshot());
    if (!this.lastAdv || !adv.equals(this.lastAdv)) {
      this.lastAdv = adv;
      this.machine.advertisingChanged();
    }
  }
}

function sameIgnoringOffset(a: Buffer, b: Buffer): boolean {
  const [from, to] = SESSION_OFFSET_FIELD;
  return a.subarray(0, from).equals(b.subarray(0, from)) && a.subarray(to).equals(b.subarray(to));
}

/**
 * Secure boot V2 / signed apps (V2 scheme) as esp_image_verify finds the signature: the sector at the image
 * length (through the appended SHA-256) rounded up to 4 KiB, ESP-IDF v5.3.2
 * components/bootloader_support/src/esp_image_format.c:858-895 (process_appended_hash_and_sig) and
 * :939-981 (verify_secure_boot_signature), magic 0xE7 (esp_rom/include/esp32c3/rom/secure_boot.h:66).
 * The model checks the block's magic, version, CRC and image digest; it holds no eFuse key digest, so it
 * cannot check the RSA/ECDSA signature itself.
 */
function hasSignatureBlock(image: Buffer): boolean {
  const length = parseImage(image).imageLength;
  if (length === null) return false;
  const sig = detectSignature(image, length);
  return sig !== null && sig.kind.startsWith('secure-boot-v2') && sig.crcOk === true && sig.digestOk === true;
}
