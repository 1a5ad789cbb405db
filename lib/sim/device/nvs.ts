/**
 * NVS namespace `ble_ota` (PROTOCOL.md §6): the persisted update record. Lives in flash, so it survives
 * reboots and power loss. `stage` and `targetSlot` let a boot tell what the last step was:
 * - 'in-progress': BEGIN wrote it; a boot here means the transfer was cut (interrupted);
 * - 'installed': END verified the image and is about to switch the boot partition (written BEFORE
 *   esp_ota_set_boot_partition); `flags` INSTALLED once the switch is done. A boot on the old slot with
 *   otadata not naming the target means the switch never happened (interrupted);
 * - 'diagnosing': the first boot of the image started its diagnostics; a boot that finds this stage
 *   again was cut during them (interrupted, and the bootloader has rolled the image back);
 * - 'booted': diagnostics done (confirm pending under host policy, or confirmed);
 * - 'done': nothing pending.
 */
import { ErrorCode, LAST_RESULT_NONE, LastFlags } from '../../protocol/constants';
import type { SlotIndex } from './ota-data';

/** Bytes of the firmware's record blob (firmware/components/ble_ota/core/ble_ota_internal.h BLE_OTA_RECORD_BLOB_LEN). */
export const NVS_RECORD_BLOB_BYTES = 88;
/**
 * Bytes of the firmware's running-app hash cache, NVS blob `app_sha` (ELF SHA-256, partition label,
 * partition SHA-256: firmware/components/ble_ota/port/esp_idf/esp_port_app.c app_hash_cache_t).
 */
export const NVS_APP_HASH_BLOB_BYTES = 80;
const NVS_ENTRY_BYTES = 32;

/** NVS entries one blob write uses: the data item (a header entry + the data entries) and the blob index. */
export function nvsBlobEntries(valueBytes: number): number {
  return 1 + Math.ceil(valueBytes / NVS_ENTRY_BYTES) + 1;
}

/** NVS entries one record write uses (4 blob entries + the index). */
export const NVS_RECORD_ENTRIES = nvsBlobEntries(NVS_RECORD_BLOB_BYTES);

/** The app_sha cache: which running app its hash belongs to. */
export interface AppHashCache {
  label: string;
  elfSha256: string;
}

export type RecordStage = 'in-progress' | 'installed' | 'diagnosing' | 'booted' | 'done';

export interface UpdateRecord {
  /** §9 error code of the last update attempt; 0xFF none recorded. */
  result: number;
  /** §5 last.flags bits (LastFlags). */
  flags: number;
  /** SHA-256 announced in that update's BEGIN (another installer's image: its running SHA-256). */
  sha256: Buffer;
  /** Diagnostics / error text (at most 32 bytes reach Status). */
  message: string;
  stage: RecordStage;
  targetSlot: SlotIndex | null;
  /** END succeeded for this attempt (boot_count counts from there). */
  installed: boolean;
  /** Boots since the install. */
  bootCount: number;
  /** The manifest release this attempt installs (0: no manifest); release_floor is raised to it at confirm. */
  release: number;
}

export function emptyRecord(): UpdateRecord {
  return {
    result: LAST_RESULT_NONE,
    flags: 0,
    sha256: Buffer.alloc(32),
    message: '',
    stage: 'done',
    targetSlot: null,
    installed: false,
    bootCount: 0,
    release: 0,
  };
}

function copyRecord(r: UpdateRecord): UpdateRecord {
  return { ...r, sha256: Buffer.from(r.sha256) };
}

export class Nvs {
  record: UpdateRecord = emptyRecord();
  /** NVS entries the namespace has written (a full page costs an erase: flash-work.ts). */
  usedEntries = 0;
  /** The running-app hash cache (app_sha), null when none was written. */
  appHash: AppHashCache | null = null;
  /** `device_key` (32 bytes): the per-device session key (factory or PROVISION). */
  deviceKey: Buffer | null = null;
  /** `fleet_key` (32 bytes): the legacy shared key, the session key when device_key is absent. */
  fleetKey: Buffer | null = null;
  /** `rel_floor`: lowest manifest release accepted (0: none yet). */
  releaseFloor = 0;
  /** The record as it is in flash (`record` is the firmware's RAM copy; they differ after a failed write). */
  private persisted: UpdateRecord = emptyRecord();
  /** A record write failed since the last one that landed: flash holds `persisted`, not `record`. */
  private diverged = false;
  /** Fault injection: the n-th NVS write from now fails; 0 none. */
  private failIn = 0;

