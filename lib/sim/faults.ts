/**
 * Fault injection at the radio: what goes wrong between the gateway and a device. Write faults act on
 * writes as they reach the device (counted from the moment the fault is injected); vanishing and power
 * loss act at once. Slow flash and failing diagnostics are device settings (SimDeviceConfig).
 */
import { OtaError } from '../errors';

/** What becomes of a write as it reaches the device. */
export type WriteVerdict = { action: 'deliver'; data: Buffer } | { action: 'drop' } | { action: 'loseLink' };

/** What becomes of a notification the device sends (delay: it goes on air that much later). */
export type NotifyVerdict = { action: 'deliver'; data: Buffer } | { action: 'drop' } | { action: 'delay'; data: Buffer; ms: number };

export type RadioFault =
  /** The link is lost (supervision timeout) when a write would take the bytes written past `bytes`. */
  | { kind: 'disconnectAfterBytes'; bytes: number }
  /** The nth write without response (1 = the next one) never reaches the device: a lost packet. */
  | { kind: 'dropWrite'; nth: number; characteristic?: string }
  /** One bit of the nth write is flipped on its way (default: bit 0 of the middle byte). */
  | { kind: 'flipBit'; nth: number; byte?: number; bit?: number; withoutResponseOnly?: boolean; characteristic?: string }
  /** The device goes out of range: stops being heard and its link times out; back after forMs if given. */
  | { kind: 'vanish'; forMs?: number }
  /** Power cut: the link times out, the device reboots after offMs (VirtualPeripheral.powerLoss). */
  | { kind: 'powerLoss'; offMs: number }
  /** The nth notification the device sends (1 = the next one) never reaches the central. */
  | { kind: 'dropNotification'; nth: number; characteristic?: string }
  /** One bit of the nth notification is flipped on its way (default: bit 0 of its last byte). */
  | { kind: 'corruptNotification'; nth: number; byte?: number; bit?: number; characteristic?: string }
  /** The nth notification reaches the central ms later (still in order with nothing: later ones may pass it). */
  | { kind: 'delayNotification'; nth: number; ms: number; characteristic?: string };

export interface FaultHandle {
  readonly fault: RadioFault;
  readonly fired: boolean;
  cancel(): void;
}

interface ArmedFault {
  fault: RadioFault;
  count: number;
  fired: boolean;
  cancelled: boolean;
}

export function validateFault(fault: RadioFault): RadioFault {
  const bad = (what: string) => new OtaError('FAULT_INVALID', `fault ${JSON.stringify(fault)}: ${what}`);
  const positiveInt = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 1;
  switch (fault?.kind) {
    case 'disconnectAfterBytes':
      if (!(typeof fault.bytes === 'number' && Number.isInteger(fault.bytes) && fault.bytes >= 0)) throw bad('bytes must be an integer >= 0');
      return fault;
    case 'dropWrite':
      if (!positiveInt(fault.nth)) throw bad('nth must be an integer >= 1');
      return fault;
    case 'flipBit':
      if (!positiveInt(fault.nth)) throw bad('nth must be an integer >= 1');
      if (fault.bit !== undefined && !(Number.isInteger(fault.bit) && fault.bit >= 0 && fault.bit <= 7)) throw bad('bit must be 0..7');
      if (fault.byte !== undefined && !(Number.isInteger(fault.byte) && fault.byte >= 0)) throw bad('byte must be an integer >= 0');
      return fault;
    case 'vanish':
      if (fault.forMs !== undefined && !(fault.forMs >= 0)) throw bad('forMs must be >= 0');
      return fault;
    case 'powerLoss':
      if (!(typeof fault.offMs === 'number' && fault.offMs >= 0)) throw bad('offMs must be >= 0');
      return fault;
    case 'dropNotification':
      if (!positiveInt(fault.nth)) throw bad('nth must be an integer >= 1');
      return fault;
    case 'corruptNotification':
      if (!positiveInt(fault.nth)) throw bad('nth must be an integer >= 1');
      if (fault.bit !== undefined && !(Number.isInteger(fault.bit) && fault.bit >= 0 && fault.bit <= 7)) throw bad('bit must be 0..7');
      if (fault.byte !== undefined && !(Number.isInteger(fault.byte) && fault.byte >= 0)) throw bad('byte must be an integer >= 0');
      return fault;
    case 'delayNotification':
      if (!positiveInt(fault.nth)) throw bad('nth must be an integer >= 1');
      if (!(typeof fault.ms === 'number' && fault.ms >= 0)) throw bad('ms must be >= 0');
      return fault;
    default:
      throw bad('unknown kind; use disconnectAfterBytes, dropWrite, flipBit, vanish, powerLoss, dropNotification, corruptNotification or delayNotification');
  }
}

