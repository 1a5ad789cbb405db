/** The delta side of a FlashResult, and the image store growing with every successful update. */
import type { ImageStore } from '../delta/image-store';
import type { DeltaFallback, TransferChoice } from './transfer-choice';

export interface EncodingFields {
  encoding: 'raw' | 'deflate' | 'delta';
  base: string | null;
  patchBytes: number | null;
  deltaFallback: DeltaFallback | null;
}

export function encodingFields(choice: TransferChoice | null, deltaFallback: DeltaFallback | null): EncodingFields {
  return { encoding: choice?.encoding ?? 'raw', base: choice?.encoding === 'delta' ? choice.base : null, patchBytes: choice?.patchBytes ?? null, deltaFallback };
}

/**
 * Adds the image just flashed to the base images, so the next update of this device can be a patch
 * against it. The update itself succeeded: a directory that cannot take the file must not turn it into
 * a failure, so that is only skipped (the next update then sends the whole image, as without a store).
 */
export function addFlashedBase(store: ImageStore | null, image: Buffer): void {
  if (!store) return;
  try {
    store.add(image);
  } catch {
    // see above: best effort by design
  }
}
