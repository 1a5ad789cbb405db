/**
 * scanDevices: what is around, from advertisements (the compact firmware status of PROTOCOL.md §8 and
 * the protocol the device speaks when its advertisement says so). Seed-firmware devices advertise no
 * service UUID (docs/PROTOCOL.md §4.6), so the `legacy` and `unknown` protocol filters confirm each
 * remaining candidate by connecting and reading its GATT table.
 */
import type { DiscoveredDevice } from '../ble/central';
import type { AdapterScheduler } from '../ble/scheduler';
import { OtaError } from '../errors';
import { LEGACY_SERVICE_UUIDS, OTA_SERVICE_UUID } from '../protocol/constants';
import { tryDecodeAdvertisement, type AdvertisedStatus } from '../protocol/advertisement';
import { detectProtocol } from '../protocol/detect';
import { isOutdated, parseVersion } from './version';
import type { FirmwareSummary } from './types';

export interface ScanFilters {
  durationMs: number;
  namePrefix?: string;
  /** A regular expression (string or RegExp) the advertised name must match. */
  nameRegex?: string | RegExp;
  /** Only devices advertising this service UUID. */
  service?: string;
  /** Same as `service`, for callers that pass a list (any of them). */
  services?: string[];
  minRssi?: number;
  /** Only devices whose advertised version is lower than this one ("1.2.3"). */
  olderThan?: string;
  /**
   * v2: from the advertisement. legacy / unknown: devices whose advertisement does not say v2 are
   * connected to and told apart by their GATT table (a device that cannot be probed stays unknown).
   */
  protocol?: 'v2' | 'legacy' | 'unknown';
  /** Connect timeout of each GATT probe (ms, default 5000). */
  probeTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ScannedDevice {
  id: string;
  address: string;
  name: string;
  rssi: number;
  firmware: FirmwareSummary & { shaPrefix: string | null; rolledBack: boolean; diagnosticsFailed: boolean; sessionActive: boolean; hostPolicy: boolean; authRequired: boolean };
  protocol: 'v2' | 'legacy' | 'unknown';
  /** Where `protocol` comes from: the advertisement, or the GATT table of a probe (protocol filters). */
  protocolSource: 'advertisement' | 'gatt';
  services: string[];
  advertisement: { serviceUuids: string[]; manufacturerData: string | null; txPowerLevel?: number };
  seenAt: number;
}

function normalizeUuid(u: string): string {
  return u.trim().toLowerCase().replace(/-/g, '');
}

function compileRegex(value: string | RegExp | undefined): RegExp | null {
  if (value === undefined || value === '') return null;
  if (value instanceof RegExp) return value;
  try {
    return new RegExp(value);
  } catch (err) {
    throw new OtaError('BAD_FILTER', `the name filter is not a valid regular expression: ${(err as Error).message}`);
  }
}

export function describeDevice(d: DiscoveredDevice): ScannedDevice {
  const adv: AdvertisedStatus | null = tryDecodeAdvertisement(d.advertisement.manufacturerData);
  const services = d.advertisement.serviceUuids;
  const protocol = adv || services.includes(OTA_SERVICE_UUID) ? 'v2' : services.some((s) => LEGACY_SERVICE_UUIDS.includes(s)) ? 'legacy' : 'unknown';
  return {
    id: d.id,
    address: d.address,
    name: d.name,
    rssi: d.rssi,
    firmware: {
      version: adv?.version ?? null,
      state: adv?.otaState ?? 'undefined',
      shaPrefix: adv?.shaPrefix ?? null,
      rolledBack: adv?.rolledBack ?? false,
      diagnosticsFailed: adv?.diagnosticsFailed ?? false,
      sessionActive: adv?.sessionActive ?? false,
      hostPolicy: adv?.hostPolicy ?? false,
      authRequired: adv?.authRequired ?? false,
    },
    protocol,
    protocolSource: 'advertisement',
    services,
    advertisement: {
      serviceUuids: services,
      manufacturerData: d.advertisement.manufacturerData ? d.advertisement.manufacturerData.toString('hex') : null,
      txPowerLevel: d.advertisement.txPowerLevel,
    },
    seenAt: d.seenAt,
  };
}

export async function scanDevices(scheduler: AdapterScheduler, filters: ScanFilters): Promise<ScannedDevice[]> {
  if (!Number.isFinite(filters.durationMs) || filters.durationMs <= 0) {
    throw new OtaError('BAD_OPTION', `scan duration must be a positive number of milliseconds, got ${String(filters.durationMs)}`);
  }
  const nameRegex = compileRegex(filters.nameRegex);
  const older = filters.olderThan ? parseVersion(filters.olderThan) : null;
  if (filters.olderThan && !older) throw new OtaError('BAD_FILTER', `"older than" must be a version like 1.2.3, got "${filters.olderThan}"`);
  if (filters.protocol && !['v2', 'legacy', 'unknown'].includes(filters.protocol)) throw new OtaError('BAD_FILTER', `protocol filter must be v2, legacy or unknown, got "${filters.protocol}"`);
  const services = [...(filters.services ?? []), ...(filters.service ? [filters.service] : [])].map(normalizeUuid).filter((s) => s !== '');
  const seen = await scheduler.scan({ durationMs: filters.durationMs, services, signal: filters.signal });
  const candidates = seen
    .map(describeDevice)
    .filter((d) => !filters.namePrefix || d.name.startsWith(filters.namePrefix))
    .filter((d) => !nameRegex || nameRegex.test(d.name))
    .filter((d) => filters.minRssi === undefined || d.rssi >= filters.minRssi)
    .filter((d) => {
      // Unknown-protocol devices are not ours; an OTA device without an orderable version is outdated.
      // Seed devices advertise nothing: they count once a protocol filter has probed them (below).
      if (!older || !filters.olderThan || d.protocol === 'unknown') return true;
      return isOutdated(d.firmware.version, filters.olderThan);
    });
  const wanted = filters.protocol;
  const described = wanted === 'legacy' || wanted === 'unknown' ? await probeAll(scheduler, candidates, filters) : candidates;
  return described
    .filter((d) => !wanted || d.protocol === wanted)
    .filter((d) => !older || !filters.olderThan || (d.protocol !== 'unknown' && (d.protocolSource === 'gatt' || isOutdated(d.firmware.version, filters.olderThan))))
    .sort((a, b) => a.name.localeCompare(b.name) || a.address.localeCompare(b.address));
}

/**
 * Candidates the advertisement does not show as v2, confirmed by their GATT table one after the other
 * (the scheduler locks devices by name too, so two "esp32" probes at once would be DEVICE_BUSY).
 */
async function probeAll(scheduler: AdapterScheduler, candidates: ScannedDevice[], filters: ScanFilters): Promise<ScannedDevice[]> {
  const out: ScannedDevice[] = [];
  for (const d of candidates) out.push(d.protocol === 'v2' ? d : await probe(scheduler, d, filters));
  return out;
}

async function probe(scheduler: AdapterScheduler, device: ScannedDevice, filters: ScanFilters): Promise<ScannedDevice> {
  try {
    const protocol = await scheduler.withConnection({ id: device.id, address: device.address, name: device.name }, async (link) => detectProtocol(await link.discover()).protocol, {
      signal: filters.signal,
      wait: false,
      findTimeoutMs: filters.probeTimeoutMs ?? 5000,
      connectTimeoutMs: filters.probeTimeoutMs ?? 5000,
    });
    return { ...device, protocol, protocolSource: 'gatt' };
  } catch (err) {
    if (filters.signal?.aborted) throw err;
    // Not an OTA device (NOT_OTA_DEVICE), busy, or out of reach: its protocol stays unknown.
    return { ...device, protocol: 'unknown', protocolSource: err instanceof OtaError && err.code === 'NOT_OTA_DEVICE' ? 'gatt' : 'advertisement' };
  }
}
