/**
 * NVS namespace `ble_ota` (PROTOCOL.md §6): the persisted update record and the boot counter. Lives in
 * flash, so it survives reboots and power loss.
 */
import { LAST_RESULT_NONE, LastFlags } from '../../protocol/constants';

export interface UpdateRecord {
  /** §9 error code of the last update attempt; 0xFF none recorded. */
  result: number;
  /** §5 last.flags bits (LastFlags). */
  flags: number;
  /** SHA-256 announced in that update's BEGIN. */
  sha256: Buffer;
  /** Diagnostics / error text (at most 31 bytes reach Status). */
  message: string;
}

export class Nvs {
  record: UpdateRecord = { result: LAST_RESULT_NONE, flags: 0, sha256: Buffer.alloc(32), message: '' };
  /** Boots since the last update was installed (END succeeded). */
  bootCount = 0;

  /** BEGIN: a new attempt starts ("in progress" until it ends one way or another). */
  startAttempt(sha256: Buffer, result: number, message: string): void {
    this.record = { result, flags: LastFlags.RECORD_VALID, sha256: Buffer.from(sha256), message };
  }

  /** Sets the result (and optionally the message) of the current record. */
  setResult(result: number, message?: string): void {
    this.record.result = result;
    this.record.flags |= LastFlags.RECORD_VALID;
    if (message !== undefined) this.record.message = message;
  }

  addFlags(flags: number): void {
    this.record.flags |= flags;
  }

  hasRecord(): boolean {
    return (this.record.flags & LastFlags.RECORD_VALID) !== 0;
  }
}
