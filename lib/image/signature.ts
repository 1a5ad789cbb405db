/**
 * Signature blocks after the image. Secure Boot V1 (and ECDSA signed apps without secure boot): a 68-byte
 * block {u32 version 0, signature[64]} right after the image. Secure Boot V2: a sector starting on the
 * next 4 KiB boundary with up to 3 blocks of 1216 bytes (magic 0xE7, version 2 RSA-PSS or 3 ECDSA,
 * image digest, key, signature, CRC32 of the first 1196 bytes).
 */
import { crc32, sha256 } from './digest';
import {
  SIGNATURE_V1_BLOCK_SIZE,
  SIGNATURE_V2_BLOCK_SIZE,
  SIGNATURE_V2_CRC_COVERED,
  SIGNATURE_V2_MAGIC,
  SIGNATURE_V2_MAX_BLOCKS,
  SIGNATURE_V2_SECTOR_SIZE,
  SIGNATURE_V2_VERSION_ECDSA,
  SIGNATURE_V2_VERSION_RSA,
} from './format';
import type { SignatureInfo } from './types';

/** Looks for a signature after `imageLength` bytes of image; null when there is none. */
export function detectSignature(buf: Buffer, imageLength: number): SignatureInfo | null {
  return detectSecureBootV2(buf, imageLength) ?? detectSecureBootV1(buf, imageLength);
}

function isV2Block(buf: Buffer, offset: number): boolean {
  if (offset + SIGNATURE_V2_BLOCK_SIZE > buf.length || buf[offset] !== SIGNATURE_V2_MAGIC) return false;
  return buf[offset + 1] === SIGNATURE_V2_VERSION_RSA || buf[offset + 1] === SIGNATURE_V2_VERSION_ECDSA;
}

function detectSecureBootV2(buf: Buffer, imageLength: number): SignatureInfo | null {
  const sector = Math.ceil(imageLength / SIGNATURE_V2_SECTOR_SIZE) * SIGNATURE_V2_SECTOR_SIZE;
  if (!isV2Block(buf, sector)) return null;
  // The digest covers the image padded up to the sector.
  const digest = sha256(buf.subarray(0, sector));
  let count = 0;
  let crcOk = true;
  let digestOk = true;
  for (let i = 0; i < SIGNATURE_V2_MAX_BLOCKS; i++) {
    const block = sector + i * SIGNATURE_V2_BLOCK_SIZE;
    if (!isV2Block(buf, block)) break;
    count++;
    const stored = buf.readUInt32LE(block + SIGNATURE_V2_CRC_COVERED);
    if (crc32(buf.subarray(block, block + SIGNATURE_V2_CRC_COVERED)) !== stored) crcOk = false;
    if (!buf.subarray(block + 4, block + 36).equals(digest)) digestOk = false;
  }
  const kind = buf[sector + 1] === SIGNATURE_V2_VERSION_RSA ? 'secure-boot-v2-rsa' : 'secure-boot-v2-ecdsa';
  return { kind, offset: sector, count, crcOk, digestOk };
}

function detectSecureBootV1(buf: Buffer, imageLength: number): SignatureInfo | null {
  if (imageLength + SIGNATURE_V1_BLOCK_SIZE > buf.length) return null;
  if (buf.readUInt32LE(imageLength) !== 0) return null;
  const signature = buf.subarray(imageLength + 4, imageLength + SIGNATURE_V1_BLOCK_SIZE);
  // Zero or erased-flash padding is not a signature.
  if (signature.every((b) => b === 0) || signature.every((b) => b === 0xff)) return null;
  return { kind: 'secure-boot-v1', offset: imageLength, count: 1, crcOk: null, digestOk: null };
}
