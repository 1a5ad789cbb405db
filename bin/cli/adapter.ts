/**
 * Opens what the CLI talks to: a real HCI adapter (noble loaded lazily, so a machine without
 * Bluetooth gets ADAPTER_MISSING) or, with --sim, a virtual fleet of devices named sim-01.. on the
 * simulator's radio (real time, or the virtual clock with --fast).
 */
import { createHciCentral } from '../../lib/ble/noble-central';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { OtaError } from '../../lib/errors';
import { isChipName } from '../../lib/image/chips';
import { applyFaultToConfig, parseFaultSpec } from '../../lib/sim/faults';
import { createSimFleet } from '../../lib/sim/fleet';
import type { ChipName, SimDeviceConfig } from '../../lib/sim/types';
import { addressFromName } from '../../lib/sim/device';
import { deriveDeviceKey } from '../../lib/security/keys';
import { flag, numberOption, repeatedOption, stringOption, type ParsedArgs } from './args';
import { sessionKeyOptions } from './key-options';

export interface CliAdapter {
  scheduler: AdapterScheduler;
  simulated: boolean;
  close(): Promise<void>;
}

/**
 * The session key each simulated device holds: its own key derived from the master key (as the factory
 * provisions it, lib/security deriveDeviceKey of the device id = its BLE address), or the shared fleet key.
 * The commands report key warnings themselves.
 */
function simSessionKey(args: ParsedArgs, name: string, address: string | undefined): Buffer | undefined {
  const keys = sessionKeyOptions(args, () => undefined);
  return keys.masterKey ? deriveDeviceKey(keys.masterKey, address ?? addressFromName(name)) : keys.fleetKey;
}

export function simDeviceNames(count: number): string[] {
  return Array.from({ length: count }, (_v, i) => `sim-${String(i + 1).padStart(2, '0')}`);
}

export async function openAdapter(args: ParsedArgs, imageChip?: ChipName | null): Promise<CliAdapter> {
  const maxConnections = numberOption(args, 'max-connections', 4);
  if (!flag(args, 'sim')) {
    if (args.options.has('fault')) throw new OtaError('BAD_ARGUMENT', '--fault injects faults into a simulated fleet; it needs --sim');
    const hci = stringOption(args, 'hci');
    const central = createHciCentral({ deviceId: hci === undefined ? undefined : Number(hci) });
    const scheduler = new AdapterScheduler(central, { maxConnections, pauseScanWhileConnecting: true });
    return {
      scheduler,
      simulated: false,
      async close() {
        await scheduler.close();
        await central.close();
      },
    };
  }
  const count = numberOption(args, 'sim', 1);
  if (!Number.isInteger(count) || count < 1 || count > 99) throw new OtaError('BAD_ARGUMENT', '--sim takes a device count from 1 to 99');
  const chipText = stringOption(args, 'sim-chip');
  if (chipText !== undefined && !isChipName(chipText)) throw new OtaError('BAD_ARGUMENT', `--sim-chip "${chipText}" is not a chip name (esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4)`);
  const chip: ChipName = (chipText as ChipName | undefined) ?? imageChip ?? 'esp32';
  const protocol = stringOption(args, 'sim-protocol') ?? 'v2';
  if (protocol !== 'v2' && protocol !== 'legacy') throw new OtaError('BAD_ARGUMENT', '--sim-protocol is v2 or legacy');
  const confirm = stringOption(args, 'sim-confirm') ?? 'auto';
  if (confirm !== 'auto' && confirm !== 'host') throw new OtaError('BAD_ARGUMENT', '--sim-confirm is auto or host');
  const faults = repeatedOption(args, 'fault').map(parseFaultSpec);
  const devices: SimDeviceConfig[] = simDeviceNames(count).map((name) => faults.reduce(applyFaultToConfig, {
    name,
    chip,
    version: stringOption(args, 'sim-version') ?? '1.0.0',
    protocol,
    confirmPolicy: confirm,
    fleetKey: simSessionKey(args, name, undefined),
  } as SimDeviceConfig));
  const fleet = await createSimFleet({ devices, link: stringOption(args, 'link') ?? 'reference', clock: flag(args, 'fast') ? 'virtual' : 'real' });
  // --fault: injected into the device the command addresses (default sim-01) as the fleet starts.
  const target = stringOption(args, 'device') ?? devices[0].name;
  try {
    for (const fault of faults) if (fault.kind !== 'slowFlash') fleet.injectFault(fleet.devices.has(target) ? target : devices[0].name, fault);
  } catch (err) {
    await fleet.close();
    throw err;
  }
  const scheduler = new AdapterScheduler(fleet.central, { maxConnections });
  return {
    scheduler,
    simulated: true,
    async close() {
      await scheduler.close();
      await fleet.close();
    },
  };
}
