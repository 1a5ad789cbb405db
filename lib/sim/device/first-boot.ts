/**
 * What our firmware does right after boot (PROTOCOL.md §4.4, §6): note a rollback the bootloader made,
 * and on the first boot of a new image run the diagnostics and apply the confirm policy
 * (auto: pass -> valid, fail -> rollback + reboot; host: stay PENDING_VERIFY until CONFIRM/ROLLBACK).
 */
import { ErrorCode, LastFlags, OtaStateCode } from '../../protocol/constants';
import type { BootContext, Machine } from './machine';
import { SlotIndex, isUsableState, otherSlot } from './ota-data';
import type { DeviceSettings } from './settings';

/** esp_ota_check_rollback_is_possible: the other slot holds a usable, valid image. */
export function rollbackPossible(machine: Machine, running: SlotIndex): boolean {
  const other = otherSlot(running);
  return isUsableState(machine.flash.otadata.state(other)) && machine.flash.verifyImage(other) === null;
}

export function runFirstBootPolicy(machine: Machine, boot: BootContext, settings: DeviceSettings): void {
  const { otadata, nvs } = machine.flash;
  if (boot.rolledBackSlot !== null && nvs.hasRecord()) {
    nvs.addFlags(LastFlags.ROLLED_BACK);
    nvs.setResult(ErrorCode.ROLLED_BACK, 'not confirmed before reboot');
  }
  if (!boot.firstBoot) return;
  const passed = settings.diagnosticsPass;
  nvs.addFlags(LastFlags.DIAGNOSTICS_RAN | (passed ? LastFlags.DIAGNOSTICS_PASSED : 0));
  if (passed) {
    nvs.setResult(ErrorCode.OK, 'diagnostics passed');
    if (!settings.hostPolicy) {
      otadata.setState(boot.slot, OtaStateCode.VALID);
      nvs.addFlags(LastFlags.CONFIRMED);
    }
    return;
  }
  nvs.setResult(ErrorCode.DIAGNOSTICS_FAILED, 'diagnostics failed');
  if (settings.hostPolicy) return; // the host reads Status and decides
  if (!rollbackPossible(machine, boot.slot)) {
    nvs.setResult(ErrorCode.DIAGNOSTICS_FAILED, 'diagnostics failed, no rollback');
    return;
  }
  // esp_ota_mark_app_invalid_rollback_and_reboot
  otadata.setState(boot.slot, OtaStateCode.INVALID);
  nvs.addFlags(LastFlags.ROLLED_BACK);
  machine.restart('diagnostics failed');
}
