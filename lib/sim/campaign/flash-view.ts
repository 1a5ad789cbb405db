/**
 * The simulated flash of a device as the campaign reads it, whatever the implementation: the two app
 * partitions and the otadata entries. The TS model's flash is read in memory; the twin's from its
 * flash.bin (docs/TWIN.md: a header sector, the two otadata sectors, ota_0, ota_1) and nvs.bin.
 */
import * as fs from 'fs';
import * as path from 'path';
import { OtaStateCode } from '../../protocol/constants';
import { SimDevice } from '../device';
import { OtaData, type OtaSelectEntry, type SectorIndex } from '../device/ota-data';
import type { VirtualPeripheral } from '../types';

export interface FlashView {
  /** Each slot's bytes up to (the TS model) or past (the twin: to its sector's end) the last programmed byte. */
  slots: [Buffer, Buffer];
  entries: [OtaSelectEntry, OtaSelectEntry];
}

const SECTOR = 4096;

export function readFlash(device: VirtualPeripheral, partitionSize: number): FlashView {
  if (device instanceof SimDevice) {
    const f = device.flash;
    return { slots: [f.imageBytes(0), f.imageBytes(1)], entries: [f.otadata.entry(0), f.otadata.entry(1)] };
  }
  const stateDir = (device as unknown as { stateDir?: string }).stateDir;
  if (!stateDir) throw new Error(`device ${device.name}: neither the TS model nor the twin; its flash cannot be read`);
  const flash = fs.readFileSync(path.join(stateDir, 'flash.bin'));
  const entry = (sector: number): OtaSelectEntry => {
    const at = SECTOR * (1 + sector);
    const seq = flash.readUInt32LE(at);
    const state = flash.readUInt32LE(at + 24);
    const crc = flash.readUInt32LE(at + 28);
    const seqBytes = flash.subarray(at, at + 4);
    return { seq, state: (state === 0xffffffff ? OtaStateCode.UNDEFINED : state) as OtaSelectEntry['state'], crcOk: seq !== 0xffffffff && crc === crc32(seqBytes) };
  };
  const slot = (i: number): Buffer => trimErased(flash.subarray(3 * SECTOR + i * partitionSize, 3 * SECTOR + (i + 1) * partitionSize));
  return { slots: [slot(0), slot(1)], entries: [entry(0), entry(1)] };
}

/** A fresh OtaData holding the view's entries (for running the bootloader's selection on a copy). */
export function otadataOf(view: FlashView): OtaData {
  const otadata = new OtaData();
  for (const sector of [0, 1] as SectorIndex[]) {
    const e = view.entries[sector];
    if (e.seq !== 0xffffffff) otadata.writeSector(sector, { seq: e.seq, state: e.state, crcOk: e.crcOk });
  }
  return otadata;
}

/**
 * The slot up to the end of the sector holding its last programmed byte: an image may itself end in 0xFF
 * bytes, which must stay part of it (trailing erased flash does not stop esp_image_verify).
 */
function trimErased(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0xff) end--;
  return Buffer.from(bytes.subarray(0, Math.min(bytes.length, Math.ceil(end / SECTOR) * SECTOR)));
}

/** zlib's crc32 (the twin's host_otadata_crc: crc32(0, seq, 4)). */
function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
