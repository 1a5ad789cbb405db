/**
 * What our firmware does with the update record right after boot (PROTOCOL.md §4.4, §6), in the same
 * steps as the firmware core, with every record/otadata write timed (flash-work.ts) so a power cut can
 * land between any two of them.
 *
 * First boot = the running image is PENDING_VERIFY (the bootloader turns NEW into PENDING_VERIFY when it
 * boots an image, and a PENDING_VERIFY found at the next boot becomes ABORTED: bootloader.ts), whatever
 * NVS says. With no record of ours naming it (seed firmware, Wi-Fi OTA, NVS erased) a record is written
 * for it (flag OTHER_INSTALLER). Then: record "diagnosing" -> diagnostics -> record the outcome -> policy
 * (auto: fail -> rollback + reboot before BLE starts; pass -> start BLE, confirm once it advertises, the
 * BLE stack being the last check; host: start BLE, wait for CONFIRM/ROLLBACK).
 *
 * Any other boot closes what the record left open: an attempt cut mid-transfer or before the boot switch
 * (INTERRUPTED), an image the bootloader gave up on (ROLLED_BACK; cut during diagnostics: INTERRUPTED too).
 */
import { ErrorCode, LastFlags, OtaStateCode } from '../../protocol/constants';
import type { FlashWork } from './flash-work';
import type { BootContext, Machine } from './machine';
import { raiseFloorAtConfirm, type UpdateRecord } from './nvs';
import { SlotIndex, slotOfSeq } from './ota-data';
import type { DeviceSettings } from './settings';

/** Text the simulated diagnostics hook reports (the firmware twin's host port uses the same). */
export const DIAGNOSTICS_MESSAGES = { pass: 'simulated diagnostics ok', fail: 'simulated diagnostics failure' } as const;
export const RECORD_MESSAGES = {
  otherInstaller: 'installed by another installer',
  diagnosing: 'diagnostics running',
  interrupted: 'interrupted by a reboot',
  interruptedBeforeSwitch: 'interrupted before boot switch',
  interruptedDiagnostics: 'cut in diagnostics, rolled back',
  rolledBack: 'rolled back to the previous image',
  notBooted: 'new image failed to boot',
  noRollback: 'diagnostics failed, no rollback image',
} as const;

/**
 * esp_ota_check_rollback_is_possible (esp_ota_ops.c:686-738, no factory app, no anti-rollback): the
 * entry in the sector after the active one is valid and its slot's image verifies. The slot it names
 * (null: not possible) is read and verified (the caller times that read).
 */
export function rollbackTarget(machine: Machine): SlotIndex | null {
  const { otadata } = machine.flash;
  const active = otadata.activeSector();
  if (active === -1) return null;
  const last = active === 0 ? 1 : 0;
  if (!otadata.isValid(last)) return null;
  const slot = slotOfSeq(otadata.entry(last).seq);
  return machine.flash.verifyImage(slot) === null ? slot : null;
}

export function rollbackPossible(machine: Machine): boolean {
  return rollbackTarget(machine) !== null;
}

export class FirstBoot {
  constructor(
    private readonly machine: Machine,
    private readonly boot: BootContext,
    private readonly settings: DeviceSettings,
    private readonly work: FlashWork,
    /** A record or otadata change the Status should show. */
    private readonly changed: () => void,
    /** The boot's record work is over (confirmed, waiting for the host, or nothing to do). */
    private readonly settled: () => void,
    /** Start the BLE stack (advertising). */
    private readonly startBle: () => void,
  ) {}

  start(): void {
    const { otadata, nvs } = this.machine.flash;
    const slot = this.boot.slot;
    if (otadata.state(slot) === OtaStateCode.PENDING_VERIFY) {
      this.firstBoot();
      return;
    }
    this.startBle();
    this.settled();
    if (!nvs.hasRecord()) return;
    const r = { ...nvs.record };
    if (r.installed && r.stage !== 'installed' && r.bootCount < 0xffff) r.bootCount++;
    const onTarget = r.targetSlot === slot;
    switch (r.stage) {
      case 'in-progress':
        r.stage = 'done';
        r.flags |= LastFlags.INTERRUPTED;
        r.message = RECORD_MESSAGES.interrupted;
        break;
      case 'installed':
        if (onTarget) break;
        r.stage = 'done';
        if (this.boot.fellBack || otadata.bootSlot() === r.targetSlot) {
          // The switch was made; the bootloader could not load the new image.
          r.flags |= LastFlags.INSTALLED | LastFlags.ROLLED_BACK;
          r.result = ErrorCode.ROLLED_BACK;
          r.message = RECORD_MESSAGES.notBooted;
        } else {
          r.flags |= LastFlags.INTERRUPTED;
          r.result = ErrorCode.INTERNAL;
          r.message = RECORD_MESSAGES.interruptedBeforeSwitch;
        }
        break;
      case 'diagnosing':
      case 'booted':
        if (onTarget) break;
        r.stage = 'done';
        r.flags |= LastFlags.ROLLED_BACK;
        if (r.result === ErrorCode.OK) r.result = ErrorCode.ROLLED_BACK;
        if (nvs.record.stage === 'diagnosing') {
          r.flags |= LastFlags.INTERRUPTED;
          r.message = RECORD_MESSAGES.interruptedDiagnostics;
        } else if (!diagnosticsFailed(r.flags)) {
          r.message = RECORD_MESSAGES.rolledBack;
        }
        break;
      default:
        break;
    }
    if (!sameRecord(r, nvs.record)) this.writeNow(r);
  }

