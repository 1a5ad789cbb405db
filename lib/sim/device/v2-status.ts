/**
 * What the v2 firmware publishes about itself: the Status characteristic (PROTOCOL.md §5) and the
 * manufacturer data of the scan response (§8), both built from the same snapshot.
 */
import { encodeAdvertisement } from '../../protocol/advertisement';
import { LastFlags, PROTO_VERSION, STATUS_FORMAT } from '../../protocol/constants';
import { encodeStatus, formatDeviceId } from '../../protocol/status';
import type { AppInfo } from './app-info';
import type { UpdateRecord } from './nvs';

export interface StatusSnapshot {
  caps: number;
  otaState: number;
  hostPolicy: boolean;
  sessionState: number;
  sessionOffset: number;
  resetReason: number;
  bootCount: number;
  app: AppInfo;
  record: UpdateRecord;
  fleetKeyRequired: boolean;
  /** Format 2 fields (§C). */
  updatePartitionSize: number;
  releaseFloor: number;
  deviceId: Buffer;
  /** Bit i: release key i provisioned. */
  releaseKeyIds: number;
}

/** Cuts a string to at most `bytes` UTF-8 bytes without splitting a character. */
export function fitUtf8(value: string, bytes: number): string {
  let out = value;
  while (Buffer.byteLength(out, 'utf8') > bytes) out = out.slice(0, -1);
  return out;
}

/**
 * Status format 2 (252 bytes): the format-1 layout of bytes 0..231 with format 2, then
 * update_partition_size, release_floor, device_id, release_key_ids and 5 reserved bytes.
 */
export function buildStatus(s: StatusSnapshot): Buffer {
  return encodeStatus({
    format: STATUS_FORMAT,
    protoVersion: PROTO_VERSION,
    caps: s.caps,
    otaState: s.otaState,
    confirmPolicy: s.hostPolicy ? 1 : 0,
    sessionState: s.sessionState,
    resetReason: s.resetReason,
    bootCount: s.bootCount,
    chipId: s.app.chipId,
    secureVersion: s.app.secureVersion,
    sessionOffset: s.sessionOffset,
    runningPartition: fitUtf8(s.app.partitionLabel, 16),
    appVersion: fitUtf8(s.app.version, 32),
    projectName: fitUtf8(s.app.projectName, 32),
    idfVersion: fitUtf8(s.app.idfVersion, 32),
    runningSha256: s.app.sha256.toString('hex'),
    lastResult: s.record.result,
    lastFlags: s.record.flags,
    lastSha256: s.record.sha256.toString('hex'),
    lastMessage: fitUtf8(s.record.message, 32),
    updatePartitionSize: s.updatePartitionSize,
    releaseFloor: s.releaseFloor,
    deviceId: formatDeviceId(s.deviceId),
    releaseKeyIds: s.releaseKeyIds,
  });
}

export function buildManufacturerData(s: StatusSnapshot): Buffer {
  const flags = s.record.flags;
  return encodeAdvertisement({
    otaState: s.otaState,
    rolledBack: (flags & LastFlags.ROLLED_BACK) !== 0,
    diagnosticsFailed: (flags & LastFlags.DIAGNOSTICS_RAN) !== 0 && (flags & LastFlags.DIAGNOSTICS_PASSED) === 0,
    sessionActive: s.sessionState !== 0,
    hostPolicy: s.hostPolicy,
    authRequired: s.fleetKeyRequired,
    shaPrefix: s.app.sha256.subarray(0, 4).toString('hex'),
    version: s.app.version,
  });
}
