/**
 * Checks that need only the file: a valid ESP application image, and the chip / version the user
 * said to expect. Runs before any BLE activity so a bad upload never touches a device.
 */
import { OtaError } from '../../lib/errors';
import { checkBeforeBegin, validateAppImage } from '../shared/library';

export interface ImageFacts {
  chip: string | null;
  version: string | null;
  projectName: string | null;
}

export function imageFacts(parsed: unknown): ImageFacts {
  const p = (parsed ?? {}) as Record<string, unknown>;
  const desc = (p.appDesc ?? p.app_desc ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    chip: str(p.chip) ?? str(p.chipName),
    version: str(desc.version),
    projectName: str(desc.projectName) ?? str(desc.project_name),
  };
}

export function preflightImage(image: Buffer, expect: { expectedChip?: string; expectedVersion?: string }): ImageFacts {
  const facts = imageFacts(validateAppImage(image));
  if (expect.expectedChip && facts.chip && facts.chip !== expect.expectedChip) {
    throw new OtaError('WRONG_CHIP', `the image is built for ${facts.chip}, but this node expects ${expect.expectedChip}`, { imageChip: facts.chip, expectedChip: expect.expectedChip });
  }
  if (expect.expectedVersion && facts.version !== expect.expectedVersion) {
    throw new OtaError('VERSION_MISMATCH', `the image's version is ${facts.version ?? 'unknown'}, expected ${expect.expectedVersion}`, { imageVersion: facts.version, expectedVersion: expect.expectedVersion });
  }
  return facts;
}

/**
 * The signed manifest for this request: msg.manifest (a Buffer) wins over the file next to the image. It must
 * belong to the image (MANIFEST_MISMATCH) and be well-formed (MANIFEST_INVALID) before the radio is touched;
 * the device checks its signature, and refuses an update without one when it requires it.
 */
export function preflightManifest(image: Buffer, fromMsg: unknown, fromFile: Buffer | undefined, now: number): Buffer | undefined {
  if (fromMsg !== undefined && fromMsg !== null && fromMsg !== '' && !Buffer.isBuffer(fromMsg)) {
    throw new OtaError('MANIFEST_INVALID', `msg.manifest must be a Buffer with the signed manifest (the .manifest file's bytes), got ${Array.isArray(fromMsg) ? 'an array' : `a ${typeof fromMsg}`}`);
  }
  const manifest = Buffer.isBuffer(fromMsg) ? fromMsg : fromFile;
  if (!manifest) return undefined;
  const problem = checkBeforeBegin({ device: { caps: 0 }, image, manifest, hasKey: false, now });
  if (problem) throw problem;
  return manifest;
}
