/**
 * The campaign's invariants, checked on the simulated flash itself (not on what the device reports):
 * - bootable: the bootloader's selection (lib/sim/device/bootloader.ts, run on a copy of otadata) finds
 *   an image that verifies;
 * - old-or-new: the image that boots is the old image or the new one, byte for byte;
 * - marked-valid: every otadata entry in state VALID (an image confirmed) names a slot holding an image
 *   that verifies. An entry NEW or PENDING_VERIFY may name an invalid slot: ESP-IDF itself leaves one
 *   when an update installed without reboot (esp_ota_set_boot_partition wrote the NEW entry) is followed
 *   by another to the same slot, because esp_ota_begin erases the slot and writes no otadata
 *   (esp-idf v5.3.2 components/app_update/esp_ota_ops.c:114-172). Such an entry is safe since the
 *   bootloader loads (verifies) an image before it boots it and falls back to the other slot when it
 *   does not verify (bootloader_support/src/bootloader_utility.c:496-520, try_load_partition :416-430);
 *   it turns NEW into PENDING_VERIFY first (:388-394) and PENDING_VERIFY into ABORTED at the next boot
 *   (:339-347). What must hold there is `bootable` and `old-or-new`;
 * - report: flashDevice's success, once the image was committed (VALID: confirmed by the host policy's
 *   verify, or by the device itself under the auto policy), means the new image boots at the next reset;
 *   its failure means the old image still boots;
 * - status: the version the device's Status reports is the version of the image in the boot slot.
 */
import { chooseBootSlot } from '../device/bootloader';
import { verifyAppImage } from '../device/image-slots';
import { OtaStateCode } from '../../protocol/constants';
import { ERASED_SEQ, slotOfSeq, type SlotIndex } from '../device/ota-data';
import type { ChipName } from '../types';
import { otadataOf, type FlashView } from './flash-view';

export interface Violation {
  invariant: 'bootable' | 'old-or-new' | 'marked-valid' | 'report' | 'status' | 'hang';
  detail: string;
}

export interface CheckInput {
  view: FlashView;
  chip: ChipName;
  /** The images that may still boot when the update did not complete (the factory image, an earlier update). */
  oldImages: Buffer[];
  newImage: Buffer;
  /** flashDevice succeeded. */
  flashed: boolean;
  /** The new image was confirmed (host policy) or the device confirms itself (auto). */
  committed: boolean;
  /** The version Status reported after the schedule, or null when Status could not be read. */
  statusVersion: string | null;
  oldVersions: string[];
  newVersion: string;
}

/** The slot holds the image (the slot's view stops at its last programmed byte, the image may end in 0xFF). */
function holds(slot: Buffer, image: Buffer): boolean {
  const n = Math.min(slot.length, image.length);
  if (!slot.subarray(0, n).equals(image.subarray(0, n))) return false;
  for (let i = n; i < image.length; i++) if (image[i] !== 0xff) return false;
  return true;
}

export function checkInvariants(input: CheckInput): Violation[] {
  const { view, chip } = input;
  const out: Violation[] = [];
  const verifies = (slot: SlotIndex) => verifyAppImage(view.slots[slot], chip) === null;
  const oldIndex = (slot: SlotIndex): number => input.oldImages.findIndex((image) => holds(view.slots[slot], image));
  const which = (slot: SlotIndex): 'old' | 'new' | 'other' => (holds(view.slots[slot], input.newImage) ? 'new' : oldIndex(slot) >= 0 ? 'old' : 'other');
  const otadata = otadataOf(view);
  for (const sector of [0, 1] as const) {
    const e = view.entries[sector];
    if (!e.crcOk || e.seq === ERASED_SEQ || e.state !== OtaStateCode.VALID) continue;
    const slot = slotOfSeq(e.seq);
    if (!verifies(slot)) out.push({ invariant: 'marked-valid', detail: `otadata sector ${sector} marks ota_${slot} VALID (${JSON.stringify(view.entries)}), which holds no valid image` });
  }
  const running = otadata.bootSlot() ?? 0;
  const choice = chooseBootSlot(otadataOf(view), verifies);
  if (!choice) {
    out.push({ invariant: 'bootable', detail: `no slot boots (otadata ${JSON.stringify(view.entries)})` });
    return out;
  }
  const boots = which(choice.slot);
  if (boots === 'other') out.push({ invariant: 'old-or-new', detail: `ota_${choice.slot} boots an image that is neither the old nor the new one` });
  if (input.flashed && input.committed && boots !== 'new') out.push({ invariant: 'report', detail: `flashDevice reported success and the update was committed, but the ${boots} image boots (ota_${choice.slot})` });
  if (!input.flashed && boots !== 'old') out.push({ invariant: 'report', detail: `flashDevice reported a failure, but the ${boots} image boots (ota_${choice.slot})` });
  if (input.statusVersion !== null) {
    const expected = which(running) === 'new' ? input.newVersion : which(running) === 'old' ? input.oldVersions[oldIndex(running)] : null;
    if (expected !== null && input.statusVersion !== expected) out.push({ invariant: 'status', detail: `Status reports version ${input.statusVersion}, the boot slot ota_${running} holds ${expected}` });
  }
  return out;
}
