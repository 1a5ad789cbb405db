/**
 * NVS namespace `ble_ota` (PROTOCOL.md §6): the persisted update record. Lives in flash, so it survives
 * reboots and power loss. `stage` and `targetSlot` let the first boot after an install tell "running
 * the new image" (diagnostics due) from "the bootloader went back to the previous one" (rolled back).
 */
import { ErrorCode, LAST_RESULT_NONE, LastFlags } from '../../protocol/constants';
import type { SlotIndex } from './ota-data';

export type RecordStage = 'in-progress' | 'installed' | 'booted' | 'done';

export interface UpdateRecord {
  /** §9 error code of the last update attempt; 0xFF none recorded. */
  result: number;
  /** §5 last.flags bits (LastFlags). */
  flags: number;
  /** SHA-256 announced in that update's BEGIN. */
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

function emptyRecord(): UpdateRecord {
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

  /** END succeeded: the new image boots next. */
  installed(): void {
    this.record.stage = 'installed';
    this.record.installed = true;
    this.record.bootCount = 0;
    this.setResult(ErrorCode.OK, 'installed, waiting for first boot');
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

  /** Status boot_count: boots since the last install, 0 when the last attempt installed nothing. */
  get bootCount(): number {
    return this.record.installed ? this.record.bootCount : 0;
  }
}
