/**
 * Timed flash work of the running application outside the update writer: otadata writes, NVS record
 * writes and whole-image verification reads. Each erase/program window stalls the BLE host
 * (flash-timing.ts: the cache is disabled for it). Steps run on the application's timers, so a power
 * cut or reboot in the middle stops the sequence where it is: what was written stays, the rest never
 * happens.
 *
 * Where a write lands: an otadata write erases its sector at the start and programs the entry at the end
 * (esp_ota_ops.c:364-378: erase_range then write), so a cut in between leaves the sector erased. An NVS
 * write lands whole at its end: NVS appends the new entry and only then marks the old one erased
 * (docs/en/api-reference/storage/nvs_flash.rst:158), so a cut keeps the previous record.
 * Verification reads go through the cache (bootloader_mmap -> spi_flash_mmap in an application build,
 * bootloader_flash.c:58-79; esp_image_format.c:659): they take time but do not disable the cache, so they
 * do not stall the host (they run in the writer task, firmware/components/ble_ota/core/ble_ota_writer.c).
 */
import type { OtaData, OtadataWritePlan } from './ota-data';
import { FlashTiming, writeWindowsMs } from './flash-timing';
import { NVS_RECORD_BLOB_BYTES, nvsBlobEntries } from './nvs';
import type { TimerGroup } from './timers';

export interface FlashWorkHost {
  readonly appTimers: TimerGroup;
  stallHost(ms: number): void;
}

/** The otadata entry is 32 bytes (esp_ota_select_entry_t). */
const OTADATA_ENTRY_BYTES = 32;
/** NVS: 32-byte entries, 126 per 4 KiB page (nvs_flash.rst:200-202, 236). */
export const NVS_ENTRY_BYTES = 32;
export const NVS_ENTRIES_PER_PAGE = 126;
/**
 * One NVS blob write (nvs_set_blob + nvs_commit) of `valueBytes`: the data item (a header entry and the
 * data entries), the blob index entry, and the state-bitmap writes that mark the previous version erased
 * (two 4-byte writes): one esp_partition_write each. The record (88 bytes): [128, 32, 4, 4].
 */
export function nvsBlobWritesBytes(valueBytes: number): number[] {
  return [(1 + Math.ceil(valueBytes / NVS_ENTRY_BYTES)) * NVS_ENTRY_BYTES, NVS_ENTRY_BYTES, 4, 4];
}
export const NVS_RECORD_WRITES_BYTES: readonly number[] = nvsBlobWritesBytes(NVS_RECORD_BLOB_BYTES);

export class FlashWork {
  constructor(
    private readonly host: FlashWorkHost,
    private readonly timing: FlashTiming,
  ) {}

  /** Time of one program of `bytes` (its cache-disabled windows), stalling the host for each. */
  program(offset: number, bytes: number): number {
    let total = 0;
    for (const ms of writeWindowsMs(this.timing, offset, bytes)) {
      this.host.stallHost(ms);
      total += ms;
    }
    return total;
  }

  eraseSector(): number {
    this.host.stallHost(this.timing.sectorEraseMs);
    return this.timing.sectorEraseMs;
  }

  /**
   * One otadata sector write: the sector is erased now, the entry programmed after the erase time; then
   * `then(true)`. A failing program (fault injection) takes no program time and gives `then(false)`,
   * the sector left erased (the twin reports no program either: firmware/host/host_flash.c).
   */
  otadata(otadata: OtaData, plan: OtadataWritePlan, then: (ok: boolean) => void): void {
    otadata.eraseSector(plan.sector);
    this.after(this.eraseSector(), () => {
      if (!otadata.apply(plan)) return then(false);
      this.after(this.program(0, OTADATA_ENTRY_BYTES), () => then(true));
    });
  }

  /**
   * One update-record write; `apply` lands at its end, then `then`. `usedEntries` is how many NVS
   * entries the namespace used so far: a page full of entries costs a page erase first (pessimistic:
   * NVS reclaims a page by moving its live entries and erasing it).
   */
  nvs(usedEntries: number, apply: () => void, then: () => void): void {
    this.after(this.nvsTime(usedEntries), () => {
      apply();
      then();
    });
  }

  /** Stalls for one record write and returns its duration (for writes that land at once). */
  nvsTime(usedEntries: number, valueBytes = NVS_RECORD_BLOB_BYTES): number {
    return nvsWriteMs(this.timing, usedEntries, valueBytes, (ms) => this.host.stallHost(ms));
  }

  /** A whole-image verification read (esp_image_verify): device time, no host stall. */
  verify(bytes: number, then: () => void): void {
    this.after(bytes / this.timing.verifyBytesPerMs, then);
  }

  after(ms: number, fn: () => void): void {
    this.host.appTimers.set(fn, ms);
  }
}

/**
 * Time of one NVS blob write when the namespace has used `usedEntries` entries: a page that fills costs
 * a sector erase first (pessimistic: NVS reclaims a page by moving its live entries and erasing it), then
 * the writes of nvsBlobWritesBytes; `window` sees each cache-disabled window. The firmware twin charges
 * the same (firmware/host/host_flash.c).
 */
export function nvsWriteMs(timing: FlashTiming, usedEntries: number, valueBytes: number, window: (ms: number) => void = () => undefined): number {
  let ms = 0;
  const before = Math.floor(usedEntries / NVS_ENTRIES_PER_PAGE);
  const after = Math.floor((usedEntries + nvsBlobEntries(valueBytes)) / NVS_ENTRIES_PER_PAGE);
  if (after !== before) {
    window(timing.sectorEraseMs);
    ms += timing.sectorEraseMs;
  }
  let offset = (usedEntries % NVS_ENTRIES_PER_PAGE) * NVS_ENTRY_BYTES;
  for (const bytes of nvsBlobWritesBytes(valueBytes)) {
    for (const w of writeWindowsMs(timing, offset, bytes)) {
      window(w);
      ms += w;
    }
    offset += bytes;
  }
  return ms;
}
