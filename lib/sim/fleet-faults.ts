/**
 * Faults (docs/FAULTS.md) injected into one device of a set of simulated devices on a radio, by device
 * name: radio faults go to the radio, storage faults to the TypeScript model's flash or to the firmware
 * twin. Shared by the simulated fleet (lib/sim/fleet.ts) and the plant simulator (lib/sim/plant).
 */
import type { Clock } from '../clock';
import { OtaError } from '../errors';
import { SimDevice } from './device';
import { checkFault, radioFaultOf, takesStorageFaults, type Fault, type FaultHandle, type StorageFault } from './faults';
import type { SimRadio } from './radio';
import type { VirtualPeripheral } from './types';

/** Injects a fault into the named device or its link; OtaError FAULT_INVALID for a malformed or impossible one. */
export function injectFleetFault(radio: SimRadio, clock: Clock, devices: Map<string, VirtualPeripheral>, deviceName: string, fault: Fault): FaultHandle {
  checkFault(fault);
  const device = devices.get(deviceName);
  if (!device) throw new OtaError('FAULT_INVALID', `fault ${fault.kind}: no simulated device named "${deviceName}"`);
  const radioFault = radioFaultOf(fault);
  if (radioFault) return radio.injectFault(device.address, radioFault);
  const later = (atMs: number | undefined, act: () => void): FaultHandle => {
    let fired = false;
    let cancelled = false;
    const fire = () => {
      if (cancelled) return;
      fired = true;
      act();
    };
    if (atMs === undefined) fire();
    else clock.setTimer(fire, atMs);
    return {
      fault: radioFault ?? { kind: 'powerLoss', offMs: 0 },
      get fired() {
        return fired;
      },
      cancel: () => {
        cancelled = true;
      },
    };
  };
  const offMs = fault.kind === 'powerCut' || fault.kind === 'tornWrite' || fault.kind === 'diagnosticsCut' ? (fault.offMs ?? DEFAULT_POWER_OFF_MS) : 0;
  switch (fault.kind) {
    case 'vanish':
      return later(fault.atMs, () => radio.injectFault(device.address, { kind: 'vanish', forMs: fault.forMs }));
    case 'powerCut':
      if (fault.atMs !== undefined) return later(fault.atMs, () => radio.injectFault(device.address, { kind: 'powerLoss', offMs }));
      return armFlashCut(radio, device, fault.flashOp ?? 1, 0, offMs);
    case 'tornWrite':
      return armFlashCut(radio, device, fault.flashOp, fault.bytes, offMs);
    case 'flashFail':
      if (device instanceof SimDevice && device.flash.faults) {
        device.flash.faults.armFailure(fault.flashOp);
        return later(undefined, () => undefined);
      }
      return armTwinFault(device, { kind: 'flash_fail', n: fault.flashOp });
    case 'diagnosticsCut': {
      const powerOff = () => radio.injectFault(device.address, { kind: 'powerLoss', offMs });
      if (!(device instanceof SimDevice)) return armTwinFault(device, { kind: 'diag_cut', n: fault.n ?? 1 }, powerOff);
      let fired = false;
      device.flash.faults?.armDiagnosticsCut(fault.n ?? 1, () => {
        fired = true;
        powerOff();
      });
      return { fault: { kind: 'powerLoss', offMs }, get fired() { return fired; }, cancel: () => undefined };
    }
    case 'otadataFail':
    case 'nvsFail':
      if (device instanceof SimDevice) {
        const storage = fault.kind === 'otadataFail' ? device.flash.otadata : device.flash.nvs;
        storage.armWriteFailure(fault.n ?? 1);
        return later(undefined, () => undefined);
      }
      return armTwinFault(device, { kind: fault.kind === 'otadataFail' ? 'otadata_fail' : 'nvs_fail', n: fault.n ?? 1 });
    case 'slowFlash':
      throw new OtaError('FAULT_INVALID', `fault slowFlash: a device setting, not an event; give it when the fleet is created (SimDeviceConfig.flashSlowdown or applyFaultToConfig)`);
    default:
      throw new OtaError('FAULT_INVALID', `fault ${(fault as Fault).kind}: not supported by the fleet`);
  }
}

/** Power off for this long after a cut when the fault does not say (a brown-out and the supply coming back). */
const DEFAULT_POWER_OFF_MS = 200;

/** A storage fault the twin carries out itself (docs/TWIN.md "fault"); a cut powers it off through the radio. */
function armTwinFault(device: VirtualPeripheral, fault: StorageFault, onCut: () => void = () => undefined): FaultHandle {
  if (!takesStorageFaults(device)) throw new OtaError('FAULT_INVALID', `fault ${fault.kind}: "${device.name}" cannot carry it out (neither the TypeScript model nor the firmware twin)`);
  let fired = false;
  let cancelled = false;
  device.armStorageFault(fault, () => {
    if (cancelled) return;
    fired = true;
    onCut();
  });
  return {
    fault: { kind: 'powerLoss', offMs: 0 },
    get fired() {
      return fired;
    },
    cancel: () => {
      cancelled = true;
    },
  };
}

function armFlashCut(radio: SimRadio, device: VirtualPeripheral, atOp: number, tornBytes: number, offMs: number): FaultHandle {
  if (!(device instanceof SimDevice)) return armTwinFault(device, { kind: 'cut', n: atOp, bytes: tornBytes }, () => radio.injectFault(device.address, { kind: 'powerLoss', offMs }));
  if (!device.flash.faults) throw new OtaError('FAULT_INVALID', `"${device.name}" was created without flash fault hooks`);
  let fired = false;
  let cancelled = false;
  device.flash.faults.arm({
    atOp,
    tornBytes,
    onCut: () => {
      if (cancelled) return;
      fired = true;
      radio.injectFault(device.address, { kind: 'powerLoss', offMs });
    },
  });
  return {
    fault: { kind: 'powerLoss', offMs },
    get fired() {
      return fired;
    },
    cancel: () => {
      cancelled = true;
    },
  };
}
