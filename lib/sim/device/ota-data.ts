/**
 * The otadata partition as ESP-IDF v5.3.2 keeps it: two flash sectors, each holding one
 * esp_ota_select_entry_t {ota_seq, seq_label, ota_state, crc} (bootloader_support/include/
 * esp_flash_partitions.h:61-66). An entry is valid when ota_seq is not 0xFFFFFFFF, its state is not
 * INVALID/ABORTED and its crc (CRC-32 of ota_seq only) matches (bootloader_common_loader.c:34-47); the
 * active entry is the valid one with the highest ota_seq, sector 0 on a tie (:121-145); the slot it
 * boots is (ota_seq - 1) % 2 (bootloader_utility.c:386-387). Every write is an erase of the sector
 * then a program of the entry (app_update/esp_ota_ops.c:364-378, bootloader_utility.c:253-263), so a
 * power cut between the two leaves the sector erased (ota_seq 0xFFFFFFFF: not valid).
 *
 * The state of a slot is what esp_ota_get_state_partition reports: the first sector (0 before 1) whose
 * entry names the slot with a matching crc, whatever its seq (esp_ota_ops.c:837-869).
 */
import { OtaStateCode } from '../../protocol/constants';

export type SlotIndex = 0 | 1;
export type SectorIndex = 0 | 1;
export const SLOT_LABELS: readonly string[] = ['ota_0', 'ota_1'];
/** ota_seq of an erased sector. */
export const ERASED_SEQ = 0xffffffff;

export type ImageStateCode = (typeof OtaStateCode)[keyof typeof OtaStateCode];

/** One sector's entry; `crcOk` false models a torn or corrupted entry. */
export interface OtaSelectEntry {
  seq: number;
  state: ImageStateCode;
  crcOk: boolean;
}

export interface OtadataWritePlan {
  sector: SectorIndex;
  entry: { seq: number; state: ImageStateCode };
}

const ERASED: OtaSelectEntry = Object.freeze({ seq: ERASED_SEQ, state: OtaStateCode.UNDEFINED, crcOk: false });

export function slotOfSeq(seq: number): SlotIndex {
  return ((seq - 1) % 2) as SlotIndex;
}

export class OtaData {
  private readonly sectors: [OtaSelectEntry, OtaSelectEntry] = [ERASED, ERASED];
  /** Fault injection: the n-th sector write from now (application or bootloader) fails after its erase; 0 none. */
  private failIn = 0;

  /**
   * The n-th otadata write from now fails: its erase lands, the entry's program returns an error
   * (rewrite_ota_seq returns the error of its esp_partition_write, esp_ota_ops.c:364-378), so the sector
   * reads erased. Counted as the firmware twin counts (firmware/host/host_flash.c host_otadata_write).
   */
  armWriteFailure(n: number): void {
    this.failIn = n;
  }

  entry(sector: SectorIndex): OtaSelectEntry {
    return this.sectors[sector];
  }

  /**
   * rewrite_ota_seq / write_otadata: erase the sector, program the entry. The crc is recomputed by
   * rewrite_ota_seq; the bootloader writes the entry back with the crc it read (crcOk kept).
   */
  writeSector(sector: SectorIndex, entry: Omit<OtaSelectEntry, 'crcOk'> & { crcOk?: boolean }): boolean {
    if (this.failIn > 0 && --this.failIn === 0) {
      this.sectors[sector] = ERASED;
      return false;
    }
    this.sectors[sector] = { seq: entry.seq >>> 0, state: entry.state, crcOk: entry.crcOk ?? true };
    return true;
  }

  /** A power cut after the erase of a sector write and before its program (fault injection). */
  eraseSector(sector: SectorIndex): void {
    this.sectors[sector] = ERASED;
  }

  /** bootloader_common_ota_select_valid. */
  isValid(sector: SectorIndex): boolean {
    const e = this.sectors[sector];
    return e.seq !== ERASED_SEQ && e.crcOk && e.state !== OtaStateCode.INVALID && e.state !== OtaStateCode.ABORTED;
  }

  /** bootloader_common_get_active_otadata: the valid sector with the highest seq (sector 0 on a tie), or -1. */
  activeSector(): SectorIndex | -1 {
    const v0 = this.isValid(0);
    const v1 = this.isValid(1);
    if (v0 && v1) return this.sectors[0].seq >= this.sectors[1].seq ? 0 : 1;
    if (v0) return 0;
    if (v1) return 1;
    return -1;
  }

