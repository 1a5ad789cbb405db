/** inspectImage: the JSON the CLI's `inspect` command prints (issue 3 point 6 field names). */
import { sha256 } from './digest';
import { hex } from './hex';
import { parseImage } from './parse';
import type { SignatureKind } from './types';

export interface InspectAppDesc {
  version: string;
  projectName: string;
  idfVer: string;
  secureVersion: number;
  date: string;
  time: string;
  elfSha256: string;
}

export interface InspectSignature {
  kind: SignatureKind;
  offset: number;
  count: number;
  crcOk: boolean | null;
}

export interface InspectResult {
  valid: boolean;
  chip: string | null;
  chipId: number | null;
  segmentCount: number | null;
  imageLength: number | null;
  fileLength: number;
  hashAppended: boolean | null;
  checksumOk: boolean | null;
  sha256Ok: boolean | null;
  appDesc: InspectAppDesc | null;
  signature: InspectSignature | null;
  trailingBytes: number | null;
  /** "0x4008129c" */
  entryAddr: string | null;
  minChipRevFull: number | null;
  maxChipRevFull: number | null;
  /** lower-case hex of the whole file */
  fileSha256: string | null;
  /** lower-case hex, 0 through the checksum byte (what the device reports for the running app) */
  appSha256: string | null;
  /** Set for a merged flash image: where the application starts in the file. */
  mergedAppOffset?: number | null;
  warnings: string[];
  error?: { code: string; message: string };
}

export function inspectImage(buf: Buffer): InspectResult {
  const p = parseImage(buf);
  const isBuffer = Buffer.isBuffer(buf);
  const header = p.header;
  const d = p.appDesc;
  const result: InspectResult = {
    valid: p.valid,
    chip: p.chip,
    chipId: p.chipId,
    segmentCount: header ? header.segmentCount : null,
    imageLength: p.imageLength,
    fileLength: p.fileLength,
    hashAppended: header ? header.hashAppended : null,
    checksumOk: p.checksumOk,
    sha256Ok: p.sha256Ok,
    appDesc: d ? { version: d.version, projectName: d.projectName, idfVer: d.idfVer, secureVersion: d.secureVersion, date: d.date, time: d.time, elfSha256: d.appElfSha256 } : null,
    signature: p.signature ? { kind: p.signature.kind, offset: p.signature.offset, count: p.signature.count, crcOk: p.signature.crcOk } : null,
    trailingBytes: p.imageLength === null ? null : p.trailingBytes,
    entryAddr: header ? hex(header.entryAddr, 8) : null,
    minChipRevFull: header ? header.minChipRevFull : null,
    maxChipRevFull: header ? header.maxChipRevFull : null,
    fileSha256: isBuffer ? sha256(buf).toString('hex') : null,
    appSha256: isBuffer && p.checksumOffset !== null ? sha256(buf.subarray(0, p.checksumOffset + 1)).toString('hex') : null,
    warnings: p.warnings,
  };
  if (p.merged) result.mergedAppOffset = p.merged.appOffset;
  if (p.problems.length > 0) result.error = { code: p.problems[0].code, message: p.problems[0].message };
  return result;
}