  /** The running image's first boot: record it, diagnose, apply the policy. */
  private firstBoot(): void {
    const { nvs } = this.machine.flash;
    const old = nvs.record;
    const ours = nvs.hasRecord() && old.targetSlot === this.boot.slot && old.stage === 'installed';
    // No record of ours names the image: a fresh record, OTHER_INSTALLER only. An attempt of ours cut
    // before (record in-progress) is not carried over, as the firmware core starts the record from zero
    // (firmware/components/ble_ota/core/ble_ota_core.c first_boot_of_pending_image).
    const diagnosing: UpdateRecord = ours
      ? { ...old, flags: old.flags | LastFlags.INSTALLED }
      : {
          result: ErrorCode.OK,
          flags: LastFlags.RECORD_VALID | LastFlags.OTHER_INSTALLER,
          sha256: Buffer.from(this.boot.app.sha256),
          message: RECORD_MESSAGES.otherInstaller,
          stage: 'installed',
          targetSlot: this.boot.slot,
          installed: true,
          bootCount: 0,
          release: 0,
        };
    diagnosing.stage = 'diagnosing';
    diagnosing.bootCount = 1;
    if (ours) diagnosing.message = RECORD_MESSAGES.diagnosing;
    this.write(diagnosing, () => {
      this.machine.flash.faults?.diagnosticsStarted(); // fault injection: a power cut during the diagnostics
      this.work.after(this.settings.model.diagnosticsMs, () => this.diagnosed());
    });
  }

  private diagnosed(): void {
    const { nvs } = this.machine.flash;
    const pass = this.settings.diagnosticsPass;
    const r: UpdateRecord = { ...nvs.record, stage: 'booted' };
    r.flags |= LastFlags.DIAGNOSTICS_RAN | (pass ? LastFlags.DIAGNOSTICS_PASSED : 0);
    r.message = pass ? DIAGNOSTICS_MESSAGES.pass : DIAGNOSTICS_MESSAGES.fail;
    if (!pass) r.result = ErrorCode.DIAGNOSTICS_FAILED;
    this.write(r, () => {
      if (!this.settings.hostPolicy && !pass) return this.rollBack();
      this.startBle();
      if (this.settings.hostPolicy) this.settled();
      else this.confirmWhenAdvertising();
    });
  }

  /** Policy auto: the BLE stack is part of the diagnostics; an image that cannot advertise stays unconfirmed. */
  private confirmWhenAdvertising(): void {
    const { otadata } = this.machine.flash;
    if (this.settings.model.bleStartFails || otadata.state(this.boot.slot) !== OtaStateCode.PENDING_VERIFY) return this.settled();
    const plan = otadata.planMarkActive(OtaStateCode.VALID);
    const nvs = this.machine.flash.nvs;
    const confirmed = (): void =>
      this.write({ ...nvs.record, flags: nvs.record.flags | LastFlags.CONFIRMED }, () => {
        if (raiseFloorAtConfirm(nvs, this.boot.slot)) this.changed();
        this.settled();
      });
    if (plan === 'none') return this.settled();
    if (plan === null) confirmed();
    // A failed otadata write (fault injection) confirms nothing (firmware/components/ble_ota/core/ble_ota_writer.c do_confirm).
    else this.work.otadata(otadata, plan, (ok) => (ok ? confirmed() : this.settled()));
  }

  /** esp_ota_mark_app_invalid_rollback_and_reboot: check (reads the other image), mark invalid, restart. */
  private rollBack(): void {
    const flash = this.machine.flash;
    const target = rollbackTarget(this.machine);
    this.work.verify(target === null ? 0 : flash.imageExtent(target), () => {
      const plan = target === null ? 'none' : flash.otadata.planMarkActive(OtaStateCode.INVALID);
      if (plan === 'none' || plan === null) {
        this.write({ ...flash.nvs.record, message: RECORD_MESSAGES.noRollback }, () => {
          this.startBle();
          this.settled();
        });
        return;
      }
      this.work.otadata(flash.otadata, plan, () => this.machine.restart('diagnostics failed'));
    });
  }

  /** A record write that lands after its flash time. */
  private write(next: UpdateRecord, then: () => void): void {
    const nvs = this.machine.flash.nvs;
    this.work.nvs(
      nvs.usedEntries,
      () => {
        nvs.commit(next);
        this.changed();
      },
      then,
    );
  }

  /** A record write at boot, before the application serves anything: lands at once, stalls for its time. */
  private writeNow(next: UpdateRecord): void {
    const nvs = this.machine.flash.nvs;
    this.work.nvsTime(nvs.usedEntries);
    nvs.commit(next);
  }
}

function diagnosticsFailed(flags: number): boolean {
  return (flags & LastFlags.DIAGNOSTICS_RAN) !== 0 && (flags & LastFlags.DIAGNOSTICS_PASSED) === 0;
}

function sameRecord(a: UpdateRecord, b: UpdateRecord): boolean {
  return a.result === b.result && a.flags === b.flags && a.message === b.message && a.stage === b.stage && a.bootCount === b.bootCount;
}
