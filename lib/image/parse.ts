/**
 * parseImage: reads everything it can from a file and lists what is wrong, in check order.
 * It never throws for bad content; validateAppImage turns the first problem into an OtaError.
 */
import { hasBootloaderDescription, readAppDescription } from './app-desc';
import { chipNameFromId } from './chips';
import { checksumOffsetAfter, computeChecksum } from './checksum';
import { sha256 } from './digest';
import { problem } from './error-codes';
import { describeForeignFile } from './file-kind';
import { IMAGE_HEADER_SIZE, IMAGE_MAGIC, MAX_SEGMENTS, SHA256_SIZE } from './format';
import { formatChipRev, hasMaxChipRev, readImageHeader } from './header';
import { hex, hexBytes } from './hex';
import { detectMergedImage } from './merged';
import { walkSegments } from './segments';
import { detectSignature } from './signature';
import type { ParsedImage } from './types';

export function parseImage(input: unknown): ParsedImage {
  const result = emptyResult(Buffer.isBuffer(input) ? input.length : 0);
  if (!Buffer.isBuffer(input)) {
    return fail(result, problem('NOT_A_BUFFER',
      `The firmware image must be binary data (a Buffer), but ${describeValue(input)} was given.`,
      { type: describeValue(input) }));
  }
  const buf = input;
  if (buf.length === 0) return fail(result, problem('EMPTY_IMAGE', 'The firmware file is empty (0 bytes).'));

  const merged = detectMergedImage(buf);
  if (merged) {
    result.merged = merged;
    const where = merged.appOffset === null
      ? 'it contains no application image'
      : `the application image starts at offset ${hex(merged.appOffset)} of the file${merged.appFlashAddress !== null && merged.appFlashAddress !== merged.appOffset ? ` (flash address ${hex(merged.appFlashAddress)})` : ''}; send that application .bin (from the build directory) instead`;
    return fail(result, problem('MERGED_FLASH_IMAGE',
      `This is a merged flash image (bootloader, partition table and application in one file, as written by esptool merge_bin), not an OTA application image: ${where}.`,
      { appOffset: merged.appOffset, partitionTableOffset: merged.partitionTableOffset, appFlashAddress: merged.appFlashAddress }));
  }

  if (buf[0] !== IMAGE_MAGIC) {
    const kind = describeForeignFile(buf);
    return fail(result, problem('NOT_ESP_IMAGE',
      `This is not an ESP firmware image: it starts with byte ${hex(buf[0], 2)} instead of 0xe9${kind ? `; it looks like ${kind}` : ` (first bytes: ${hexBytes(buf, 0, 8)})`}.`,
      { firstByte: buf[0] }));
  }
  if (buf.length < IMAGE_HEADER_SIZE) {
    return fail(result, problem('TRUNCATED_IMAGE',
      `The file has only ${buf.length} bytes, fewer than the 24-byte ESP image header: the image is truncated (incomplete download or copy).`,
      { fileLength: buf.length }));
  }

  const header = readImageHeader(buf);
  result.header = header;
  result.chipId = header.chipId;
  result.chip = chipNameFromId(header.chipId);
  result.hashAppended = header.hashAppended;
  if (header.segmentCount === 0 || header.segmentCount > MAX_SEGMENTS) {
    return fail(result, problem('BAD_SEGMENT',
      `The image header says it has ${header.segmentCount} segments; an ESP image has 1 to ${MAX_SEGMENTS}: the file is damaged or not an ESP image.`,
      { segmentCount: header.segmentCount }));
  }

  if (hasMaxChipRev(header.maxChipRevFull) && header.minChipRevFull > header.maxChipRevFull) {
    // bootloader_common_loader.c (esp-idf) accepts a revision only when min <= rev <= max: no chip runs this.
    return fail(result, problem('CHIP_REVISION_UNSUPPORTED',
      `The image header asks for chip revision ${formatChipRev(header.minChipRevFull)} or newer but at most ${formatChipRev(header.maxChipRevFull)}: no chip can run it; the header is damaged or the build settings contradict each other.`,
      { minChipRevFull: header.minChipRevFull, maxChipRevFull: header.maxChipRevFull }));
  }

  const walk = walkSegments(buf, header.segmentCount, result.chip);
  result.segments = walk.segments;
  if (walk.problem) return fail(result, walk.problem);

  const checksumOffset = checksumOffsetAfter(walk.end);
  if (checksumOffset >= buf.length) {
    return fail(result, problem('TRUNCATED_IMAGE',
      `The file ends at byte ${buf.length}, before the image checksum at byte ${checksumOffset}: the image is truncated (incomplete download or copy).`,
      { fileLength: buf.length, neededLength: checksumOffset + 1 }));
  }
  result.checksumOffset = checksumOffset;
  result.checksumStored = buf[checksumOffset];
  result.checksumComputed = computeChecksum(buf, walk.segments);
  result.checksumOk = result.checksumStored === result.checksumComputed;
  if (!result.checksumOk) {
    result.problems.push(problem('BAD_CHECKSUM',
      `The image checksum does not match: the file stores ${hex(result.checksumStored, 2)} but its contents give ${hex(result.checksumComputed, 2)}, so the file was damaged or edited.`,
      { stored: result.checksumStored, computed: result.checksumComputed }));
  }

  let imageLength = checksumOffset + 1;
  if (header.hashAppended) {
    if (imageLength + SHA256_SIZE > buf.length) {
      return fail(result, problem('TRUNCATED_IMAGE',
        `The file ends at byte ${buf.length}, inside the SHA-256 hash that should end at byte ${imageLength + SHA256_SIZE}: the image is truncated (incomplete download or copy).`,
        { fileLength: buf.length, neededLength: imageLength + SHA256_SIZE }));
    }
    const stored = buf.subarray(imageLength, imageLength + SHA256_SIZE);
    const computed = sha256(buf.subarray(0, imageLength));
    result.sha256Ok = stored.equals(computed);
    if (!result.sha256Ok) {
      result.problems.push(problem('BAD_SHA256',
        `The SHA-256 hash stored in the image (${stored.toString('hex')}) does not match its contents (${computed.toString('hex')}): the file was damaged or edited after it was built.`,
        { stored: stored.toString('hex'), computed: computed.toString('hex') }));
    }
    imageLength += SHA256_SIZE;
  }
  result.imageLength = imageLength;
  result.trailingBytes = buf.length - imageLength;

  if (result.chip === null) {
    result.problems.push(problem('UNKNOWN_CHIP',
      `The image is built for chip id ${header.chipId}, which is not a chip this tool knows (esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4).`,
      { chipId: header.chipId }));
  }

  result.appDesc = readAppDescription(buf, walk.segments);
  result.looksLikeBootloader = hasBootloaderDescription(buf, walk.segments) || !walk.segments.some((s) => s.flashMapped);
  if (!result.appDesc) {
    result.problems.push(result.looksLikeBootloader
      ? problem('BOOTLOADER_IMAGE',
        'This is a bootloader image (it has no application description and runs only from RAM), not an application: send the application .bin from the build directory instead.')
      : problem('NO_APP_DESC',
        `The image has no application description (esp_app_desc_t, magic 0xabcd5432) at the start of its first segment, so its version cannot be checked; the first bytes there are ${hexBytes(buf, walk.segments[0].dataOffset, 4)}.`));
  }

  if (result.trailingBytes > 0) {
    result.signature = detectSignature(buf, imageLength);
    if (result.signature?.crcOk === false) {
      result.problems.push(problem('BAD_SIGNATURE_BLOCK',
        `The Secure Boot V2 signature sector at offset ${hex(result.signature.offset)} has a block whose CRC32 does not match: the signature was damaged.`,
        { offset: result.signature.offset }));
    }
    if (!result.signature) {
      result.warnings.push(`${result.trailingBytes} bytes follow the image (after byte ${imageLength}) and are not a signature block; the device ignores them.`);
    }
  }
  result.valid = result.problems.length === 0;
  return result;
}

function emptyResult(fileLength: number): ParsedImage {
  return {
    fileLength,
    header: null,
    chip: null,
    chipId: null,
    segments: [],
    checksumOffset: null,
    checksumStored: null,
    checksumComputed: null,
    checksumOk: null,
    hashAppended: false,
    sha256Ok: null,
    imageLength: null,
    trailingBytes: 0,
    appDesc: null,
    looksLikeBootloader: false,
    signature: null,
    merged: null,
    problems: [],
    warnings: [],
    valid: false,
  };
}

function fail(result: ParsedImage, found: ParsedImage['problems'][number]): ParsedImage {
  result.problems.push(found);
  result.valid = false;
  return result;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing (undefined)';
  if (value instanceof Uint8Array) return 'a Uint8Array';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  return `a ${typeof value}`;
}
