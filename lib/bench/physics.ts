/**
 * The ceiling of the benchmark: the shortest time physics allows for one row, the larger of
 * - bytes-on-air over the link's best ATT payload rate (lib/sim/link-model.ts), plus the air time the
 *   device's flash stalls take from the link: a flash erase or program keeps the cache disabled and
 *   the device's BLE host stopped (docs/DEVICE-MODEL.md §1); its controller keeps acknowledging only
 *   until its RX buffers are full (docs/LINK-MODEL.md §4b), so each stall longer than the time the
 *   link needs to fill them loses the rest; and
 * - the image over the flash's best erase+program rate (64 KiB block erases where aligned, 4 KiB
 *   sectors for the rest unless the last block is faster whole (eraseEnd), 256-byte page programs;
 *   lib/sim/device/flash-timing.ts); a delta (encoding 2)
 *   sends only its patch on air but still erases and programs the whole new image, and reads the base
 *   bytes its diff parts add to (baseReadSeconds),
 * plus the device's work at END, which cannot start before the last byte is written: esp_ota_set_boot_partition
 * reads and hashes the whole image (esp_ota_end too when it has a tail to flush) and then rewrites one
 * otadata sector (erase + a 32-byte entry). docs/LINK-MODEL.md §12.
 */
import { ATT_WRITE_HEADER_BYTES, L2CAP_HEADER_BYTES, LinkProfile, bestPayloadRate, llFragments, negotiatedMtu, resolveLinkProfile } from '../sim/link-model';
import { DEFAULT_DEVICE_RX_BUFFERS } from '../sim/radio/sim-radio';
import { DATA_HEADER_SIZE } from '../protocol/constants';
import { StreamInflater } from '../sim/device/inflate';
import { inflateSync } from 'zlib';
import { PatchApplier } from '../delta/apply';
import { baseImageBytes } from '../delta/patch';
import { BLOCK_ERASE_MS, BLOCK_SIZE, PAGE_PROGRAM_MS, PAGE_SIZE, SECTOR_ERASE_MS, SECTOR_SIZE, VERIFY_READ_BYTES_PER_MS, WRITE_CHUNK_BYTES, eraseEnd, flashTiming, verifyTimeMs } from '../sim/device/flash-timing';
import { DEFAULT_OTA_PARTITION_SIZE } from '../sim/device/image-slots';

/** Erase + program time of `bytes` written from the start of a partition, in seconds. */
export function flashSeconds(bytes: number): number {
  const { blocks, sectors } = eraseUnits(bytes);
  const pages = Math.ceil(bytes / PAGE_SIZE);
  return (blocks * BLOCK_ERASE_MS + sectors * SECTOR_ERASE_MS + pages * PAGE_PROGRAM_MS) / 1000;
}

/** The erase commands of a session for an image of `bytes` (the writer's eraseEnd, in the simulated devices' slot). */
export function eraseUnits(bytes: number): { blocks: number; sectors: number } {
  const end = eraseEnd(bytes, DEFAULT_OTA_PARTITION_SIZE);
  const blocks = Math.floor(end / BLOCK_SIZE);
  return { blocks, sectors: (end - blocks * BLOCK_SIZE) / SECTOR_SIZE };
}

export function linkSeconds(bytesOnAir: number, scenario: string): number {
  const rate = bestPayloadRate(resolveLinkProfile(scenario));
  return Number.isFinite(rate) ? bytesOnAir / rate : 0;
}

/** The otadata entry esp_ota_set_boot_partition writes (esp_ota_select_entry_t). */
const OTADATA_ENTRY_BYTES = 32;

/**
 * Whole-image validations at END: esp_ota_set_boot_partition always validates the image before it writes
 * otadata (espressif/esp-idf components/app_update/esp_ota_ops.c:437-444); esp_ota_end validates it too
 * (:319-362), and the firmware calls it only when it has bytes to flush, i.e. when the image size is not
 * a multiple of 16; else it closes the handle with esp_ota_abort, which reads nothing (:307-317;
 * firmware/components/ble_ota/port/esp_idf/esp_port_flash.c ota_end).
 */
export function endValidations(imageBytes: number): number {
  return imageBytes % 16 === 0 ? 1 : 2;
}

