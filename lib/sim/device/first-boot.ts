/**
 * What our firmware does with the update record right after boot (PROTOCOL.md §4.4, §6), in the same
 * steps as the firmware core: count the boot, close an attempt a reboot interrupted, and on the first
 * boot of a newly installed image run the diagnostics and apply the confirm policy (auto: pass -> valid,
 * fail -> rollback + reboot; host: stay PENDING_VERIFY until CONFIRM/ROLLBACK). A boot that is not on
 * the installed slot means the bootloader went back to the previous image: the record says rolled back.
 */
import { ErrorCode, LastFlags, OtaStateCode } from '../../protocol/constants';
import type { BootContext, Machine } from './machine';
import { SlotIndex, isUsableState, otherSlot } from './ota-data';
import type { DeviceSettings } from './settings';

/** Text the simulated diagnostics hook reports (the firmware twin's host port uses the same). */
export const DIAGNOSTICS_MESSAGES = { pass: 'simulated diagnostics ok', fail: 'simulated diagnostics failure' } as const;

/** esp_ota_check_rollback_is_possible: the other slot holds a usable, valid image. */
export function rollbackPossible(machine: Machine, running: SlotIndex): boolean {
  const other = otherSlot(running);
  return isUsableState(machine.flash.otadata.state(other)) && machine.flash.verifyImage(other) === null;
}

export function runFirstBootPolicy(machine: Machine, boot: BootContext, settings: DeviceSettings): void {
  const { nvs } = machine.flash;
  const r = nvs.record;
  if (!nvs.hasRecord()) return;
  const onTarget = r.targetSlot === boot.slot;
  if (r.installed && r.stage !== 'installed' && r.bootCount < 0xffff) r.bootCount++;
  if (r.stage === 'in-progress') {
    r.stage = 'done';
    r.message = 'interrupted by a reboot';
    return;
  }
  if (r.stage !== 'installed' && r.stage !== 'booted') return;
  if (onTarget && r.stage === 'installed') {
    diagnose(machine, boot, settings);
    return;
  }
  if (!onTarget) {
    r.flags |= LastFlags.ROLLED_BACK;
    if (r.result === ErrorCode.OK) r.result = ErrorCode.ROLLED_BACK;
    const diagnosticsFailed = (r.flags & LastFlags.DIAGNOSTICS_RAN) !== 0 && (r.flags & LastFlags.DIAGNOSTICS_PASSED) === 0;
    if (!diagnosticsFailed) r.message = 'rolled back to the previous image';
    r.stage = 'done';
  }
}

function diagnose(machine: Machine, boot: BootContext, settings: DeviceSettings): void {
  const { otadata, nvs } = machine.flash;
  const r = nvs.record;
  const pass = settings.diagnosticsPass;
  r.stage = 'booted';
  r.bootCount = 1;
  r.flags |= LastFlags.DIAGNOSTICS_RAN | (pass ? LastFlags.DIAGNOSTICS_PASSED : 0);
  r.message = pass ? DIAGNOSTICS_MESSAGES.pass : DIAGNOSTICS_MESSAGES.fail;
  if (!pass) r.result = ErrorCode.DIAGNOSTICS_FAILED;
  if (settings.hostPolicy || otadata.state(boot.slot) !== OtaStateCode.PENDING_VERIFY) return;
  if (pass) {
    otadata.setState(boot.slot, OtaStateCode.VALID);
    r.flags |= LastFlags.CONFIRMED;
    return;
  }
  if (rollbackPossible(machine, boot.slot)) {
    // esp_ota_mark_app_invalid_rollback_and_reboot
    otadata.setState(boot.slot, OtaStateCode.INVALID);
    machine.restart('diagnostics failed');
    return;
  }
  r.message = 'diagnostics failed, no rollback image';
}
