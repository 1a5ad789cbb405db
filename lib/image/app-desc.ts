/** esp_app_desc_t: the 256-byte application description at the start of the first segment's data. */
import { APP_DESC, APP_DESC_FIELD_SIZE, APP_DESC_MAGIC, APP_DESC_SIZE, BOOTLOADER_DESC_MAGIC_BYTE, SHA256_SIZE } from './format';
import { cString } from './hex';
import type { AppDescription, ImageSegment } from './types';

/** The description in the first segment, or null when that segment does not start with one. */
export function readAppDescription(buf: Buffer, segments: readonly ImageSegment[]): AppDescription | null {
  const first = segments[0];
  if (!first || first.length < APP_DESC_SIZE) return null;
  const base = first.dataOffset;
  if (buf.readUInt32LE(base + APP_DESC.magic) !== APP_DESC_MAGIC) return null;
  return {
    magic: APP_DESC_MAGIC,
    secureVersion: buf.readUInt32LE(base + APP_DESC.secureVersion),
    version: cString(buf, base + APP_DESC.version, APP_DESC_FIELD_SIZE.version),
    projectName: cString(buf, base + APP_DESC.projectName, APP_DESC_FIELD_SIZE.projectName),
    time: cString(buf, base + APP_DESC.time, APP_DESC_FIELD_SIZE.time),
    date: cString(buf, base + APP_DESC.date, APP_DESC_FIELD_SIZE.date),
    idfVer: cString(buf, base + APP_DESC.idfVer, APP_DESC_FIELD_SIZE.idfVer),
    appElfSha256: buf.subarray(base + APP_DESC.appElfSha256, base + APP_DESC.appElfSha256 + SHA256_SIZE).toString('hex'),
  };
}

/** ESP-IDF >= 5.2 bootloaders begin their first segment with esp_bootloader_desc_t (magic byte 0x50). */
export function hasBootloaderDescription(buf: Buffer, segments: readonly ImageSegment[]): boolean {
  const first = segments[0];
  return !!first && first.length >= 4 && buf[first.dataOffset] === BOOTLOADER_DESC_MAGIC_BYTE;
}

/** What encodeAppDescription writes: the parsed description without its magic, the ELF hash as bytes. */
export interface AppDescriptionFields extends Omit<AppDescription, 'magic' | 'appElfSha256'> {
  appElfSha256: Buffer;
}

/** The 256 bytes of an esp_app_desc_t (strings cut to their field size minus the NUL). */
export function encodeAppDescription(fields: AppDescriptionFields): Buffer {
  const out = Buffer.alloc(APP_DESC_SIZE);
  out.writeUInt32LE(APP_DESC_MAGIC, APP_DESC.magic);
  out.writeUInt32LE(fields.secureVersion >>> 0, APP_DESC.secureVersion);
  const put = (text: string, offset: number, size: number) => out.write(text.slice(0, size - 1), offset, size - 1, 'latin1');
  put(fields.version, APP_DESC.version, APP_DESC_FIELD_SIZE.version);
  put(fields.projectName, APP_DESC.projectName, APP_DESC_FIELD_SIZE.projectName);
  put(fields.time, APP_DESC.time, APP_DESC_FIELD_SIZE.time);
  put(fields.date, APP_DESC.date, APP_DESC_FIELD_SIZE.date);
  put(fields.idfVer, APP_DESC.idfVer, APP_DESC_FIELD_SIZE.idfVer);
  fields.appElfSha256.copy(out, APP_DESC.appElfSha256, 0, SHA256_SIZE);
  return out;
}
