/**
 * The library's public operations as the Node-RED nodes and the CLI use them (lib/ota/*.ts implement
 * them on top of lib/ble's scheduler and lib/protocol's clients).
 */
import type { DeviceRef } from '../ble/central';
import type { ChipName } from '../image/chips';
import type { OtaState } from '../protocol/constants';
import type { FlashPhase, TransferProgress } from '../protocol/progress';
import type { ImageStore } from '../delta/image-store';
import type { DeltaFallback } from './transfer-choice';

export type { DeviceRef, DeltaFallback, FlashPhase, OtaState };

export interface Progress extends Omit<TransferProgress, 'transferBytesAcked' | 'transferSize'> {
  device: string;
  attempt: number;
}

/** What a device says it runs: from its advertisement (short) or its Status characteristic (full). */
export interface FirmwareSummary {
  version: string | null;
  state: OtaState;
  /** Hex SHA-256 of the running app as ESP-IDF reports it (esp_partition_get_sha256), if known. */
  imageSha256?: string | null;
  projectName?: string | null;
}

export interface FlashOptions {
  /**
   * Device id, address or advertised name, or a scan result. A name more than one device advertises
   * (every seed device is "esp32") is refused with DEVICE_NAME_AMBIGUOUS: give the address.
   */
  device: string | DeviceRef;
  image: Buffer;
  /** One shared session key, used as it is (legacy). Not together with masterKey (BAD_OPTION). */
  fleetKey?: Buffer;
  /**
   * Plant master key (32 bytes): the session key of each device is derived from it and the device id its
   * Status reports (HKDF-SHA256, lib/security/keys.ts deriveDeviceKey). Recommended over fleetKey: a key
   * taken from one device opens only that device. Not together with fleetKey (BAD_OPTION).
   */
  masterKey?: Buffer;
  /**
   * Signed update manifest ("BOM1", lib/security/manifest.ts) sent with BEGIN; required by devices that hold
   * release keys (caps bit 6, else MANIFEST_REQUIRED). Checked against image and device before BEGIN.
   */
  manifest?: Buffer;
  /**
   * 'auto' (default): a delta patch when the device supports it (caps bit 7), runs an image found in
   * baseImages and the patch is below 0.9 × the deflated image; else deflate when it saves enough; else raw.
   * 'delta': a patch or nothing (BASE_UNKNOWN / DELTA_UNSUPPORTED before BEGIN).
   */
  encoding?: 'auto' | 'raw' | 'deflate' | 'delta';
  /**
   * Base images for delta updates: an ImageStore, or a directory of app images found by the SHA-256 the
   * device reports as running (lib/delta/image-store.ts). Every image flashed successfully is added, so it
   * is the base of the next update.
   */
  baseImages?: ImageStore | string;
  protocol?: 'auto' | 'v2' | 'legacy';
  expectedChip?: ChipName;
  expectedVersion?: string;
  /** Refuse images whose secure_version / version is lower than the device's (default true). */
  preventDowngrade?: boolean;
  /** Connection attempts in total, resuming where the device left off (default 5). */
  maxAttempts?: number;
  /** How long to look for the device before DEVICE_NOT_FOUND (ms, default 10000). */
  findTimeoutMs?: number;
  /** Reboot into the new image after a successful transfer (default true). */
  reboot?: boolean;
  /** Wait while another operation holds the device (default true); false fails at once with DEVICE_BUSY. */
  waitIfBusy?: boolean;
  /** Size of the device's OTA partition when known: checked on the host before BEGIN (the device checks too). */
  partitionSize?: number;
  /**
   * OTA partition size of seed-firmware (legacy) devices (default 0x100000, ESP-IDF's two-OTA table):
   * a larger image is refused before anything is written (LEGACY_IMAGE_TOO_LARGE).
   */
  legacyPartitionSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface FlashResult {
  success: true;
  device: DeviceRef;
  protocol: 'v2' | 'legacy';
  encoding: 'raw' | 'deflate' | 'delta';
  /** running_sha256 (hex) of the base image the delta patch was made against; null for a whole image. */
  base: string | null;
  /** Bytes of the patch's zlib stream when a patch was made (sent or, in 'auto', found not worth it); else null. */
  patchBytes: number | null;
  /** Set when the device refused the patch (base mismatch, invalid patch) and the whole image was sent instead. */
  deltaFallback: DeltaFallback | null;
  /** Image size in bytes. */
  bytes: number;
  /** ATT value bytes the gateway wrote for this update (chunk headers and commands included). */
  bytesOnAir: number;
  seconds: number;
  secondsKind: 'modeled' | 'measured';
  kBps: number;
  attempts: number;
  before: FirmwareSummary | null;
  /** What the device will run after reboot: taken from the image. */
  after: FirmwareSummary;
  /** SHA-256 of the image file as sent (the BEGIN digest). */
  fileSha256: string;
}

export interface VerifyExpectations {
  version?: string;
  imageSha256?: string;
  /** Accepted states (default ['valid', 'pending-verify']). */
  states?: OtaState[];
  /** Default true: a rolled-back update fails verification. */
  forbidRollback?: boolean;
  /** Default true. */
  requireDiagnosticsPassed?: boolean;
}

export interface VerifyOptions {
  device: string | DeviceRef;
  expect: VerifyExpectations;
  /** How long to wait for the device to come back after its reboot (ms, default 30000). */
  waitMs?: number;
  /** Host confirm policy: what to send once the checks are done. */
  onPass?: 'none' | 'confirm';
  onFail?: 'none' | 'rollback';
  fleetKey?: Buffer;
  /** Plant master key for per-device session keys (as FlashOptions.masterKey); not together with fleetKey. */
  masterKey?: Buffer;
  signal?: AbortSignal;
}

export interface VerifyResult {
  passed: boolean;
  reasons: string[];
  device: DeviceRef;
  /** The decoded Status characteristic (lib/protocol/status.ts DeviceStatus). */
  status: Record<string, unknown>;
  action: 'none' | 'confirmed' | 'rolled-back';
}
