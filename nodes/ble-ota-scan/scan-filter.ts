/**
 * The scan node's filters, applied to what the library reports from advertisements (no connection):
 * name prefix or regular expression, service UUID, minimum RSSI, firmware older than a version.
 */
import { OtaError } from '../../lib/errors';
import { isOutdated, parseVersion } from '../../lib/image/version';

export interface ScanEntry {
  id: string;
  address: string;
  name: string;
  rssi: number;
  firmware?: { version?: string | null; state?: string } | null;
  protocol?: string;
  services?: string[];
  advertisement?: { serviceUuids?: string[] };
  [key: string]: unknown;
}

export interface ScanFilter {
  namePrefix: string;
  nameRegex: RegExp | null;
  service: string;
  minRssi: number | null;
  /** Only devices whose firmware is older than this version (lib/image/version.ts rule). */
  olderThan: string | null;
}

export function normalizeUuid(uuid: string): string {
  return uuid.trim().toLowerCase().replace(/-/g, '');
}

export function buildFilter(def: Record<string, unknown>): ScanFilter {
  let nameRegex: RegExp | null = null;
  const regexText = String(def.nameRegex ?? '').trim();
  if (regexText) {
    try {
      nameRegex = new RegExp(regexText);
    } catch (err) {
      throw new OtaError('BAD_FILTER', `name filter is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const olderText = String(def.olderThan ?? '').trim();
  const olderThan = olderText || null;
  if (olderText && !parseVersion(olderText)) throw new OtaError('BAD_FILTER', `"older than" must be a version like 1.2.3, got "${olderText}"`);
  const rssiText = String(def.minRssi ?? '').trim();
  const minRssi = rssiText === '' ? null : Number(rssiText);
  if (minRssi !== null && !Number.isFinite(minRssi)) throw new OtaError('BAD_FILTER', `minimum RSSI must be a number in dBm, got "${rssiText}"`);
  return { namePrefix: String(def.namePrefix ?? ''), nameRegex, service: normalizeUuid(String(def.service ?? '')), minRssi, olderThan };
}

export function matches(entry: ScanEntry, filter: ScanFilter): boolean {
  const name = entry.name ?? '';
  if (filter.namePrefix && !name.startsWith(filter.namePrefix)) return false;
  if (filter.nameRegex && !filter.nameRegex.test(name)) return false;
  if (filter.minRssi !== null && entry.rssi < filter.minRssi) return false;
  if (filter.service) {
    const services = (entry.services ?? entry.advertisement?.serviceUuids ?? []).map(normalizeUuid);
    if (!services.includes(filter.service)) return false;
  }
  if (filter.olderThan) {
    // Seed-firmware devices advertise no version and always need the update; ours without an
    // orderable version (a git hash build, 0xFF 0xFF 0xFF in the advertisement) count as outdated.
    if (entry.protocol !== 'legacy' && !isOutdated(entry.firmware?.version ?? null, filter.olderThan)) return false;
  }
  return true;
}
