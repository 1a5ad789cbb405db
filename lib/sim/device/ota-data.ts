/**
 * The otadata partition: which OTA slot boots and the state of each slot's image (ESP-IDF
 * esp_ota_select_entry_t: a sequence number and an esp_ota_img_states_t per entry). It lives in flash,
 * so it survives reboots and power loss. The slot with the highest sequence number is the boot choice.
 */
import { OtaStateCode } from '../../protocol/constants';

export type SlotIndex = 0 | 1;
export const SLOT_LABELS: readonly string[] = ['ota_0', 'ota_1'];

export type ImageStateCode = (typeof OtaStateCode)[keyof typeof OtaStateCode];

interface SelectEntry {
  seq: number;
  state: ImageStateCode;
}

export class OtaData {
  private readonly entries: Array<SelectEntry | null> = [null, null];

  /** esp_ota_set_boot_partition: slot boots next, as a NEW image. */
  setBoot(slot: SlotIndex): void {
    const highest = Math.max(0, ...this.entries.map((e) => e?.seq ?? 0));
    this.entries[slot] = { seq: highest + 1, state: OtaStateCode.NEW };
  }

  /** Marks a slot valid without an update (the factory-flashed image). */
  markFactory(slot: SlotIndex): void {
    this.entries[slot] = { seq: 1, state: OtaStateCode.VALID };
  }

  state(slot: SlotIndex): ImageStateCode {
    return this.entries[slot]?.state ?? OtaStateCode.UNDEFINED;
  }

  setState(slot: SlotIndex, state: ImageStateCode): void {
    const entry = this.entries[slot];
    if (entry) entry.state = state;
    else this.entries[slot] = { seq: 0, state };
  }

  /** Slots with an entry, the most recently selected first. */
  selectionOrder(): SlotIndex[] {
    return ([0, 1] as SlotIndex[])
      .filter((s) => this.entries[s] !== null && (this.entries[s] as SelectEntry).seq > 0)
      .sort((a, b) => (this.entries[b] as SelectEntry).seq - (this.entries[a] as SelectEntry).seq);
  }
}

export function otherSlot(slot: SlotIndex): SlotIndex {
  return slot === 0 ? 1 : 0;
}

export function isUsableState(state: ImageStateCode): boolean {
  return state !== OtaStateCode.INVALID && state !== OtaStateCode.ABORTED;
}
