/** The CLI's commands: each returns the process exit code; JSON goes to stdout, messages to stderr. */
import { promises as fs } from 'fs';
import { OtaError, toOtaError } from '../../lib/errors';
import { inspectImage, parseImage } from '../../lib/image';
import type { FlashOptions, OtaState } from '../../lib/ota/types';
import { flag, numberOption, stringOption, type ParsedArgs } from './args';
import type { CliAdapter } from './adapter';
import { ProgressBar } from './progress-bar';
import { sessionKeyOptions } from './key-options';
import { MANIFEST_SUFFIX, inspectManifest, isManifestFile, manifestReport } from './security-commands';
import { checkBeforeBegin } from '../../lib/security/check';

export interface Output {
  out(text: string): void;
  err(text: string): void;
  stderr: NodeJS.WriteStream;
}

function json(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v), 2);
}

async function readFile(path: string | undefined): Promise<Buffer> {
  if (!path) throw new OtaError('BAD_ARGUMENT', 'no image file given');
  try {
    return await fs.readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OtaError('FILE_NOT_FOUND', `the file ${path} does not exist`);
    if (code === 'EISDIR') throw new OtaError('FILE_NOT_READABLE', `${path} is a directory, not an image file`);
    throw new OtaError('FILE_NOT_READABLE', `the file ${path} cannot be read: ${(err as Error).message}`);
  }
}

function imageReport(content: Buffer): Record<string, unknown> {
  try {
    return inspectImage(content) as unknown as Record<string, unknown>;
  } catch (err) {
    const e = toOtaError(err);
    return { valid: false, error: { code: e.code, message: e.message } };
  }
}

export async function inspectCommand(args: ParsedArgs, io: Output): Promise<number> {
  const file = args.positionals[0];
  let content: Buffer | null = null;
  let report: Record<string, unknown>;
  try {
    content = await readFile(file);
    report = imageReport(content);
  } catch (err) {
    const e = toOtaError(err);
    report = { valid: false, error: { code: e.code, message: e.message } };
  }
  if (content && isManifestFile(content)) {
    // A manifest on its own: decoded, signature verified with --pubkey.
    const manifest = manifestReport(file, content, null, stringOption(args, 'pubkey'));
    io.out(json({ manifest: manifest.report }));
    if (!manifest.ok) io.err(`${manifestError(manifest.report)}`);
    return manifest.ok ? 0 : 1;
  }
  // The CLI contract: `signature` is null or the signature's kind; the details stay available.
  if (report.signature && typeof report.signature === 'object') {
    report = { ...report, signature: (report.signature as { kind: string }).kind, signatureInfo: report.signature };
  }
  const manifest = report.valid === true ? inspectManifest(args, file, content) : null;
  if (manifest) report = { ...report, manifest: manifest.report };
  if (report.valid === true) {
    io.out(json(report));
    if (manifest && !manifest.ok) {
      io.err(`manifest ${manifest.report.file as string}: ${manifestError(manifest.report)}`);
      return 1;
    }
    return 0;
  }
  const error = (report.error ?? { code: 'INVALID_IMAGE', message: 'the file is not a valid OTA application image' }) as { code: string; message: string };
  io.out(json({ ...report, valid: false, error: { code: error.code, message: error.message } }));
  io.err(`${error.code}: ${error.message}`);
  return 1;
}

function manifestError(report: Record<string, unknown>): string {
  const error = report.error as { code: string; message: string };
  return `${error.code}: ${error.message}`;
}

// The BLE stack, simulator and benchmark load only for the commands that use them (inspect stays light).
const ota = () => import('../../lib/ota');
const adapters = () => import('./adapter');

