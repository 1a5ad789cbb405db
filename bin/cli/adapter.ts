/**
 * Opens what the CLI talks to: a real HCI adapter (noble loaded lazily, so a machine without
 * Bluetooth gets ADAPTER_MISSING) or, with --sim, a virtual fleet of devices named sim-01.. on the
 * simulator's radio (real time, or the virtual clock with --fast).
 * The simulated devices are secure by default, as real ones: each holds the session key derived from the
 * given master key (or the fleet key), the release public keys of --sim-release-key (then BEGIN needs a
 * signed manifest); without any key they refuse updates unless --sim-dev makes them a development build.
 */
import { createHciCentral } from '../../lib/ble/noble-central';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { OtaError } from '../../lib/errors';
import { isChipName } from '../../lib/image/chips';
import { applyFaultToConfig, parseFaultSpec } from '../../lib/sim/faults';
import { createSimFleet } from '../../lib/sim/fleet';
import type { ChipName, SimDeviceConfig } from '../../lib/sim/types';
import { addressFromName } from '../../lib/sim/device';
import { deriveDeviceKey, loadReleasePublicKeys, publicKeyToSec1 } from '../../lib/security/keys';
import { flag, numberOption, repeatedOption, stringOption, type ParsedArgs } from './args';
import { sessionKeyOptions } from './key-options';

export interface CliAdapter {
  scheduler: AdapterScheduler;
  simulated: boolean;
  close(): Promise<void>;
}

export interface OpenAdapterOptions {
  /** Provision the simulated devices with the session key of the command line (default true; `provision` says false). */
  provisionSimKeys?: boolean;
  /** Where warnings go (a real adapter without a key, simulated devices without keys). */
  warn?: (text: string) => void;
}

/**
 * What a simulated device holds, as the factory provisions it: its own session key derived from the master
 * key (lib/security deriveDeviceKey of the device id = its BLE address) or the shared fleet key, and the
 * release public keys. The commands report key warnings themselves.
 */
function simSecurity(args: ParsedArgs, name: string, provisionKeys: boolean): Partial<SimDeviceConfig> {
  const security: Partial<SimDeviceConfig> = {};
  if (provisionKeys) {
    const keys = sessionKeyOptions(args, () => undefined);
    if (keys.masterKey) security.deviceKey = deriveDeviceKey(keys.masterKey, addressFromName(name));
    else if (keys.fleetKey) security.fleetKey = keys.fleetKey;
  }
  const releaseKeyFile = stringOption(args, 'sim-release-key');
  if (releaseKeyFile) security.releaseKeys = loadReleasePublicKeys(releaseKeyFile).map(publicKeyToSec1);
  if (flag(args, 'sim-dev')) security.allowUnauthenticated = true;
  if (args.options.has('sim-window')) {
    const seconds = numberOption(args, 'sim-window', 120);
    if (!(seconds > 0 && seconds <= 3600)) throw new OtaError('BAD_ARGUMENT', '--sim-window takes the provisioning window in seconds, 1 to 3600');
    security.provisioningWindowMs = seconds * 1000;
  }
  return security;
}

export function simDeviceNames(count: number): string[] {
  return Array.from({ length: count }, (_v, i) => `sim-${String(i + 1).padStart(2, '0')}`);
}

export async function openAdapter(args: ParsedArgs, imageChip?: ChipName | null, options: OpenAdapterOptions = {}): Promise<CliAdapter> {
  const maxConnections = numberOption(args, 'max-connections', 4);
  if (!flag(args, 'sim')) {
    if (args.options.has('fault')) throw new OtaError('BAD_ARGUMENT', '--fault injects faults into a simulated fleet; it needs --sim');
    for (const simOnly of ['sim-dev', 'sim-release-key', 'sim-window']) {
      if (args.options.has(simOnly)) throw new OtaError('BAD_ARGUMENT', `--${simOnly} configures the simulated devices; it needs --sim`);
    }
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
    ...simSecurity(args, name, options.provisionSimKeys !== false),
  } as SimDeviceConfig));
  const d = devices[0];
  if (!d.deviceKey && !d.fleetKey && !d.releaseKeys && !d.allowUnauthenticated && options.warn) {
    options.warn('warning: the simulated devices hold no key: secure by default, they refuse updates (NOT_PROVISIONED); give --master-key-file (or BLE_OTA_MASTER_KEY), or --sim-dev for a development build');
  }
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
