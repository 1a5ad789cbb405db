/**
 * The security step of a v2 attempt, after Status is read and before BEGIN (docs/SECURITY.md, PROTOCOL.md
 * §12.4): the session key for this device (derived from the master key and its device id, or the fleet
 * key), then lib/security's checkBeforeBegin against what Status reports, so everything the device would
 * refuse that the host can see is refused before anything is sent. Returns the manifest to send with BEGIN.
 */
import { OtaError } from '../errors';
import { Caps } from '../protocol/constants';
import { checkBeforeBegin, type DeviceSecurityState } from '../security/check';
import { sessionKeyFor } from '../security/keys';
import type { FlashPlan } from './preflight';

export interface KeyOptions {
  fleetKey?: Buffer;
  masterKey?: Buffer;
}

/**
 * The session key for a device: the fleet key as it is, or the master key's derivation for the device id.
 * A device that reports no id (Status format 1) and requires no key gets none; one that requires a key
 * gets DEVICE_ID_UNKNOWN (its key cannot be derived).
 */
export function sessionKeyForDevice(keys: KeyOptions, caps: number, deviceId: Buffer | string | null | undefined): Buffer | undefined {
  if (keys.masterKey && !keys.fleetKey && !deviceId && (caps & Caps.SESSION_KEY_REQUIRED) === 0) return undefined;
  return sessionKeyFor(keys, deviceId);
}

/** Whether the device verifies manifests: it holds release keys (Status release_key_ids, or caps bit 6). */
export function deviceTakesManifest(device: DeviceSecurityState): boolean {
  return (device.releaseKeyIds ?? 0) !== 0 || (device.caps & Caps.MANIFEST_REQUIRED) !== 0;
}

export interface SecureBegin {
  sessionKey: Buffer | undefined;
  /** The manifest to send with BEGIN (only to a device that holds release keys). */
  manifest: Buffer | undefined;
}

/** Throws the first reason the device would refuse this BEGIN (OtaError), else the key and manifest to use. */
export function prepareSecureBegin(plan: FlashPlan, device: DeviceSecurityState, nowMs: number): SecureBegin {
  const sessionKey = sessionKeyForDevice(plan, device.caps, device.deviceId);
  const refusal: OtaError | null = checkBeforeBegin({
    device,
    image: plan.image,
    manifest: plan.manifest?.decoded ?? null,
    hasKey: sessionKey !== undefined,
    now: nowMs,
  });
  if (refusal) throw refusal;
  return { sessionKey, manifest: plan.manifest && deviceTakesManifest(device) ? plan.manifest.bytes : undefined };
}
