/**
 * The second-stage bootloader of ESP-IDF v5.3.2 with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, on a
 * partition table with ota_0, ota_1 and no factory app (bootloader_utility.c):
 * 1. every otadata entry still PENDING_VERIFY becomes ABORTED (:339-347): an image that was not
 *    confirmed during its first boot never boots again;
 * 2. both entries erased or INVALID/ABORTED: boot index 0 ("No factory image, trying OTA 0", :351-368);
 *    otherwise the active entry (valid, highest seq) picks the slot, and a NEW entry becomes
 *    PENDING_VERIFY before the image is even loaded (:370-394); no active entry: try every slot (:403-409);
 * 3. bootloader_utility_load_boot_image tries the chosen slot, then the lower ones, then the higher ones
 *    (:481-532), loading (= verifying) each image; the first that verifies boots. A failed image is not
 *    marked in otadata. With both entries in their initial state, the slot that boots gets sector 0 =
 *    {seq = slot + 1, VALID} (set_actual_ota_seq, :434-449).
 * No slot verifies: the bootloader resets (and fails again): the model reports the device bricked.
 */
import { OtaStateCode } from '../../protocol/constants';
import { ERASED_SEQ, OtaData, SectorIndex, SlotIndex, slotOfSeq } from './ota-data';

export interface BootChoice {
  slot: SlotIndex;
  /** The slot whose PENDING_VERIFY entry this boot marked ABORTED (an unconfirmed image given up). */
  rolledBackSlot: SlotIndex | null;
  /** The slot otadata chose did not verify and another one boots instead. */
  fellBack: boolean;
}

export interface BootWork {
  /** Slots the bootloader loaded and verified, in order (each is a whole-image read). */
  verified: SlotIndex[];
  /** otadata sector writes (erase + program each). */
  otadataWrites: number;
}

/** isBootable: the slot holds an image that passes esp_image_verify (bootloader_load_image). */
export function chooseBootSlot(otadata: OtaData, isBootable: (slot: SlotIndex) => boolean, work?: BootWork): BootChoice | null {
  const count = (): void => {
    if (work) work.otadataWrites++;
  };
  let rolledBackSlot: SlotIndex | null = null;
  for (const sector of [0, 1] as SectorIndex[]) {
    const e = otadata.entry(sector);
    if (e.state === OtaStateCode.PENDING_VERIFY) {
      otadata.writeSector(sector, { seq: e.seq, state: OtaStateCode.ABORTED, crcOk: e.crcOk });
      count();
      if (e.seq !== ERASED_SEQ) rolledBackSlot = slotOfSeq(e.seq);
    }
  }
  const invalid = (s: SectorIndex): boolean => {
    const e = otadata.entry(s);
    return e.seq === ERASED_SEQ || e.state === OtaStateCode.INVALID || e.state === OtaStateCode.ABORTED;
  };
  const initial = (s: SectorIndex): boolean => otadata.entry(s).seq === ERASED_SEQ || !otadata.entry(s).crcOk;
  let start: SlotIndex | -1;
  let initialContents = false;
  if (invalid(0) && invalid(1)) {
    start = 0;
    initialContents = initial(0) && initial(1);
  } else {
    const active = otadata.activeSector();
    if (active === -1) {
      start = -1;
    } else {
      const e = otadata.entry(active);
      start = slotOfSeq(e.seq);
      if (e.state === OtaStateCode.NEW) {
        otadata.writeSector(active, { seq: e.seq, state: OtaStateCode.PENDING_VERIFY });
        count();
      }
    }
  }
  // Down from the start index to 0, then up from start + 1.
  const order: SlotIndex[] = start === 1 ? [1, 0] : [0, 1];
  for (const slot of order) {
    work?.verified.push(slot);
    if (!isBootable(slot)) continue;
    if (initialContents) {
      otadata.writeSector(0, { seq: slot + 1, state: OtaStateCode.VALID });
      count();
    }
    return { slot, rolledBackSlot, fellBack: start !== -1 && slot !== start };
  }
  return null;
}