  /** esp_ota_get_boot_partition: the slot the active entry names, or null (no valid entry: ota_0 boots). */
  bootSlot(): SlotIndex | null {
    const active = this.activeSector();
    return active === -1 ? null : slotOfSeq(this.sectors[active].seq);
  }

  /** esp_ota_get_state_partition: UNDEFINED when no entry names the slot (ESP_ERR_NOT_FOUND). */
  state(slot: SlotIndex): ImageStateCode {
    const sector = this.sectorOf(slot);
    return sector === -1 ? OtaStateCode.UNDEFINED : this.sectors[sector].state;
  }

  /** The first sector whose entry names the slot with a matching crc (esp_ota_ops.c:855-862), or -1. */
  sectorOf(slot: SlotIndex): SectorIndex | -1 {
    for (const sector of [0, 1] as SectorIndex[]) {
      const e = this.sectors[sector];
      if (e.crcOk && e.seq !== ERASED_SEQ && slotOfSeq(e.seq) === slot) return sector;
    }
    return -1;
  }

  /**
   * esp_ota_set_boot_partition -> esp_rewrite_ota_data (esp_ota_ops.c:390-435): the sector after the
   * active one gets the smallest seq above the active seq that names `slot` (or slot + 1 in sector 0
   * when no entry is valid), state NEW (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, :104-112). The other
   * sector is not touched.
   */
  planSetBoot(slot: SlotIndex): OtadataWritePlan {
    const active = this.activeSector();
    if (active === -1) return { sector: 0, entry: { seq: slot + 1, state: OtaStateCode.NEW } };
    const seq = this.sectors[active].seq;
    let i = 0;
    while (seq > ((slot + 1) % 2) + i * 2) i++;
    return { sector: active === 0 ? 1 : 0, entry: { seq: ((slot + 1) % 2) + i * 2, state: OtaStateCode.NEW } };
  }

  setBoot(slot: SlotIndex): boolean {
    return this.apply(this.planSetBoot(slot));
  }

  /**
   * esp_ota_mark_app_valid_cancel_rollback / esp_ota_mark_app_invalid_rollback_and_reboot
   * (esp_ota_current_ota_is_workable, esp_ota_ops.c:742-781): rewrites the ACTIVE entry (not
   * necessarily the running slot's) with the new state and the same seq; VALID is not rewritten when
   * already valid (null: nothing to write). 'none': no active entry (ESP_FAIL).
   */
  planMarkActive(state: typeof OtaStateCode.VALID | typeof OtaStateCode.INVALID): OtadataWritePlan | null | 'none' {
    const active = this.activeSector();
    if (active === -1) return 'none';
    const e = this.sectors[active];
    if (state === OtaStateCode.VALID && e.state === OtaStateCode.VALID) return null;
    return { sector: active, entry: { seq: e.seq, state } };
  }

  /** False when the write failed (fault injection): the sector is left erased. */
  apply(plan: OtadataWritePlan): boolean {
    return this.writeSector(plan.sector, plan.entry);
  }

  /** Slots named by a written entry, the highest seq first (for tests; the bootloader uses activeSector). */
  selectionOrder(): SlotIndex[] {
    const written = ([0, 1] as SectorIndex[])
      .map((sector) => this.sectors[sector])
      .filter((e) => e.crcOk && e.seq !== ERASED_SEQ)
      .sort((a, b) => b.seq - a.seq)
      .map((e) => slotOfSeq(e.seq));
    return [...new Set(written)];
  }

  /** The factory flash (esptool write_flash + erase of otadata): both sectors erased, ota_0 boots. */
  eraseAll(): void {
    this.sectors[0] = ERASED;
    this.sectors[1] = ERASED;
  }

  /**
   * Compatibility for the seed model: sets the state of the entry that names `slot` (the one
   * esp_ota_get_state_partition reads), rewriting its sector; nothing when no entry names it.
   */
  setState(slot: SlotIndex, state: ImageStateCode): void {
    const sector = this.sectorOf(slot);
    if (sector === -1) return;
    this.writeSector(sector, { seq: this.sectors[sector].seq, state });
  }
}

export function otherSlot(slot: SlotIndex): SlotIndex {
  return slot === 0 ? 1 : 0;
}