  /**
   * The n-th NVS write from now (record, app_sha, rel_floor, device_key) fails: nvs_set_blob /
   * nvs_commit return the flash error and the previous value stays (nvs_flash.rst:158). The firmware
   * only logs a failed record write (firmware/components/ble_ota/core/ble_ota_core.c ota_persist_record)
   * and keeps its RAM copy; a reboot reads the old one. Counted as the firmware twin counts
   * (firmware/host/host_flash.c host_nvs_set).
   */
  armWriteFailure(n: number): void {
    this.failIn = n;
  }

  /** The next write fails (fault injection); it consumes the count. */
  private writeFails(): boolean {
    return this.failIn > 0 && --this.failIn === 0;
  }

  /** A reset: the firmware reads its record from flash again (what a failed write left there). */
  reloadRecord(): void {
    if (!this.diverged) return;
    this.record = copyRecord(this.persisted);
    this.diverged = false;
  }

  /** The key tags are checked with: device_key, else fleet_key, else none. */
  get sessionKey(): Buffer | null {
    return this.deviceKey ?? this.fleetKey;
  }

  /** PROVISION: the device_key write landed. */
  storeDeviceKey(key: Buffer): void {
    if (this.writeFails()) return;
    this.deviceKey = Buffer.from(key);
    this.usedEntries += nvsBlobEntries(key.length);
  }

  /** Confirm of an image installed with a manifest: rel_floor = max(rel_floor, release) (one u32 entry when it changes). */
  raiseReleaseFloor(release: number): void {
    if (release <= this.releaseFloor || this.writeFails()) return;
    this.releaseFloor = release;
    this.usedEntries += 1;
  }

  /** A record write landed: the new record and the NVS entries it used. */
  commit(next: UpdateRecord = this.record): void {
    this.record = next;
    this.diverged = this.writeFails();
    if (this.diverged) return;
    this.persisted = copyRecord(next);
    this.usedEntries += NVS_RECORD_ENTRIES;
  }

  /** The app_sha write landed. */
  commitAppHash(cache: AppHashCache): void {
    if (this.writeFails()) return;
    this.appHash = { ...cache };
    this.usedEntries += nvsBlobEntries(NVS_APP_HASH_BLOB_BYTES);
  }

  /** The cache names this app (same ELF SHA-256 in the same partition): its hash is not read again. */
  hasAppHash(cache: AppHashCache): boolean {
    return this.appHash !== null && this.appHash.label === cache.label && this.appHash.elfSha256 === cache.elfSha256;
  }

  /** BEGIN: a new attempt starts ("in progress" until it ends one way or another). */
  startAttempt(sha256: Buffer, targetSlot: SlotIndex, release = 0): void {
    this.record = {
      ...emptyRecord(),
      result: ErrorCode.INTERNAL,
      flags: LastFlags.RECORD_VALID,
      sha256: Buffer.from(sha256),
      message: 'in progress',
      stage: 'in-progress',
      targetSlot,
      release,
    };
  }

  /** Session over without an install (error, abort, timeout). */
  endAttempt(result: number, message: string): void {
    this.record.stage = 'done';
    this.setResult(result, message);
  }

  setResult(result: number, message?: string): void {
    this.record.result = result;
    if (message !== undefined) this.record.message = message;
  }

  addFlags(flags: number): void {
    this.record.flags |= flags;
  }

  hasRecord(): boolean {
    return (this.record.flags & LastFlags.RECORD_VALID) !== 0;
  }

  /** `nvs_flash_erase` (factory reset): no record, no hash cache, no keys, no floor, empty pages. */
  erase(): void {
    this.record = emptyRecord();
    this.persisted = emptyRecord();
    this.diverged = false;
    this.appHash = null;
    this.deviceKey = null;
    this.fleetKey = null;
    this.releaseFloor = 0;
    this.usedEntries = 0;
  }

  /** Status boot_count: boots since the last install, 0 when the last attempt installed nothing. */
  get bootCount(): number {
    return this.record.installed ? this.record.bootCount : 0;
  }
}

/**
 * At the confirm of the running image (CONFIRM or auto-confirm): release_floor rises to the release the
 * record installed, when that record installed the running slot. True when the floor changed.
 */
export function raiseFloorAtConfirm(nvs: Nvs, runningSlot: SlotIndex): boolean {
  const r = nvs.record;
  if (!r.installed || r.targetSlot !== runningSlot || r.release <= nvs.releaseFloor) return false;
  nvs.raiseReleaseFloor(r.release);
  return true;
}
