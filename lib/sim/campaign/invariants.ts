/**
 * The campaign's invariants, checked on the simulated flash itself (not on what the device reports):
 * - bootable: the bootloader's selection (lib/sim/device/bootloader.ts, run on a copy of otadata) finds
 *   an image that verifies;
 * - old-or-new: the image that boots is the old image or the new one, byte for byte;
 * - marked-valid: the slot the active otadata entry names (esp_ota_get_boot_partition) holds an image
 *   that verifies, unless that entry is PENDING_VERIFY/NEW and the bootloader would fall back anyway
 *   (it is not: a slot marked bootable with an invalid image is a violation either way);
 * - report: flashDevice's success, once the image was committed (VALID: confirmed by the host policy's
 *   verify, or by the device itself under the auto policy), means the new image boots at the next reset;
 *   its failure means the old image still boots;
 * - status: the version the device's Status reports is the version of the image in the boot slot.
 */
import { chooseBootSlot } from '../device/bootloader';
import { verifyAppImage } from '../device/image-slots';
import type { SlotIndex } from '../device/ota-data';
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
  const marked = otadata.bootSlot();
  if (marked !== null && !verifies(marked)) {
    out.push({ invariant: 'marked-valid', detail: `otadata's active entry names ota_${marked} (${JSON.stringify(view.entries)}), which holds no valid image` });
  }
  const running = marked ?? 0;
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
