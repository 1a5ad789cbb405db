/**
 * Fault injection at the radio: what goes wrong between the gateway and a device. Write faults act on
 * writes as they reach the device (counted from the moment the fault is injected); vanishing and power
 * loss act at once. Slow flash and failing diagnostics are device settings (SimDeviceConfig).
 */
import { OtaError } from '../errors';

/** What becomes of a write as it reaches the device. */
export type WriteVerdict = { action: 'deliver'; data: Buffer } | { action: 'drop' } | { action: 'loseLink' };

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
  | { kind: 'powerLoss'; offMs: number };

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
    default:
      throw bad('unknown kind; use disconnectAfterBytes, dropWrite, flipBit, vanish or powerLoss');
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

  private fire(address: string, entry: ArmedFault, verdict: WriteVerdict): WriteVerdict {
    entry.fired = true;
    this.log.push({ address, fault: entry.fault });
    return verdict;
  }
}
