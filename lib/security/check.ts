/**
 * The host's security checks before BEGIN (CONTRACT §G, docs/SECURITY.md): everything the device would
 * refuse that the host can already see from the device's Status/caps, the image and the manifest, so a
 * refused update costs no transfer and the technician gets the reason at once. A pure function: the
 * caller reads Status, gives the facts and throws what comes back.
 */
import type { KeyObject } from 'crypto';
import { OtaError } from '../errors';
import { chipNameFromId, fileSha256, parseImage } from '../image';
import { Caps } from '../protocol/constants';
import { formatDeviceId, parseDeviceId } from './device-id';
import { decodeManifest, verifyManifest, type Manifest } from './manifest';

/** What the device reports (Status format 2); fields a format-1 device lacks are undefined and skipped. */
export interface DeviceSecurityState {
  caps: number;
  /** ESP image header chip id of the device. */
  chipId?: number | null;
  /** Bytes of the partition the next BEGIN writes; 0 or undefined: unknown. */
  updatePartitionSize?: number;
  /** Lowest manifest release the device accepts; 0: none yet. */
  releaseFloor?: number;
  /** The device's base MAC: 6 bytes, or written "aa:bb:cc:dd:ee:ff" as the Status decoder gives it. */
  deviceId?: Buffer | string | null;
  /** Bit i: release key i is provisioned. */
  releaseKeyIds?: number;
}

export interface BeginCheckInput {
  device: DeviceSecurityState;
  /** The image file as it will be announced in BEGIN (image_size, sha256). */
  image: Buffer;
  /** The manifest to send with BEGIN, raw or decoded. */
  manifest?: Buffer | Manifest | null;
  /** A session key is configured (fleet key or master key). */
  hasKey: boolean;
  /** Current time (ms since 1970, or a Date) for the manifest's not_after. */
  now: number | Date;
  /** The delta base (running_sha256 of the base image) when the transfer is a delta. */
  baseSha256?: Buffer | null;
  /** When given, the manifest's signature is checked on the host too (the device always checks it). */
  publicKeys?: ReadonlyArray<KeyObject | undefined>;
}

function mismatch(field: string, manifestValue: unknown, imageValue: unknown): OtaError {
  return new OtaError(
    'MANIFEST_MISMATCH',
    `the manifest does not belong to this image: its ${field} is ${String(manifestValue)}, the image's is ${String(imageValue)}`,
    { field, manifest: manifestValue, image: imageValue },
  );
}

function decoded(manifest: Buffer | Manifest): Manifest | OtaError {
  if (!Buffer.isBuffer(manifest)) return manifest;
  try {
    return decodeManifest(manifest);
  } catch (err) {
    return err as OtaError;
  }
}

function chipLabel(id: number): string {
  return chipNameFromId(id) ?? `chip id ${id}`;
}

/** The manifest against the image it is sent with (the device checks the same with BEGIN and the header). */
export function checkManifestMatchesImage(m: Manifest, image: Buffer, baseSha256: Buffer | null | undefined): OtaError | null {
  const parsed = parseImage(image);
  if (m.imageSize !== image.length) return mismatch('image_size', m.imageSize, image.length);
  const sha = fileSha256(image);
  if (!m.imageSha256.equals(sha)) return mismatch('image_sha256', m.imageSha256.toString('hex'), sha.toString('hex'));
  if (parsed.chipId !== null && m.chipId !== parsed.chipId) return mismatch('chip', chipLabel(m.chipId), chipLabel(parsed.chipId));
  const desc = parsed.appDesc;
  if (desc) {
    if (m.secureVersion !== desc.secureVersion) return mismatch('secure_version', m.secureVersion, desc.secureVersion);
    if (m.projectName !== desc.projectName) return mismatch('project_name', m.projectName, desc.projectName);
    if (m.appVersion !== desc.version) return mismatch('app_version', m.appVersion, desc.version);
  }
  if (m.baseSha256.some((b) => b !== 0)) {
    if (!baseSha256) return new OtaError('MANIFEST_MISMATCH', `the manifest allows only a delta from the image ${m.baseSha256.toString('hex')}, and this transfer is a full image`, { field: 'base_sha256' });
    if (!m.baseSha256.equals(baseSha256)) return mismatch('base_sha256', m.baseSha256.toString('hex'), baseSha256.toString('hex'));
  }
  return null;
}

