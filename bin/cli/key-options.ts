/**
 * Session keys for the CLI: from files (`--master-key-file`, `--key-file`) or the environment
 * (`BLE_OTA_MASTER_KEY`, `BLE_OTA_FLEET_KEY`, hex), so they stay out of `ps` and shell history.
 * `--fleet-key HEX` still works and warns. Command-line options win over the environment.
 */
import { OtaError } from '../../lib/errors';
import { FLEET_KEY_ENV, MASTER_KEY_ENV, loadSecretKey, parseSecretKey } from '../../lib/security/keys';
import { stringOption, type ParsedArgs } from './args';

export interface SessionKeyOptions {
  masterKey?: Buffer;
  fleetKey?: Buffer;
}

/** The master or fleet key the command line or environment gives; both at once is BAD_OPTION. */
export function sessionKeyOptions(args: ParsedArgs, warn: (text: string) => void, env: NodeJS.ProcessEnv = process.env): SessionKeyOptions {
  const masterFile = stringOption(args, 'master-key-file');
  const fleetFile = stringOption(args, 'key-file');
  const fleetHex = stringOption(args, 'fleet-key');
  const fromCommandLine = masterFile !== undefined || fleetFile !== undefined || fleetHex !== undefined;
  const master = loadSecretKey(fromCommandLine ? { file: masterFile } : { envName: MASTER_KEY_ENV, env }, 'master key');
  let fleet = loadSecretKey(fromCommandLine ? { file: fleetFile } : { envName: FLEET_KEY_ENV, env }, 'fleet key');
  if (fleetHex !== undefined) {
    if (fleet) throw new OtaError('BAD_OPTION', '--fleet-key and --key-file both give the fleet key: keep --key-file');
    if (!/^[0-9a-fA-F]{64}$/.test(fleetHex)) throw new OtaError('BAD_FLEET_KEY', 'the fleet key must be 32 bytes written as 64 hex digits');
    warn(`warning: --fleet-key puts the key on the command line (visible in ps and the shell history); use --key-file or ${FLEET_KEY_ENV}`);
    fleet = { key: parseSecretKey(fleetHex, 'fleet key'), source: '--fleet-key', warnings: [] };
  }
  for (const w of [...(master?.warnings ?? []), ...(fleet?.warnings ?? [])]) warn(`warning: ${w}`);
  if (master && fleet) {
    throw new OtaError('BAD_OPTION', `both a master key (${master.source}) and a fleet key (${fleet.source}) are given: use the master key (per-device keys) or the fleet key, not both`);
  }
  return { masterKey: master?.key, fleetKey: fleet?.key };
}
