/**
 * The bench's v2 devices as a plant ships them (PROTOCOL.md §7, §12): a per-device session key derived from
 * the plant master key, release public keys provisioned, so BEGIN needs a valid tag and a signed manifest.
 * 'session-key' leaves out the release keys (no manifest), 'open' is the development opt-out (neither).
 */
import { createPrivateKey, type KeyObject } from 'crypto';
import { deriveDeviceKey, generateReleaseKeyPair } from '../security/keys';
import { manifestForImage } from '../security/release';

export type BenchSecurity = 'keyed' | 'session-key' | 'open';
export const BENCH_SECURITY: readonly BenchSecurity[] = ['keyed', 'session-key', 'open'];

/** One plant for the whole run: its master key and release key pair (made once, they cost an EC key generation). */
let plant: { masterKey: Buffer; releaseKey: KeyObject; releasePublic: Buffer } | null = null;

function thePlant() {
  if (!plant) {
    const pair = generateReleaseKeyPair();
    plant = { masterKey: Buffer.alloc(32, 0x5a), releaseKey: createPrivateKey(pair.privateKeyPem), releasePublic: pair.publicKeySec1 };
  }
  return plant;
}

/** What createSimFleet gets: the master key (each device derives its own key) and the release keys. */
export function fleetSecurity(security: BenchSecurity): { masterKey?: Buffer; releaseKeys?: Buffer[]; allowUnauthenticated: boolean } {
  if (security === 'open') return { allowUnauthenticated: true };
  const p = thePlant();
  return { masterKey: p.masterKey, releaseKeys: security === 'keyed' ? [p.releasePublic] : undefined, allowUnauthenticated: false };
}

const manifests = new WeakMap<Buffer, Buffer>();

/**
 * What flashDevice gets for the device at `address`: its own session key (derived here, as the gateway derives
 * it from the Status device_id) and, with release keys, a manifest for the image (any device, signed once per image).
 */
export function clientSecurity(security: BenchSecurity, deviceId: Buffer, image: Buffer): { fleetKey?: Buffer; manifest?: Buffer } {
  if (security === 'open') return {};
  const p = thePlant();
  const fleetKey = deriveDeviceKey(p.masterKey, deviceId);
  if (security !== 'keyed') return { fleetKey };
  let manifest = manifests.get(image);
  if (!manifest) {
    manifest = manifestForImage(image, { release: 1 }, p.releaseKey).bytes;
    manifests.set(image, manifest);
  }
  return { fleetKey, manifest };
}