/**
 * END's flash work, in seconds: the whole-image reads (endValidations) and the otadata rewrite that
 * switches the boot partition: espressif/esp-idf components/app_update/esp_ota_ops.c:364-378
 * (rewrite_ota_seq, reached from esp_ota_set_boot_partition through esp_rewrite_ota_data :390-435)
 * erases the otadata sector, then writes the entry.
 */
export function endVerifySeconds(imageBytes: number): number {
  const otadataMs = SECTOR_ERASE_MS + (OTADATA_ENTRY_BYTES / PAGE_SIZE) * PAGE_PROGRAM_MS;
  return (endValidations(imageBytes) * verifyTimeMs(flashTiming(1), imageBytes) + otadataMs) / 1000;
}

/**
 * The most ATT value bytes one LL PDU can carry on this link: the device's RX buffers hold PDUs, not
 * bytes (docs/LINK-MODEL.md §4b). Of the writes bestPayloadRate considers (the full-size one and the
 * largest that fills whole PDUs), the one that packs the most value per PDU; at MTU 23 that is 20 bytes
 * in a 27-byte PDU, at MTU 247 with DLE 244 in 251.
 */
export function valueBytesPerPdu(profile: LinkProfile): number {
  const largest = negotiatedMtu(profile, 517) - ATT_WRITE_HEADER_BYTES;
  const header = ATT_WRITE_HEADER_BYTES + L2CAP_HEADER_BYTES;
  const wholePdus = Math.floor((largest + header) / profile.dataLength) * profile.dataLength - header;
  const values = wholePdus > 0 && wholePdus < largest ? [largest, wholePdus] : [largest];
  return Math.max(...values.map((value) => value / llFragments(value + ATT_WRITE_HEADER_BYTES, profile.dataLength).length));
}

/**
 * Link time lost to flash stalls while `imageBytes` are written: each erase (blocks, then sectors, as
 * flashSeconds counts them) and each program window (WRITE_CHUNK_BYTES) beyond the time the link needs
 * to fill the device's RX buffers (as many PDUs as it has, each with the most value a PDU can carry,
 * at the link's best rate: the loss is never overstated).
 */
export function stallLossSeconds(imageBytes: number, scenario: string): number {
  const profile = resolveLinkProfile(scenario);
  const rate = bestPayloadRate(profile);
  if (!Number.isFinite(rate)) return 0;
  const fillMs = ((DEFAULT_DEVICE_RX_BUFFERS * valueBytesPerPdu(profile)) / rate) * 1000;
  const { blocks, sectors } = eraseUnits(imageBytes);
  const windows = Math.ceil(imageBytes / WRITE_CHUNK_BYTES);
  const programMs = (WRITE_CHUNK_BYTES / PAGE_SIZE) * PAGE_PROGRAM_MS;
  const lost = (stallMs: number) => Math.max(0, stallMs - fillMs);
  return (blocks * lost(BLOCK_ERASE_MS) + sectors * lost(SECTOR_ERASE_MS) + windows * lost(programMs)) / 1000;
}

/** stallLossSeconds without the program windows: what the erases alone cost the link at least. */
function eraseLossSeconds(imageBytes: number, scenario: string): number {
  const windows = Math.ceil(imageBytes / WRITE_CHUNK_BYTES);
  const programMs = (WRITE_CHUNK_BYTES / PAGE_SIZE) * PAGE_PROGRAM_MS;
  const profile = resolveLinkProfile(scenario);
  const fillMs = ((DEFAULT_DEVICE_RX_BUFFERS * valueBytesPerPdu(profile)) / bestPayloadRate(profile)) * 1000;
  return stallLossSeconds(imageBytes, scenario) - (windows * Math.max(0, programMs - fillMs)) / 1000;
}

/** What the device writes: the transfer stream and whether it is deflated (raw: the image itself). */
export interface TransferStream {
  transfer: Buffer;
  deflate: boolean;
  /** A delta (encoding 2): the transfer inflates to a patch that the device applies to this base (its running image). */
  delta?: { base: Buffer; imageSize: number };
}

/**
 * Base bytes a delta patch reads (the sum of its diff parts): the device reads them from the running
 * partition through the flash cache, which the erases and programs of the other slot stop, so they add to
 * the flash's time; at the whole-image read rate (VERIFY_READ_BYTES_PER_MS, no hashing counted: a bound).
 */