/** The manifest against the device it is for. */
function checkManifestForDevice(m: Manifest, device: DeviceSecurityState, nowMs: number): OtaError | null {
  if (device.chipId !== undefined && device.chipId !== null && m.chipId !== device.chipId) {
    return new OtaError('WRONG_CHIP', `the manifest is for ${chipLabel(m.chipId)}, the device is ${chipLabel(device.chipId)}`, { manifestChipId: m.chipId, deviceChipId: device.chipId });
  }
  if (device.releaseKeyIds !== undefined && device.releaseKeyIds !== 0 && (device.releaseKeyIds & (1 << m.keyId)) === 0) {
    const held = [0, 1, 2, 3].filter((i) => device.releaseKeyIds! & (1 << i));
    return new OtaError('MANIFEST_INVALID', `the manifest is signed with release key ${m.keyId}, which the device does not hold (it holds key ${held.join(', ')})`, { keyId: m.keyId, deviceKeyIds: held });
  }
  if (device.releaseFloor !== undefined && m.release < device.releaseFloor) {
    return new OtaError('RELEASE_TOO_OLD', `the manifest's release ${m.release} is older than the device's release floor ${device.releaseFloor} (it has confirmed a newer release)`, { release: m.release, releaseFloor: device.releaseFloor });
  }
  if (m.notAfter !== 0 && nowMs > m.notAfter * 1000) {
    return new OtaError('MANIFEST_EXPIRED', `the manifest expired at ${new Date(m.notAfter * 1000).toISOString()}: sign the release again`, { notAfter: m.notAfter });
  }
  const deviceId = device.deviceId ? parseDeviceId(device.deviceId) : null;
  if (m.deviceIds.length > 0 && deviceId && !m.deviceIds.some((id) => id.equals(deviceId))) {
    return new OtaError('DEVICE_NOT_ALLOWED', `the manifest allows ${m.deviceIds.length} device(s), and ${formatDeviceId(deviceId)} is not among them`, { deviceId: formatDeviceId(deviceId) });
  }
  return null;
}

/**
 * The first reason the device would refuse this BEGIN, or null. Order: partition size, not provisioned,
 * key missing, unsigned image, manifest missing, manifest broken / not for this image / not for this
 * device (chip, key, release floor, expiry, allow-list).
 *
 * A manifest given to a device that neither requires one nor holds a release key (releaseKeyIds 0) is not
 * refused here: whether to send it is the caller's choice (the device would answer MANIFEST_INVALID).
 */
export function checkBeforeBegin(input: BeginCheckInput): OtaError | null {
  const { device, image } = input;
  const caps = device.caps;
  if (device.updatePartitionSize && image.length > device.updatePartitionSize) {
    return new OtaError('IMAGE_TOO_LARGE', `the image is ${image.length} bytes, the device's update partition ${device.updatePartitionSize} bytes (${image.length - device.updatePartitionSize} too many)`, { imageSize: image.length, partitionSize: device.updatePartitionSize });
  }
  if (caps & Caps.NOT_PROVISIONED) {
    return new OtaError('DEVICE_NOT_PROVISIONED', 'the device has no session key and no release key, so it refuses every update: provision it (factory step, docs/SECURITY.md)');
  }
  if (caps & Caps.SESSION_KEY_REQUIRED && !input.hasKey) {
    return new OtaError('FLEET_KEY_REQUIRED', 'the device requires a session key for updates and commands, and none is configured (master key or fleet key)');
  }
  if (caps & Caps.SIGNED_IMAGES && !parseImage(image).signature) {
    return new OtaError('IMAGE_NOT_SIGNED', 'the device accepts only signed images (secure boot / signed app verification), and this image carries no signature block: send the signed build');
  }
  if (!input.manifest) {
    if (caps & Caps.MANIFEST_REQUIRED) return new OtaError('MANIFEST_REQUIRED', 'the device accepts only updates with a signed manifest, and none was given (sign the image: esp32-ble-ota sign)');
    return null;
  }
  const m = decoded(input.manifest);
  if (m instanceof OtaError) return m;
  if (input.publicKeys) {
    try {
      verifyManifest(m, input.publicKeys);
    } catch (err) {
      return err as OtaError;
    }
  }
  const nowMs = input.now instanceof Date ? input.now.getTime() : input.now;
  return checkManifestMatchesImage(m, image, input.baseSha256) ?? checkManifestForDevice(m, device, nowMs);
}
