/** A small argv parser: positionals, `--flag`, `--key value`, `--key=value`; `--sim` takes an optional count. */
import { OtaError } from '../../lib/errors';

export interface ParsedArgs {
  command: string;
  positionals: string[];
  options: Map<string, string | true>;
}

/** Options that never take a value (so `--json file.bin` keeps file.bin positional). */
const BOOLEAN_FLAGS = new Set(['json', 'fast', 'help', 'no-reboot', 'confirm', 'rollback-on-fail', 'allow-downgrade', 'no-progress', 'raw', 'deflate', 'print', 'no-master-key', 'nvs-csv', 'sim-dev', 'plant-only', 'no-plant']);
/** Options whose value is optional and numeric. */
const OPTIONAL_NUMBER = new Set(['sim']);
/** Options that take a value. Anything not listed here or above is refused (a typo must not be ignored). */
const VALUE_OPTIONS = new Set([
  'attempts', 'device', 'duration', 'encoding', 'expect-chip', 'expect-sha256', 'expect-state', 'expect-version', 'find-timeout',
  'fault', 'fleet-key', 'hci', 'link', 'max-connections', 'min-rssi', 'name-prefix', 'name-regex', 'older-than', 'protocol', 'service',
  'sim-chip', 'sim-confirm', 'sim-protocol', 'sim-version', 'sim-release-key', 'sim-window', 'wait', 'seconds', 'seed', 'replay', 'schedules', 'implementations', 'prior-updates', 'workers', 'concurrency',
  // keys and manifests (docs/SECURITY.md)
  'key', 'key-file', 'master-key-file', 'key-id', 'release', 'expires', 'base', 'manifest', 'pubkey', 'device-id', 'out', 'release-keys',
  // plant simulator (docs/PLANT-SIM.md)
  'layout', 'hci-port', 'port', 'control-port',
]);
/** Options that may be given more than once; their values are kept in order (repeatedOption). */
const REPEATABLE = new Set(['fault', 'device']);
const REPEAT_SEPARATOR = '\u0000';
export const KNOWN_OPTIONS: readonly string[] = [...BOOLEAN_FLAGS, ...OPTIONAL_NUMBER, ...VALUE_OPTIONS].sort();

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function unknownOption(name: string): OtaError {
  const closest = KNOWN_OPTIONS.map((known) => ({ known, d: editDistance(name, known) })).sort((x, y) => x.d - y.d)[0];
  const hint = closest && closest.d <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean --${closest.known}?)` : '';
  return new OtaError('BAD_ARGUMENT', `unknown option --${name}${hint}; esp32-ble-ota --help lists the options`, { option: name });
}

export function parseArgs(argv: string[]): ParsedArgs {
  const positionals: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq > 0 ? eq : undefined);
    if (!KNOWN_OPTIONS.includes(name)) throw unknownOption(name);
    if (REPEATABLE.has(name) && options.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new OtaError('BAD_ARGUMENT', `option --${name} needs a value`);
      options.set(name, `${String(options.get(name))}${REPEAT_SEPARATOR}${value}`);
    } else if (eq > 0) options.set(name, arg.slice(eq + 1));
    else if (BOOLEAN_FLAGS.has(name)) options.set(name, true);
    else if (OPTIONAL_NUMBER.has(name)) {
      if (i + 1 < argv.length && /^\d+$/.test(argv[i + 1])) options.set(name, argv[++i]);
      else options.set(name, true);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) options.set(name, argv[++i]);
    else throw new OtaError('BAD_ARGUMENT', `option --${name} needs a value`);
  }
  return { command: positionals.shift() ?? '', positionals, options };
}

/** The option's value; for an option given more than once (repeatable), the last one. */
export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  return typeof v === 'string' ? v.split(REPEAT_SEPARATOR).pop() : undefined;
}

export function numberOption(args: ParsedArgs, name: string, fallback: number): number {
  const v = args.options.get(name);
  if (v === undefined || v === true) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new OtaError('BAD_ARGUMENT', `option --${name} must be a number, got "${v}"`);
  return n;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.options.has(name);
}

/** Every value of an option that may repeat (e.g. --fault a --fault b), in order. */
export function repeatedOption(args: ParsedArgs, name: string): string[] {
  const v = args.options.get(name);
  return typeof v === 'string' ? v.split(REPEAT_SEPARATOR) : [];
}
