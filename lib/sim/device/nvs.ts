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

/**
 * Status `last.flags` bits 5-7 (the protocol's additions for crash-consistent records): the same
 * numbers as the firmware core.
 */
export const RecordFlags = {
  /** END succeeded and the boot partition was switched. */
  INSTALLED: 1 << 5,
  /** The device restarted between writing a record and completing the step it records. */
  INTERRUPTED: 1 << 6,
  /** The running image is pending verify and no record of ours names it (seed, Wi-Fi OTA, NVS erased). */
  OTHER_INSTALLER: 1 << 7,
} as const;

/** NVS entries one record write uses (flash-work.ts NVS_RECORD_WRITES_BYTES: 4 blob entries + the index). */
export const NVS_RECORD_ENTRIES = 5;

export type RecordStage = 'in-progress' | 'installed' | 'diagnosing' | 'booted' | 'done';

export interface UpdateRecord {
  /** §9 error code of the last update attempt; 0xFF none recorded. */
  result: number;
  /** §5 last.flags bits (LastFlags, RecordFlags). */
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
  };
}

export class Nvs {
  record: UpdateRecord = emptyRecord();
  /** NVS entries the namespace has written (a full page costs an erase: flash-work.ts). */
  usedEntries = 0;

  /** A record write landed: the new record and the NVS entries it used. */
  commit(next: UpdateRecord = this.record): void {
    this.record = next;
    this.usedEntries += NVS_RECORD_ENTRIES;
  }

  /** BEGIN: a new attempt starts ("in progress" until it ends one way or another). */
  startAttempt(sha256: Buffer, targetSlot: SlotIndex): void {
    this.record = {
      ...emptyRecord(),
      result: ErrorCode.INTERNAL,
      flags: LastFlags.RECORD_VALID,
      sha256: Buffer.from(sha256),
      message: 'in progress',
      stage: 'in-progress',
      targetSlot,
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

  /** `nvs_flash_erase` of the namespace (factory reset): no record. */
  erase(): void {
    this.record = emptyRecord();
  }

  /** Status boot_count: boots since the last install, 0 when the last attempt installed nothing. */
  get bootCount(): number {
    return this.record.installed ? this.record.bootCount : 0;
  }
}
