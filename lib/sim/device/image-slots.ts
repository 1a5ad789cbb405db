/**
 * The persistent part of the device: the two OTA app partitions, otadata and NVS. Everything here
 * survives reboots and power loss; everything else in the model is RAM.
 */
import { createHash } from 'crypto';
import { OtaError } from '../../errors';
import { formatChipRev, hasMaxChipRev } from '../../image/header';
import { validateAppImage } from '../../image/validate';
import type { ChipName } from '../types';
import { CHIP_IDS } from '../../protocol/constants';
import { Nvs } from './nvs';
import { OtaData, SLOT_LABELS, SlotIndex } from './ota-data';
import { SparseFlash } from './sparse-flash';
import { FlashFaults } from './flash-faults';
import { SECTOR_SIZE } from './flash-timing';

export const DEFAULT_OTA_PARTITION_SIZE = 0x1e0000;

export class DeviceFlash {
  readonly slots: [SparseFlash, SparseFlash];
  /** Bytes from the start of each slot that were ever programmed (where an image can be found). */
  private readonly extent: [number, number] = [0, 0];
  readonly otadata = new OtaData();
  readonly nvs = new Nvs();
  /** Fault injection on the app partitions' erase/program operations (null until defer is given). */
  readonly faults: FlashFaults | null;
  private bootSwitches = 0;

  constructor(
    readonly partitionSize: number,
    readonly chip: ChipName,
    /** The chip's revision as major * 100 + minor (efuse_hal_chip_revision). */
    readonly chipRevision = 0,
    /** Runs a function on the next clock step (enables flash fault injection). */
    defer?: (fn: () => void) => void,
  ) {
    this.faults = defer ? new FlashFaults(defer) : null;
    const faults = this.faults ?? undefined;
    this.slots = [new SparseFlash(SLOT_LABELS[0], partitionSize, faults), new SparseFlash(SLOT_LABELS[1], partitionSize, faults)];
  }

  /**
   * What `idf.py flash` does at the factory: the image in ota_0 and otadata erased (ota_data_initial.bin);
   * the first boot makes ota_0 valid (bootloader.ts, set_actual_ota_seq).
   */
  writeFactoryImage(image: Buffer): void {
    if (image.length > this.partitionSize) {
      throw new OtaError('IMAGE_TOO_LARGE', `The factory image (${image.length} bytes) does not fit the ${this.partitionSize}-byte OTA partition.`);
    }
    this.slots[0].eraseAll();
    this.slots[0].adoptSectors(factorySectors(image));
    this.extent[0] = Math.max(this.extent[0], image.length);
    this.otadata.eraseAll();
  }

  /** Erase + program operations on the app partitions since power-on (the factory image not counted). */
  get opCount(): number {
    return this.slots.reduce((sum, f) => sum + f.erases + f.programs, 0);
  }

  /**
   * Installs since power-on: successful esp_ota_set_boot_partition calls at the end of an update (the boot
   * partition switched to a newly written image). Read by tests that count how often a device was updated.
   */
  get installs(): number {
    return this.bootSwitches;
  }

  /** The firmware switched the boot partition to the image it just wrote. */
  noteInstall(): void {
    this.bootSwitches++;
  }

  program(slot: SlotIndex, offset: number, data: Buffer): void {
    this.slots[slot].program(offset, data);
    this.extent[slot] = Math.max(this.extent[slot], offset + data.length);
  }

  /** Starting an update of a slot forgets what it held (its extent restarts as it is rewritten). */
  resetExtent(slot: SlotIndex): void {
    this.extent[slot] = 0;
  }

  /** The bytes of a slot that may hold an image (trailing erased flash is not part of it). */
  imageBytes(slot: SlotIndex): Buffer {
    return this.slots[slot].read(0, this.extent[slot]);
  }

  /**
   * esp_image_verify as esp_ota_end and the bootloader run it: format, checksum, appended SHA-256, the
   * chip the image was built for and its chip revision range. Returns null when valid, else the reason.
   */
  verifyImage(slot: SlotIndex): OtaError | null {
    return verifyAppImage(this.imageBytes(slot), this.chip, this.chipRevision);
  }

  /** Bytes esp_image_verify reads for a slot (pessimistic: every byte ever programmed there). */
  imageExtent(slot: SlotIndex): number {
    return this.extent[slot];
  }
}

/**
 * The factory image cut into erased-flash sectors. The last image's sectors are kept (by content), so a
 * fleet of devices that start with the same image share them until one programs a sector (copy on write).
 */
let lastFactory: { digest: string; sectors: Buffer[] } | null = null;

function factorySectors(image: Buffer): Buffer[] {
  const digest = createHash('sha256').update(image).digest('hex');
  if (lastFactory?.digest === digest) return lastFactory.sectors;
  const sectors: Buffer[] = [];
  for (let at = 0; at < image.length; at += SECTOR_SIZE) {
    const sector = Buffer.alloc(SECTOR_SIZE, 0xff);
    image.copy(sector, 0, at, Math.min(at + SECTOR_SIZE, image.length));
    sectors.push(sector);
  }
  lastFactory = { digest, sectors };
  return sectors;
}

/**
 * esp_image_verify's checks, chip validity as bootloader_common_check_chip_validity
 * (bootloader_common_loader.c:85-119, called from esp_image_format.c:335): chip id, revision >=
 * min_chip_rev_full, and revision <= max_chip_rev_full when that field is set (not 0, not 0xFFFF).
 */
export function verifyAppImage(image: Buffer, chip: ChipName, chipRevision = 0): OtaError | null {
  try {
    const parsed = validateAppImage(image);
    if (parsed.chipId !== CHIP_IDS[chip]) {
      return new OtaError('WRONG_CHIP', `The image is built for chip id ${parsed.chipId}, this device is an ${chip}.`);
    }
    const header = parsed.header;
    if (header && (chipRevision < header.minChipRevFull || (hasMaxChipRev(header.maxChipRevFull) && chipRevision > header.maxChipRevFull))) {
      return new OtaError('CHIP_REVISION_UNSUPPORTED', `The image supports chip revisions ${formatChipRev(header.minChipRevFull)} to ${formatChipRev(header.maxChipRevFull)}, this chip is ${formatChipRev(chipRevision)}.`);
    }
    return null;
  } catch (err) {
    return err instanceof OtaError ? err : new OtaError('INTERNAL', String(err));
  }
}
