#!/usr/bin/env node
/**
 * esp32-ble-ota: inspect ESP application images, and scan, flash, verify and query ESP32 devices over
 * BLE, on a real adapter or on a simulated fleet (--sim); `bench` runs the transfer benchmark; `keygen`,
 * `sign` and `derive-key` handle release keys, manifests and per-device keys, `provision` stores a device's key
 * in its provisioning window (docs/SECURITY.md); `plant-sim` runs the simulated plant several gateways share.
 */
import { toOtaError } from '../lib/errors';
import { parseArgs } from './cli/args';
import { campaignCommand } from './cli/campaign';
import { deriveKeyCommand, keygenCommand, signCommand } from './cli/security-commands';
import { provisionCommand } from './cli/provision';
import { plantSimCommand } from './cli/plant-sim';
import { benchCommand, flashCommand, inspectCommand, scanCommand, statusCommand, verifyCommand, type Output } from './cli/commands';

const USAGE = `usage: esp32-ble-ota <command> [options]
  inspect <file> [--manifest f] [--pubkey f]
                                       check an ESP application image and the manifest next to it (<file>.manifest),
                                       or a manifest alone (JSON; exit 1 when invalid)
  scan [--duration s] [--name-prefix p] [--name-regex r] [--service uuid] [--min-rssi dBm]
       [--older-than version] [--protocol v2|legacy|unknown]
  flash <file> --device <name|address> [--encoding auto|raw|deflate|delta] [--protocol auto|v2|legacy]
       [--attempts n] [--allow-downgrade] [--no-reboot] [--expect-chip c] [--expect-version v]
       [--manifest f]                  (default: <file>.manifest when it exists)
       [--base DIR]                    base images for delta updates: a patch against the image the device
                                       runs when DIR holds it; every image flashed is added to DIR
  verify --device <name|address> [--expect-version v] [--expect-sha256 hex] [--confirm] [--rollback-on-fail]
  status --device <name|address>
  bench [--json] [--plant-only | --no-plant]
                                       transfer rows, host figures, delta and fleet rows, plant rows
                                       (devices/hour with 1, 2, 4 gateways); --plant-only: only those
  campaign [--seconds n] [--schedules n] [--seed s] [--replay seed:index] [--implementations model,twin]
           [--workers n] [--concurrency n]
           [--prior-updates p]
                                       random fault schedules on the simulator (docs/FAULTS.md)
  keygen --out <dir> [--release-keys f] [--no-master-key] [--print]
                                       release key pair, release_keys.bin, plant master key (docs/SECURITY.md)
  sign <file> --key <release-key.pem> [--release n] [--key-id k] [--device id]... [--expires date]
       [--base sha256] [--out f]       write the signed manifest <file>.manifest
  derive-key --device-id <aa:bb:cc:dd:ee:ff> [--master-key-file f] [--nvs-csv]
                                       the device's session key (hex, or a CSV for nvs_partition_gen.py)
                                       for factory provisioning
  provision --device <name|address> (--master-key-file f | --key-file f)
                                       store the device's session key (PROVISION) while its provisioning window
                                       is open; the master key gives the key derived for the id the device reports
  plant-sim --layout <file> [--hci-port n | --port n] [--control-port n]
                                       simulated plant for several gateway processes (docs/PLANT-SIM.md): prints one
                                       JSON line with the ports when ready, runs until SIGTERM
keys:   --master-key-file f (per-device keys) or --key-file f (fleet key), else the environment
        BLE_OTA_MASTER_KEY / BLE_OTA_FLEET_KEY (64 hex); --fleet-key <hex> works but shows the key in ps
common: --json  --hci <n>
        --sim [N]  virtual fleet sim-01..sim-N (real time; --fast: virtual clock), --sim-chip <chip>,
        --sim-version <v>, --sim-protocol v2|legacy, --sim-confirm auto|host, --link <scenario>,
        --fault <spec> (repeatable, with --sim: e.g. powerCut@flashOp=120, dropLink@bytes=40000)
        secure by default: simulated devices hold the key derived from the given master key (or the fleet key);
        --sim-release-key f  release public key(s) they hold (PEM or release_keys.bin: BEGIN needs a manifest),
        --sim-dev  development build (no key needed), --sim-window s  provisioning window open for s seconds`;

const COMMANDS: Record<string, (args: ReturnType<typeof parseArgs>, io: Output) => Promise<number>> = {
  inspect: inspectCommand,
  scan: scanCommand,
  flash: flashCommand,
  verify: verifyCommand,
  status: statusCommand,
  bench: benchCommand,
  campaign: campaignCommand,
  keygen: keygenCommand,
  sign: signCommand,
  'derive-key': deriveKeyCommand,
  provision: provisionCommand,
  'plant-sim': plantSimCommand,
};

async function main(argv: string[]): Promise<number> {
  const io: Output = {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    stderr: process.stderr,
  };
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (err) {
    io.err(toOtaError(err).message);
    return 2;
  }
  const command = COMMANDS[args.command];
  if (!command || args.options.has('help')) {
    io.err(USAGE);
    return args.options.has('help') ? 0 : 2;
  }
  try {
    return await command(args, io);
  } catch (err) {
    const e = toOtaError(err);
    if (args.options.has('json') || args.command === 'flash') io.out(JSON.stringify({ success: false, error: e.toJSON() }, null, 2));
    io.err(`${args.command} failed: ${e.code}: ${e.message}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Flush stdout before exiting: noble's HCI bindings may hold handles that would keep us alive.
    process.stdout.write('', () => process.exit(code));
  },
  (err) => {
    process.stderr.write(`internal error: ${String(err)}\n`);
    process.exit(70);
  },
);