/** The write-path faults armed per device address. */
export class WriteFaults {
  private readonly armed = new Map<string, ArmedFault[]>();
  /** Faults that took effect, in order (for tests and reports). */
  readonly log: Array<{ address: string; fault: RadioFault }> = [];

  add(address: string, fault: RadioFault): FaultHandle {
    const entry: ArmedFault = { fault, count: 0, fired: false, cancelled: false };
    const list = this.armed.get(address) ?? [];
    list.push(entry);
    this.armed.set(address, list);
    return {
      fault,
      get fired() {
        return entry.fired;
      },
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Marks an immediate fault (vanish, power loss) as having happened. */
  record(address: string, fault: RadioFault): FaultHandle {
    this.log.push({ address, fault });
    return { fault, fired: true, cancel: () => undefined };
  }

  onWrite(address: string, data: Buffer, withoutResponse: boolean, characteristic: string): WriteVerdict {
    const list = this.armed.get(address);
    if (!list) return { action: 'deliver', data };
    let out = data;
    for (const entry of list) {
      if (entry.fired || entry.cancelled) continue;
      const f = entry.fault;
      if (f.kind === 'disconnectAfterBytes') {
        if (entry.count + data.length > f.bytes) return this.fire(address, entry, { action: 'loseLink' });
        entry.count += data.length;
      } else if (f.kind === 'dropWrite') {
        if (!withoutResponse || (f.characteristic && f.characteristic !== characteristic)) continue;
        if (++entry.count === f.nth) return this.fire(address, entry, { action: 'drop' });
      } else if (f.kind === 'flipBit') {
        if ((f.withoutResponseOnly && !withoutResponse) || (f.characteristic && f.characteristic !== characteristic)) continue;
        if (++entry.count === f.nth && data.length > 0) {
          out = Buffer.from(out);
          const at = Math.min(f.byte ?? Math.floor(out.length / 2), out.length - 1);
          out[at] ^= 1 << (f.bit ?? 0);
          this.fire(address, entry, { action: 'deliver', data: out });
        }
      }
    }
    return { action: 'deliver', data: out };
  }

  /** A notification the device sends on `characteristic` (lower-case uuid). */
  onNotify(address: string, data: Buffer, characteristic: string): NotifyVerdict {
    const list = this.armed.get(address);
    if (!list) return { action: 'deliver', data };
    for (const entry of list) {
      if (entry.fired || entry.cancelled) continue;
      const f = entry.fault;
      if (f.kind !== 'dropNotification' && f.kind !== 'corruptNotification' && f.kind !== 'delayNotification') continue;
      if (f.characteristic && f.characteristic !== characteristic) continue;
      if (++entry.count !== f.nth) continue;
      entry.fired = true;
      this.log.push({ address, fault: f });
      if (f.kind === 'dropNotification') return { action: 'drop' };
      if (f.kind === 'delayNotification') return { action: 'delay', data, ms: f.ms };
      if (data.length === 0) return { action: 'deliver', data };
      const out = Buffer.from(data);
      out[Math.min(f.byte ?? out.length - 1, out.length - 1)] ^= 1 << (f.bit ?? 0);
      return { action: 'deliver', data: out };
    }
    return { action: 'deliver', data };
  }

  private fire(address: string, entry: ArmedFault, verdict: WriteVerdict): WriteVerdict {
    entry.fired = true;
    this.log.push({ address, fault: entry.fault });
    return verdict;
  }
}

/**
 * A fault of the simulated fleet (docs/FAULTS.md), injected with SimFleet.injectFault(deviceName, fault)
 * or given on the command line as a spec (parseFaultSpec). Counts (n, bytes, flashOp) start when the
 * fault is injected.
 */
export type Fault =
  /** Power is lost at the flashOp-th erase/program of an app partition, or atMs from now. */
  | { kind: 'powerCut'; flashOp?: number; atMs?: number; offMs?: number }
  /** Power is lost during the flashOp-th operation; when it is a program, its first `bytes` bytes land. */
  | { kind: 'tornWrite'; flashOp: number; bytes: number; offMs?: number }
  /** The flashOp-th erase/program of an app partition returns an error, the power stays on. */
  | { kind: 'flashFail'; flashOp: number }
  /** The nth otadata write (default the next) fails: its sector is erased, the entry is not written. */
  | { kind: 'otadataFail'; n?: number }
  /** The nth NVS write (default the next) fails: the previous value stays. */
  | { kind: 'nvsFail'; n?: number }
  /** Power is lost while the nth first-boot diagnostics from now (default the next) run. */
  | { kind: 'diagnosticsCut'; n?: number; offMs?: number }
  /** The link is lost when the gateway's writes would pass `bytes` bytes. */
  | { kind: 'dropLink'; bytes: number }
  /** The nth write without response never reaches the device. */
  | { kind: 'loseWrite'; n: number }
  /** One bit of the nth write is flipped on air (a corruption the link layer's CRC missed). */
  | { kind: 'flipWrite'; n: number; byte?: number; bit?: number }
  /** The nth notification the device sends never reaches the gateway. */
  | { kind: 'loseNotification'; n: number }
  /** One bit of the nth notification is flipped (default: bit 0 of its last byte). */
  | { kind: 'corruptNotification'; n: number; byte?: number; bit?: number }
  /** The nth notification reaches the gateway ms late. */
  | { kind: 'delayNotification'; n: number; ms: number }
  /** The device goes out of range (atMs from now, default at once) and comes back after forMs (default: never). */
  | { kind: 'vanish'; atMs?: number; forMs?: number }
  /** Flash erase/program take `factor` times as long (a device setting: applyFaultToConfig). */
  | { kind: 'slowFlash'; factor: number };

export type FaultKind = Fault['kind'];

/** Parameters each kind takes (required first), for specs and their errors. */
const FAULT_PARAMS: Record<FaultKind, { required: string[]; optional: string[] }> = {
  powerCut: { required: [], optional: ['flashOp', 'atMs', 'offMs'] },
  tornWrite: { required: ['flashOp', 'bytes'], optional: ['offMs'] },
  flashFail: { required: ['flashOp'], optional: [] },
  otadataFail: { required: [], optional: ['n'] },
  nvsFail: { required: [], optional: ['n'] },
  diagnosticsCut: { required: [], optional: ['n', 'offMs'] },
  dropLink: { required: ['bytes'], optional: [] },
  loseWrite: { required: ['n'], optional: [] },
  flipWrite: { required: ['n'], optional: ['byte', 'bit'] },
  loseNotification: { required: ['n'], optional: [] },
  corruptNotification: { required: ['n'], optional: ['byte', 'bit'] },
  delayNotification: { required: ['n', 'ms'], optional: [] },
  vanish: { required: [], optional: ['atMs', 'forMs'] },
  slowFlash: { required: ['factor'], optional: [] },
};

export const FAULT_KINDS = Object.keys(FAULT_PARAMS) as FaultKind[];

/** Checks a Fault; returns it, or throws OtaError FAULT_INVALID naming what is wrong. */
export function checkFault(fault: Fault): Fault {
  const bad = (what: string) => new OtaError('FAULT_INVALID', `fault ${JSON.stringify(fault)}: ${what}`);
  if (!fault || typeof fault !== 'object' || !(fault.kind in FAULT_PARAMS)) throw bad(`unknown kind; use one of ${FAULT_KINDS.join(', ')}`);
  const params = FAULT_PARAMS[fault.kind];
  const record = fault as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== 'kind' && !params.required.includes(key) && !params.optional.includes(key)) throw bad(`${fault.kind} takes no parameter "${key}" (it takes ${[...params.required, ...params.optional].join(', ') || 'none'})`);
  }
  for (const key of params.required) if (record[key] === undefined) throw bad(`${fault.kind} needs ${key}`);
  const positive = ['flashOp', 'n'];
  for (const [key, value] of Object.entries(record)) {
    if (key === 'kind' || value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw bad(`${key} must be a number >= 0`);
    if (positive.includes(key) && !(Number.isInteger(value) && value >= 1)) throw bad(`${key} must be an integer >= 1`);
    if (['bytes', 'byte'].includes(key) && !Number.isInteger(value)) throw bad(`${key} must be an integer`);
    if (key === 'bit' && !(Number.isInteger(value) && value <= 7)) throw bad('bit must be 0..7');
  }
  if (fault.kind === 'powerCut' && (fault.flashOp === undefined) === (fault.atMs === undefined)) throw bad('powerCut needs exactly one of flashOp or atMs');
  if (fault.kind === 'slowFlash' && !(fault.factor >= 1)) throw bad('factor must be >= 1');
  return fault;
}

/**
 * Parses a command-line fault spec: `kind` or `kind@key=value,key=value`, e.g. `powerCut@flashOp=120`,
 * `dropLink@bytes=40000`, `loseNotification@n=3`.
 */
export function parseFaultSpec(spec: string): Fault {
  const bad = (what: string) => new OtaError('FAULT_INVALID', `fault spec ${JSON.stringify(spec)}: ${what}`);
  if (typeof spec !== 'string' || spec.trim() === '') throw bad('empty; use kind@key=value,... e.g. powerCut@flashOp=120');
  const [kind, rest] = spec.trim().split('@', 2);
  if (!(kind in FAULT_PARAMS)) throw bad(`unknown fault "${kind}"; use one of ${FAULT_KINDS.join(', ')}`);
  const fault: Record<string, unknown> = { kind };
  for (const part of rest ? rest.split(',') : []) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw bad(`"${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const text = part.slice(eq + 1).trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value)) throw bad(`${key}=${text} is not a number`);
    fault[key] = value;
  }
  return checkFault(fault as unknown as Fault);
}

/** A fault as a spec string (the inverse of parseFaultSpec; used in replay commands and reports). */
export function faultSpec(fault: Fault): string {
  const params = Object.entries(fault).filter(([k, v]) => k !== 'kind' && v !== undefined);
  return params.length ? `${fault.kind}@${params.map(([k, v]) => `${k}=${String(v)}`).join(',')}` : fault.kind;
}

/**
 * A fault of the device's storage, as the firmware twin's stdio protocol carries it (docs/TWIN.md
 * "fault"): counted from now over the app-partition erase/program calls (cut, flash_fail) or the otadata /
 * NVS writes.
 */
export type StorageFault =
  | { kind: 'cut'; n: number; bytes: number }
  | { kind: 'diag_cut'; n: number }
  | { kind: 'flash_fail'; n: number }
  | { kind: 'otadata_fail'; n: number }
  | { kind: 'nvs_fail'; n: number };

/** A device that takes storage faults itself (the twin); onCut: an armed cut hit, power the device off. */
export interface StorageFaultTarget {
  armStorageFault(fault: StorageFault, onCut: () => void): void;
}

export function takesStorageFaults(device: object): device is StorageFaultTarget {
  return typeof (device as Partial<StorageFaultTarget>).armStorageFault === 'function';
}

/** Faults that are device settings rather than events, applied to a device's config before the fleet starts. */
export function applyFaultToConfig<T extends { flashSlowdown?: number }>(config: T, fault: Fault): T {
  if (fault.kind === 'slowFlash') return { ...config, flashSlowdown: (config.flashSlowdown ?? 1) * fault.factor };
  return config;
}

/** The radio fault a link-level Fault is, or null for the kinds the device or the clock carries out. */
export function radioFaultOf(fault: Fault): RadioFault | null {
  switch (fault.kind) {
    case 'dropLink':
      return { kind: 'disconnectAfterBytes', bytes: fault.bytes };
    case 'loseWrite':
      return { kind: 'dropWrite', nth: fault.n };
    case 'flipWrite':
      return { kind: 'flipBit', nth: fault.n, byte: fault.byte, bit: fault.bit, withoutResponseOnly: true };
    case 'loseNotification':
      return { kind: 'dropNotification', nth: fault.n };
    case 'corruptNotification':
      return { kind: 'corruptNotification', nth: fault.n, byte: fault.byte, bit: fault.bit };
    case 'delayNotification':
      return { kind: 'delayNotification', nth: fault.n, ms: fault.ms };
    default:
      return null;
  }
}
