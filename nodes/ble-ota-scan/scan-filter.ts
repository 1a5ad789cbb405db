/**
 * The scan node's filters, applied to what the library reports from advertisements (no connection):
 * name prefix or regular expression, service UUID, minimum RSSI, firmware older than a version.
 */
import { OtaError } from '../../lib/errors';

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
  olderThan: number[] | null;
}

/** "v1.2.3", "1.2.3-rc1", "1.2" → [1, 2, 3] / [1, 2, 0]; null when there is no leading number. */
export function parseVersion(text: string | null | undefined): number[] | null {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec((text ?? '').trim());
  if (!m) return null;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

export function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
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
  const olderThan = olderText ? parseVersion(olderText) : null;
  if (olderText && !olderThan) throw new OtaError('BAD_FILTER', `"older than" must be a version like 1.2.3, got "${olderText}"`);
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
    // Seed-firmware devices advertise no version and always need the update; our firmware with a
    // version that is not major.minor.patch cannot be compared and is left alone.
    if (entry.protocol !== 'legacy') {
      const version = parseVersion(entry.firmware?.version ?? null);
      if (!version || compareVersions(version, filter.olderThan) >= 0) return false;
    }
  }
  return true;
}