export function baseReadSeconds(stream: TransferStream): number {
  if (!stream.delta) return 0;
  const patch = inflateSync(stream.transfer);
  let at = 0;
  let diffBytes = 0;
  const uvarint = () => {
    let value = 0;
    for (let shift = 0; at < patch.length; shift += 7) {
      const byte = patch[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    return value;
  };
  while (at < patch.length) {
    const diff = uvarint();
    diffBytes += diff;
    at += diff;
    const extra = uvarint(); // (not `at += uvarint()`: that reads `at` before the call moves it)
    at += extra;
    uvarint();
  }
  return diffBytes / VERIFY_READ_BYTES_PER_MS / 1000;
}

/** Transfer bytes per step of the pipeline bound (one chunk at most, so no split point is missed by much). */
const PIPELINE_STEP = 128;
const decodedCache = new WeakMap<Buffer, number[]>();

/** Image bytes decodable from the first k * PIPELINE_STEP transfer bytes, for every k. */
function decodedPrefixes(stream: TransferStream): number[] {
  const cached = decodedCache.get(stream.transfer);
  if (cached) return cached;
  const out = [0];
  const inflater = stream.deflate || stream.delta ? new StreamInflater() : null;
  const applier = stream.delta ? new PatchApplier(baseImageBytes(stream.delta.base), stream.delta.imageSize) : null;
  let decoded = 0;
  for (let at = 0; at < stream.transfer.length; at += PIPELINE_STEP) {
    const piece = stream.transfer.subarray(at, Math.min(at + PIPELINE_STEP, stream.transfer.length));
    const inflated = inflater ? inflater.push(piece) : piece;
    decoded += applier ? applier.push(inflated).length : inflated.length;
    out.push(decoded);
  }
  decodedCache.set(stream.transfer, out);
  return out;
}

/**
 * The pipeline bound of a two-stage flow (link, then flash), in seconds: the image bytes that the first
 * k transfer bytes do not decode to cannot be programmed before more transfer bytes have arrived, so for
 * every split point k the row takes at least the air time of those k bytes (Data writes of the largest
 * chunk the MTU allows, so never overstated), plus what every erase costs at least (its time beyond the
 * RX buffers while the link runs, its whole time otherwise), plus programming the rest of the image.
 * max(link, flash) is this bound at its two ends; in between it sees an image whose last transfer bytes
 * decode to much (a deflated tail of zeros: 480 B of transfer that decode to 58 KiB, 90 ms of page
 * programs that can only start after they arrived).
 */
export function pipelineSeconds(stream: TransferStream, imageBytes: number, scenario: string): number {
  const profile = resolveLinkProfile(scenario);
  const rate = bestPayloadRate(profile);
  if (!Number.isFinite(rate)) return 0;
  const chunk = negotiatedMtu(profile, 517) - ATT_WRITE_HEADER_BYTES - DATA_HEADER_SIZE;
  const erases = eraseLossSeconds(imageBytes, scenario);
  const prefixes = decodedPrefixes(stream);
  let best = 0;
  for (let k = 0; k < prefixes.length; k++) {
    const sent = Math.min(k * PIPELINE_STEP, stream.transfer.length);
    const air = sent + DATA_HEADER_SIZE * Math.floor(sent / chunk);
    const programMs = ((imageBytes - prefixes[k]) / PAGE_SIZE) * PAGE_PROGRAM_MS;
    best = Math.max(best, air / rate + erases + programMs / 1000);
  }
  return best;
}

/** stream: what was sent, for the pipeline bound (without it the ceiling is max(link, flash) alone). */
export function ceilingSeconds(bytesOnAir: number, imageBytes: number, scenario: string, stream?: TransferStream): number {
  const link = linkSeconds(bytesOnAir, scenario) + stallLossSeconds(imageBytes, scenario);
  const pipeline = stream ? pipelineSeconds(stream, imageBytes, scenario) : 0;
  // A delta still erases and programs the whole new image, and reads the base besides.
  const flash = flashSeconds(imageBytes) + (stream ? baseReadSeconds(stream) : 0);
  return Math.max(link, flash, pipeline) + endVerifySeconds(imageBytes);
}