/** The manifest for a flash: --manifest FILE, else <image>.manifest when it exists; checked against the image. */
async function manifestForFlash(args: ParsedArgs, imagePath: string, image: Buffer): Promise<Buffer | undefined> {
  const given = stringOption(args, 'manifest');
  let bytes: Buffer | undefined;
  if (given) bytes = await readFile(given);
  else {
    try {
      bytes = await fs.readFile(`${imagePath}${MANIFEST_SUFFIX}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new OtaError('FILE_NOT_READABLE', `the manifest ${imagePath}${MANIFEST_SUFFIX} cannot be read: ${(err as Error).message}`);
    }
  }
  if (!bytes) return undefined;
  // A manifest for another image is refused before the radio is touched (the device would refuse it too).
  const problem = checkBeforeBegin({ device: { caps: 0 }, image, manifest: bytes, hasKey: false, now: Date.now() });
  if (problem) throw problem;
  return bytes;
}

/** Runs fn on an adapter that is closed afterwards; Ctrl-C aborts through the signal. */
async function onAdapter<T>(args: ParsedArgs, chip: Parameters<Awaited<ReturnType<typeof adapters>>['openAdapter']>[1], fn: (a: CliAdapter, signal: AbortSignal) => Promise<T>, warn?: (text: string) => void): Promise<T> {
  const { openAdapter } = await adapters();
  const controller = new AbortController();
  const onSigint = () => controller.abort(new OtaError('CANCELLED', 'interrupted by the user (Ctrl-C)'));
  process.once('SIGINT', onSigint);
  const adapter = await openAdapter(args, chip, { warn });
  try {
    return await fn(adapter, controller.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
    await adapter.close();
  }
}

/** Secure by default: provisioned devices refuse a gateway without their key; say so before the radio is used. */
function warnWithoutKey(args: ParsedArgs, keys: { masterKey?: Buffer; fleetKey?: Buffer }, io: Output): void {
  if (!flag(args, 'sim') && !keys.masterKey && !keys.fleetKey) {
    io.err('warning: no session key (--master-key-file, --key-file, BLE_OTA_MASTER_KEY): provisioned devices refuse updates and commands without it');
  }
}

function deviceArg(args: ParsedArgs): string {
  const device = stringOption(args, 'device') ?? (flag(args, 'sim') ? 'sim-01' : undefined);
  if (!device) throw new OtaError('BAD_ARGUMENT', '--device <name|address> is required');
  return device;
}

export async function scanCommand(args: ParsedArgs, io: Output): Promise<number> {
  const durationMs = numberOption(args, 'duration', 5) * 1000;
  const { scanDevices } = await ota();
  const devices = await onAdapter(args, null, (a, signal) =>
    scanDevices(a.scheduler, {
      durationMs,
      namePrefix: stringOption(args, 'name-prefix'),
      nameRegex: stringOption(args, 'name-regex'),
      service: stringOption(args, 'service'),
      minRssi: args.options.has('min-rssi') ? numberOption(args, 'min-rssi', -127) : undefined,
      olderThan: stringOption(args, 'older-than'),
      protocol: stringOption(args, 'protocol') as 'v2' | 'legacy' | 'unknown' | undefined,
      signal,
    }),
  );
  if (flag(args, 'json')) io.out(json(devices));
  else {
    io.out(`${devices.length} device(s)`);
    for (const d of devices) {
      io.out(`${d.name.padEnd(20)} ${d.address.padEnd(17)} ${String(d.rssi).padStart(4)} dBm  ${d.protocol.padEnd(7)} ${d.firmware.version ?? '-'} ${d.firmware.state}`);
    }
  }
  return 0;
}

export async function flashCommand(args: ParsedArgs, io: Output): Promise<number> {
  const image = await readFile(args.positionals[0]);
  const chip = parseImage(image).chip;
  const keys = sessionKeyOptions(args, io.err);
  warnWithoutKey(args, keys, io);
  const manifest = await manifestForFlash(args, args.positionals[0], image);
  const encoding = (stringOption(args, 'encoding') ?? 'auto') as FlashOptions['encoding'];
  // `flash --base DIR`: base images of delta updates (for `sign`, --base is the manifest's base digest).
  const baseImages = stringOption(args, 'base');
  const protocol = (stringOption(args, 'protocol') ?? 'auto') as 'auto' | 'v2' | 'legacy';
  const bar = new ProgressBar(io.stderr);
  const { flashDevice } = await ota();
  try {
    const result = await onAdapter(args, chip, (a, signal) =>
      flashDevice(a.scheduler, {
        device: deviceArg(args),
        image,
        ...keys,
        manifest,
        encoding,
        baseImages,
        protocol,
        expectedChip: stringOption(args, 'expect-chip') as never,
        expectedVersion: stringOption(args, 'expect-version'),
        preventDowngrade: !flag(args, 'allow-downgrade'),
        maxAttempts: numberOption(args, 'attempts', 5),
        findTimeoutMs: numberOption(args, 'find-timeout', 10) * 1000,
        reboot: !flag(args, 'no-reboot'),
        signal,
        onProgress: flag(args, 'no-progress') ? undefined : (p) => bar.update(p),
      }),
      io.err,
    );
    bar.finish();
    io.out(json(result));
    return 0;
  } catch (err) {
    bar.finish();
    throw err;
  }
}

export async function verifyCommand(args: ParsedArgs, io: Output): Promise<number> {
  const states = stringOption(args, 'expect-state')?.split(',') as OtaState[] | undefined;
  const keys = sessionKeyOptions(args, io.err);
  warnWithoutKey(args, keys, io);
  const { verifyDevice } = await ota();
  const result = await onAdapter(args, null, (a, signal) =>
    verifyDevice(a.scheduler, {
      device: deviceArg(args),
      expect: { version: stringOption(args, 'expect-version'), imageSha256: stringOption(args, 'expect-sha256'), states },
      waitMs: numberOption(args, 'wait', 30) * 1000,
      onPass: flag(args, 'confirm') ? 'confirm' : 'none',
      onFail: flag(args, 'rollback-on-fail') ? 'rollback' : 'none',
      ...keys,
      signal,
    }),
    io.err,
  );
  io.out(json(result));
  if (!result.passed) io.err(`verification failed: ${result.reasons.join('; ')}`);
  return result.passed ? 0 : 1;
}

export async function statusCommand(args: ParsedArgs, io: Output): Promise<number> {
  const { readDeviceStatus } = await ota();
  const result = await onAdapter(args, null, (a, signal) => readDeviceStatus(a.scheduler, { device: deviceArg(args), signal, findTimeoutMs: numberOption(args, 'find-timeout', 10) * 1000 }));
  io.out(json(result));
  return 0;
}

export async function benchCommand(args: ParsedArgs, io: Output): Promise<number> {
  const { runBenchmark, formatBenchTable } = await import('../../lib/bench');
  if (flag(args, 'plant-only') && flag(args, 'no-plant')) throw new OtaError('BAD_ARGUMENT', 'bench: --plant-only and --no-plant exclude each other');
  const report = await runBenchmark({ plantOnly: flag(args, 'plant-only'), plant: !flag(args, 'no-plant'), onLog: (line) => io.err(line) });
  io.out(flag(args, 'json') ? json(report) : formatBenchTable(report));
  return 0;
}
