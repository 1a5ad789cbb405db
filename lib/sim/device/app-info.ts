/**
 * Facts about an app image as the running firmware reports them (esp_app_get_description,
 * esp_partition_get_sha256): version strings, secure_version, chip id and the app hash.
 */
import { appHash } from '../../image/hash';
import { parseImage } from '../../image/parse';

export interface AppInfo {
  partitionLabel: string;
  version: string;
  projectName: string;
  idfVersion: string;
  secureVersion: number;
  chipId: number;
  /** SHA-256 from offset 0 through the checksum byte (what ESP-IDF reports for the running app). */
  sha256: Buffer;
}

export function describeApp(image: Buffer, partitionLabel: string): AppInfo {
  const parsed = parseImage(image);
  const desc = parsed.appDesc;
  return {
    partitionLabel,
    version: desc?.version ?? '',
    projectName: desc?.projectName ?? '',
    idfVersion: desc?.idfVer ?? '',
    secureVersion: desc?.secureVersion ?? 0,
    chipId: parsed.chipId ?? 0,
    sha256: parsed.checksumOffset === null ? Buffer.alloc(32) : appHash(image),
  };
}
