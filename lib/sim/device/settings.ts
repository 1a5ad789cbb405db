/** SimDeviceConfig with every default filled in (the Kconfig of the simulated firmware). */
import { OtaError } from '../../errors';
import { DeviceDefaults, FLEET_KEY_SIZE } from '../../protocol/constants';
import type { ChipName, SimDeviceConfig } from '../types';
import { createHash } from 'crypto';
import { FlashTiming, flashTiming } from './flash-timing';
import { DEFAULT_OTA_PARTITION_SIZE } from './image-slots';
import { RELEASE_KEY_SLOTS, RELEASE_PUBLIC_KEY_SIZE as RELEASE_KEY_SIZE, SESSION_KEY_SIZE } from '../../protocol/constants';

export const DEFAULT_MAX_MTU = 517;
/**
 * The seed's build: ESP-IDF defaults it does not change (docs/PROTOCOL.md §4.6). ATT MTU: esp-idf
 * components/bt/host/nimble/Kconfig.in:365-368 (BT_NIMBLE_ATT_PREFERRED_MTU default 256); OTA
 * partitions: components/partition_table/partitions_two_ota.csv:6-8 (factory, ota_0, ota_1 of 1M each,
 * chosen by the seed's esp/sdkconfig.defaults:3 CONFIG_PARTITION_TABLE_TWO_OTA).
 */
export const SEED_MAX_MTU = 256;
export const SEED_OTA_PARTITION_SIZE = 0x100000;
/** CONFIG_BLE_OTA_REBOOT_DELAY_MS: END/ROLLBACK/REBOOT response → restart. */
export const REBOOT_DELAY_MS = 300;

/**
 * Model-only knobs (createSimDevice options.model): facts of one device the fleet config does not carry.
 * Defaults: chip revision v0.0 (every image's min_chip_rev_full 0 accepts it), 160 KiB of free heap when
 * BEGIN arrives (an assumption, not a measurement: enough for a session of either encoding), LL data
 * length 251 (DLE), instant diagnostics (a test that cuts power during them sets a duration), and a BLE
 * stack that starts.
 */
export interface ModelTuning {
  /** major * 100 + minor (efuse_hal_chip_revision). */
  chipRevision: number;
  /** Largest block the session buffers can get from the heap at BEGIN. */
  freeHeapBytes: number;
  /** LL data length of the device's links (251 with data length extension, 27 without). */
  dataLength: number;
  /** How long the first-boot diagnostics take. */
  diagnosticsMs: number;
  /** The BLE stack fails to start (e.g. an EXT_ADV build): no advertising, the image is never confirmed. */
  bleStartFails: boolean;
}

export const DEFAULT_MODEL_TUNING: Readonly<ModelTuning> = {
  chipRevision: 0,
  freeHeapBytes: 160 * 1024,
  dataLength: 251,
  diagnosticsMs: 0,
  bleStartFails: false,
};

export interface DeviceSettings {
  name: string;
  address: string;
  chip: ChipName;
  version: string;
  secureVersion: number;
  protocol: 'v2' | 'legacy';
  hostPolicy: boolean;
  diagnosticsPass: boolean;
  /** Factory NVS contents: device_key, fleet_key, rel_floor. */
  deviceKey: Buffer | undefined;
  fleetKey: Buffer | undefined;
  releaseFloor: number;
  /** Index = key_id (NVS rel_key0..3 or the build's embedded keys). */
  releaseKeys: Buffer[];
  allowUnauthenticated: boolean;
  provisioningWindowMs: number;
  signedImagesRequired: boolean;
  allowDowngrade: boolean;
  partitionSize: number;
  resumeTimeoutMs: number;
  maxMtu: number;
  timing: FlashTiming;
  maxChunk: number;
  window: number;
  ackInterval: number;
  model: ModelTuning;
}

/**
 * The firmware's CONFIG_BLE_OTA_MAX_CHUNK default (firmware/components/ble_ota/Kconfig, 2 x 251 - 11: two
 * full LL PDUs at ATT MTU 517), the device maximum the chunk rule starts from (chunk-size.ts); the twin
 * runs with the same default. The protocol allows up to DeviceDefaults.CHUNK_MAX.
 */
export const FIRMWARE_MAX_CHUNK = 491;

