/**
 * `provision`: stores a device's session key with PROVISION (PROTOCOL.md §7, op 0x08) while its provisioning
 * window is open (a physical action at boot, caps bit 8). The key comes from a file or the environment, never
 * from the command line: the master key (the device's own key is derived for the device id its Status
 * reports) or a fleet key file used as it is. PROVISION is untagged and crosses the air in clear
 * (docs/SECURITY.md "Provisioning window"): do it in a shielded fixture.
 */
import { OtaError } from '../../lib/errors';
import { readDeviceInfo } from '../../lib/ota/protocols';
import { deviceRef } from '../../lib/ota/device-ref';
import { V2Client } from '../../lib/protocol/v2-client';
import { Caps } from '../../lib/protocol/constants';
import { sessionKeyFor } from '../../lib/security/keys';
import { flag, numberOption, stringOption, type ParsedArgs } from './args';
import { sessionKeyOptions } from './key-options';
import type { Output } from './commands';

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export async function provisionCommand(args: ParsedArgs, io: Output): Promise<number> {
  if (args.options.has('key') || args.options.has('fleet-key')) {
    throw new OtaError('BAD_ARGUMENT', 'provision never takes a key on the command line: give --master-key-file (per-device key) or --key-file, or BLE_OTA_MASTER_KEY');
  }
  const keys = sessionKeyOptions(args, io.err);
  if (!keys.masterKey && !keys.fleetKey) {
    throw new OtaError('BAD_ARGUMENT', 'provision needs the key to store: --master-key-file f (the device\'s key is derived from its id) or --key-file f, or BLE_OTA_MASTER_KEY');
  }
  const device = stringOption(args, 'device') ?? (flag(args, 'sim') ? 'sim-01' : undefined);
  if (!device) throw new OtaError('BAD_ARGUMENT', '--device <name|address> is required');
  const { openAdapter } = await import('./adapter');
  const controller = new AbortController();
  const onSigint = () => controller.abort(new OtaError('CANCELLED', 'interrupted by the user (Ctrl-C)'));
  process.once('SIGINT', onSigint);
  // The simulated devices start unprovisioned here: that is what provisioning is for.
  const adapter = await openAdapter(args, null, { provisionSimKeys: false });
  try {
    const report = await adapter.scheduler.withConnection(
      device,
      async (link, found) => {
        const before = await readDeviceInfo(link);
        if (before.protocol !== 'v2' || !before.status) throw new OtaError('PROTOCOL_UNSUPPORTED', 'the device speaks the legacy (seed) protocol, which has no PROVISION command');
        // Per-device key: derived for the id the device reports (Status device_id, format 2).
        const key = sessionKeyFor(keys, before.status.deviceId ?? null);
        if (!key) throw new OtaError('BAD_ARGUMENT', 'no key to provision');
        const client = new V2Client(link, { clock: adapter.scheduler.clock, signal: controller.signal });
        try {
          await client.provision(key);
          const after = await client.readStatus();
          return {
            provisioned: true,
            device: deviceRef(found),
            deviceId: before.status.deviceId ?? null,
            key: keys.masterKey ? 'derived from the master key for this device id' : 'the fleet key',
            sessionKeyRequired: (after.caps & Caps.SESSION_KEY_REQUIRED) !== 0,
            notProvisioned: (after.caps & Caps.NOT_PROVISIONED) !== 0,
          };
        } finally {
          client.close();
        }
      },
      { signal: controller.signal, findTimeoutMs: numberOption(args, 'find-timeout', 10) * 1000 },
    );
    io.out(json(report));
    return 0;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await adapter.close();
  }
}
