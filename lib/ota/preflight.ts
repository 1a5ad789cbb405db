/**
 * Everything flashDevice checks before the radio is touched (the image, the options) and the checks
 * against the device's own facts once connected (chip, downgrade), all as OtaErrors with stable codes.
 */
import { OtaError } from '../errors';
import { appHash, checkImageForTarget, fileSha256, validateAppImage } from '../image';
import type { ParsedImage } from '../image/types';
import { isChipName } from '../image/chips';
import { checkLegacyImageSize, SEED_PARTITION_SIZE } from '../protocol/legacy-client';
import { checkManifestMatchesImage } from '../security/check';
import { MASTER_KEY_SIZE } from '../security/keys';
import { decodeManifest, type Manifest } from '../security/manifest';
import { checkDeviceSpec, type DeviceSpec } from './device-ref';
import type { ImageStore } from '../delta/image-store';
import type { DeviceFacts } from './protocol-session';
import { openBaseImages, type EncodingOption } from './transfer-choice';
import type { FirmwareSummary, FlashOptions } from './types';

export interface FlashPlan {
  device: DeviceSpec;
  image: Buffer;
  parsed: ParsedImage;
  fileSha256: string;
  appSha256: string;
  after: FirmwareSummary;
  encoding: EncodingOption;
  /** FlashOptions.baseImages as a store (null: none, so no delta). */
  baseImages: ImageStore | null;
  protocol: 'auto' | 'v2' | 'legacy';
  maxAttempts: number;
  reboot: boolean;
  preventDowngrade: boolean;
  fleetKey?: Buffer;
  /** Plant master key: the session key of each device is derived from it and the device id of its Status. */
  masterKey?: Buffer;
  /** The signed manifest as given (sent with BEGIN to devices that hold release keys) and decoded. */
  manifest?: { bytes: Buffer; decoded: Manifest };
  /** OTA partition size of a seed-firmware device (FlashOptions.legacyPartitionSize). */
  legacyPartitionSize: number;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new OtaError('BAD_OPTION', `${name} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
}

export function checkFleetKey(key: unknown): Buffer | undefined {
  if (key === undefined || key === null) return undefined;
  if (!Buffer.isBuffer(key) || key.length !== 32) {
    throw new OtaError('BAD_FLEET_KEY', `the fleet key must be 32 bytes; got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}`);
  }
  return key;
}

export function checkMasterKey(key: unknown): Buffer | undefined {
  if (key === undefined || key === null) return undefined;
  if (!Buffer.isBuffer(key) || key.length !== MASTER_KEY_SIZE) {
    throw new OtaError('BAD_KEY', `the plant master key must be ${MASTER_KEY_SIZE} bytes; got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}`);
  }
  return key;
}

/** The session key options: at most one of masterKey (per-device keys) and fleetKey (one shared key). */
export function checkKeyOptions(options: { fleetKey?: unknown; masterKey?: unknown }): { fleetKey?: Buffer; masterKey?: Buffer } {
  const fleetKey = checkFleetKey(options.fleetKey);
  const masterKey = checkMasterKey(options.masterKey);
  if (fleetKey && masterKey) {
    throw new OtaError('BAD_OPTION', 'masterKey and fleetKey are both set: give the plant master key (per-device keys, recommended) or the shared fleet key, not both');
  }
  return { ...(fleetKey ? { fleetKey } : {}), ...(masterKey ? { masterKey } : {}) };
}

/** The manifest against the image (MANIFEST_INVALID / MANIFEST_MISMATCH), before any BLE activity. */
function checkManifestOption(manifest: unknown, image: Buffer): FlashPlan['manifest'] {
  if (manifest === undefined || manifest === null) return undefined;
  if (!Buffer.isBuffer(manifest)) throw new OtaError('BAD_OPTION', `manifest must be a Buffer (the "BOM1" file), got ${typeof manifest}`);
  const decoded = decodeManifest(manifest);
  const mismatch = checkManifestMatchesImage(decoded, image, null);
  if (mismatch) throw mismatch;
  return { bytes: manifest, decoded };
}

/** Image and option checks: throws before any BLE activity. */
export function planFlash(options: FlashOptions): FlashPlan {
  if (!options || typeof options !== 'object') throw new OtaError('BAD_OPTION', 'flashDevice needs an options object with device and image');
  const parsed = validateAppImage(options.image);
  const device = checkDeviceSpec(options.device);
  const desc = parsed.appDesc;
  if (options.expectedChip !== undefined) {
    if (!isChipName(options.expectedChip)) throw new OtaError('BAD_OPTION', `expectedChip ${JSON.stringify(options.expectedChip)} is not a chip name`);
    if (parsed.chip !== options.expectedChip) {
      throw new OtaError('WRONG_CHIP', `the image is built for ${parsed.chip ?? 'an unknown chip'}, but ${options.expectedChip} was expected`, { imageChip: parsed.chip, expectedChip: options.expectedChip });
    }
  }
  if (options.expectedVersion !== undefined && desc?.version !== options.expectedVersion) {
    throw new OtaError('VERSION_MISMATCH', `the image's version is ${desc?.version ?? 'unknown'}, but ${options.expectedVersion} was expected`, { imageVersion: desc?.version ?? null, expectedVersion: options.expectedVersion });
  }
  const maxAttempts = options.maxAttempts ?? 5;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) throw new OtaError('BAD_OPTION', `maxAttempts must be a whole number from 1 to 100; got ${String(maxAttempts)}`);
  const image = options.image;
  const protocol = oneOf('protocol', options.protocol, ['auto', 'v2', 'legacy'] as const, 'auto');
  const legacyPartitionSize = options.legacyPartitionSize ?? SEED_PARTITION_SIZE;
  // Validates the option whatever the protocol; the size itself only binds a seed device.
  checkLegacyImageSize(protocol === 'legacy' ? image.length : 0, legacyPartitionSize);
  const appSha256 = appHash(image).toString('hex');
  const keys = checkKeyOptions(options);
  const manifest = checkManifestOption(options.manifest, image);
  return {
    device,
    image,
    parsed,
    fileSha256: fileSha256(image).toString('hex'),
    appSha256,
    after: { version: desc?.version ?? null, state: 'pending-verify', imageSha256: appSha256, projectName: desc?.projectName ?? null },
    encoding: oneOf('encoding', options.encoding, ['auto', 'raw', 'deflate', 'delta'] as const, 'auto'),
    baseImages: openBaseImages(options.baseImages),
    protocol,
    maxAttempts,
    reboot: options.reboot !== false,
    preventDowngrade: options.preventDowngrade !== false,
    ...keys,
    ...(manifest ? { manifest } : {}),
    legacyPartitionSize,
  };
}

/** Checks against what the device says it is; throws WRONG_CHIP / DOWNGRADE / IMAGE_TOO_LARGE. */
export function checkAgainstDevice(plan: FlashPlan, facts: DeviceFacts, partitionSize?: number): void {
  if (!facts.chip) return;
  checkImageForTarget(plan.parsed, {
    chip: facts.chip,
    partitionSize: partitionSize ?? Number.MAX_SAFE_INTEGER,
    runningSecureVersion: facts.secureVersion ?? undefined,
    runningVersion: facts.version ?? undefined,
    preventDowngrade: plan.preventDowngrade,
  });
}

export function summaryOf(facts: DeviceFacts): FirmwareSummary {
  return { version: facts.version, state: facts.state, imageSha256: facts.runningSha256, projectName: facts.projectName };
}
