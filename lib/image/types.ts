/** Result types of the image parser: what a file contains and what is wrong with it. */
import type { ChipName } from './chips';

export interface ImageHeader {
  magic: number;
  segmentCount: number;
  spiMode: number;
  spiSpeed: number;
  spiSize: number;
  entryAddr: number;
  wpPin: number;
  chipId: number;
  /** Legacy one-byte minimum revision (before ESP-IDF 5.0 the only one; meaning is chip specific). */
  minChipRev: number;
  /** major * 100 + minor */
  minChipRevFull: number;
  /** major * 100 + minor; 0 and 0xFFFF mean "no maximum". */
  maxChipRevFull: number;
  hashAppended: boolean;
}

export interface ImageSegment {
  index: number;
  loadAddr: number;
  length: number;
  /** File offset of the 8-byte segment header. */
  headerOffset: number;
  /** File offset of the first data byte. */
  dataOffset: number;
  /** The address lies in a window the chip's cache maps from flash (code or rodata run from flash). */
  flashMapped: boolean;
}

export interface AppDescription {
  magic: number;
  secureVersion: number;
  version: string;
  projectName: string;
  time: string;
  date: string;
  idfVer: string;
  /** lower-case hex */
  appElfSha256: string;
}

export type SignatureKind = 'secure-boot-v1' | 'secure-boot-v2-rsa' | 'secure-boot-v2-ecdsa';

export interface SignatureInfo {
  kind: SignatureKind;
  /** File offset of the signature block (V1) or sector (V2). */
  offset: number;
  /** Number of signature blocks (V1: 1; V2: 1..3). */
  count: number;
  /** V2: every block's CRC32 matches; V1 has no CRC (null). */
  crcOk: boolean | null;
  /** V2: the image digest in each block equals the SHA-256 of the image before the sector. */
  digestOk: boolean | null;
}

export interface MergedImageInfo {
  /** File offset where the application image starts (null: a partition table but no app in the file). */
  appOffset: number | null;
  /** File offset of the partition table (null when the app was found by scanning). */
  partitionTableOffset: number | null;
  /** Flash address of the app per the partition table (null when unknown). */
  appFlashAddress: number | null;
}

/** One thing wrong with the file, in the order the checks run (the first one is what validation throws). */
export interface ImageProblem {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export interface ParsedImage {
  fileLength: number;
  header: ImageHeader | null;
  /** null when the chip id is unknown or the header could not be read. */
  chip: ChipName | null;
  chipId: number | null;
  segments: ImageSegment[];
  /** File offset of the checksum byte (null when the segments could not all be read). */
  checksumOffset: number | null;
  checksumStored: number | null;
  checksumComputed: number | null;
  checksumOk: boolean | null;
  hashAppended: boolean;
  /** null when no hash is appended or it is cut off */
  sha256Ok: boolean | null;
  /** Bytes of the image proper: through the checksum, plus the appended hash when there is one. */
  imageLength: number | null;
  /** Bytes after the image (signature blocks, padding, or anything else). */
  trailingBytes: number;
  appDesc: AppDescription | null;
  /** The first segment starts with a bootloader descriptor or nothing is mapped from flash. */
  looksLikeBootloader: boolean;
  signature: SignatureInfo | null;
  merged: MergedImageInfo | null;
  problems: ImageProblem[];
  /** Things worth telling but not fatal (e.g. trailing bytes that are no signature). */
  warnings: string[];
  valid: boolean;
}