/** A stable random-static address from the name, so a fleet looks the same on every run. */
export function addressFromName(name: string): string {
  const bytes = createHash('sha256').update(`sim-device:${name}`).digest().subarray(0, 6);
  bytes[0] |= 0xc0;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function resolveSettings(config: SimDeviceConfig, tuning: Partial<ModelTuning> = {}): DeviceSettings {
  if (!config || typeof config.name !== 'string' || config.name.length === 0) {
    throw new OtaError('BAD_PARAMETER', 'A simulated device needs a name.');
  }
  if (config.fleetKey !== undefined && (!Buffer.isBuffer(config.fleetKey) || config.fleetKey.length !== FLEET_KEY_SIZE)) {
    throw new OtaError('BAD_FLEET_KEY', `The fleet key of simulated device ${config.name} must be ${FLEET_KEY_SIZE} bytes.`);
  }
  if (config.deviceKey !== undefined && (!Buffer.isBuffer(config.deviceKey) || config.deviceKey.length !== SESSION_KEY_SIZE)) {
    throw new OtaError('BAD_FLEET_KEY', `The device key of simulated device ${config.name} must be ${SESSION_KEY_SIZE} bytes.`);
  }
  const releaseKeys = config.releaseKeys ?? [];
  if (!Array.isArray(releaseKeys) || releaseKeys.length > RELEASE_KEY_SLOTS || releaseKeys.some((k) => !Buffer.isBuffer(k) || k.length !== RELEASE_KEY_SIZE || k[0] !== 0x04)) {
    throw new OtaError('BAD_PARAMETER', `Simulated device ${config.name}: releaseKeys must be at most ${RELEASE_KEY_SLOTS} uncompressed P-256 public keys of ${RELEASE_KEY_SIZE} bytes (0x04 || X || Y).`);
  }
  const windowMs = config.provisioningWindowMs ?? 0;
  if (!Number.isFinite(windowMs) || windowMs < 0) throw new OtaError('BAD_PARAMETER', `Simulated device ${config.name}: provisioningWindowMs must be a non-negative number (got ${windowMs}).`);
  const releaseFloor = config.releaseFloor ?? 0;
  if (!Number.isInteger(releaseFloor) || releaseFloor < 0 || releaseFloor > 0xffffffff) {
    throw new OtaError('BAD_PARAMETER', `Simulated device ${config.name}: releaseFloor must be an integer 0..4294967295 (got ${releaseFloor}).`);
  }
  const seed = config.protocol === 'legacy';
  const partitionSize = config.otaPartitionSize ?? (seed ? SEED_OTA_PARTITION_SIZE : DEFAULT_OTA_PARTITION_SIZE);
  if (!Number.isInteger(partitionSize) || partitionSize <= 0 || partitionSize % 4096 !== 0) {
    throw new OtaError('BAD_PARAMETER', `otaPartitionSize must be a positive multiple of 4096 (got ${partitionSize}).`);
  }
  return {
    name: config.name,
    address: (config.address ?? addressFromName(config.name)).toLowerCase(),
    chip: config.chip,
    version: config.version,
    secureVersion: config.secureVersion ?? 0,
    protocol: config.protocol ?? 'v2',
    hostPolicy: config.confirmPolicy === 'host',
    diagnosticsPass: config.diagnostics !== 'fail',
    deviceKey: config.deviceKey,
    fleetKey: config.fleetKey,
    releaseFloor,
    releaseKeys: releaseKeys.map((k) => Buffer.from(k)),
    allowUnauthenticated: config.allowUnauthenticated === true,
    provisioningWindowMs: windowMs,
    signedImagesRequired: config.signedImagesRequired === true,
    allowDowngrade: config.allowDowngrade ?? false,
    partitionSize,
    resumeTimeoutMs: config.resumeTimeoutMs ?? DeviceDefaults.RESUME_TIMEOUT_MS,
    maxMtu: config.maxMtu ?? (seed ? SEED_MAX_MTU : DEFAULT_MAX_MTU),
    timing: flashTiming(config.flashSlowdown ?? 1),
    maxChunk: FIRMWARE_MAX_CHUNK,
    window: DeviceDefaults.WINDOW,
    ackInterval: DeviceDefaults.ACK_INTERVAL,
    model: resolveTuning(config.name, tuning),
  };
}

function resolveTuning(name: string, tuning: Partial<ModelTuning>): ModelTuning {
  const model = { ...DEFAULT_MODEL_TUNING, ...tuning };
  const bad = (field: string, value: number, rule: string): OtaError =>
    new OtaError('BAD_PARAMETER', `Simulated device ${name}: ${field} must be ${rule} (got ${value}).`);
  if (!Number.isInteger(model.chipRevision) || model.chipRevision < 0 || model.chipRevision > 0xffff) throw bad('chipRevision', model.chipRevision, 'an integer 0..65535');
  if (!Number.isInteger(model.freeHeapBytes) || model.freeHeapBytes < 0) throw bad('freeHeapBytes', model.freeHeapBytes, 'a non-negative integer');
  if (!Number.isInteger(model.dataLength) || model.dataLength < 27 || model.dataLength > 251) throw bad('dataLength', model.dataLength, 'an integer 27..251');
  if (!Number.isFinite(model.diagnosticsMs) || model.diagnosticsMs < 0) throw bad('diagnosticsMs', model.diagnosticsMs, 'a non-negative number');
  return model;
}
