/**
 * Second-stage bootloader with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: picks the slot to boot from
 * otadata. A slot still PENDING_VERIFY at boot was never confirmed, so it is marked ABORTED and the
 * previous one boots (rollback); a NEW slot becomes PENDING_VERIFY (its first boot).
 */
import { OtaStateCode } from '../../protocol/constants';
import { OtaData, SlotIndex, isUsableState } from './ota-data';

export interface BootChoice {
  slot: SlotIndex;
  /** The running image boots for the first time since it was installed (diagnostics are due). */
  firstBoot: boolean;
  /** A slot the bootloader gave up on during this boot (unconfirmed image rolled back). */
  rolledBackSlot: SlotIndex | null;
}

/** isBootable: the slot holds an image that passes the bootloader's own verification. */
export function chooseBootSlot(otadata: OtaData, isBootable: (slot: SlotIndex) => boolean): BootChoice | null {
  let rolledBackSlot: SlotIndex | null = null;
  for (const slot of otadata.selectionOrder()) {
    const state = otadata.state(slot);
    if (state === OtaStateCode.PENDING_VERIFY) {
      otadata.setState(slot, OtaStateCode.ABORTED);
      rolledBackSlot = slot;
      continue;
    }
    if (!isUsableState(state)) continue;
    if (!isBootable(slot)) {
      otadata.setState(slot, OtaStateCode.INVALID);
      continue;
    }
    const firstBoot = state === OtaStateCode.NEW;
    if (firstBoot) otadata.setState(slot, OtaStateCode.PENDING_VERIFY);
    return { slot, firstBoot, rolledBackSlot };
  }
  // No usable otadata entry: like ESP-IDF without a factory app, fall back to the first bootable slot.
  for (const slot of [0, 1] as SlotIndex[]) {
    if (isUsableState(otadata.state(slot)) && isBootable(slot)) return { slot, firstBoot: false, rolledBackSlot };
  }
  return null;
}
