/** Delta updates (PROTOCOL encoding 2): patch generator and applier, base image store. */
export { applyPatch, isPatchError, PatchApplier } from './apply';
export type { PatchError, PatchProblem } from './apply';
export { createPatch } from './diff';
export { encodePatch } from './records';
export type { PatchRecord } from './records';
export { baseImageBytes, chooseEncoding, makeDeltaTransfer, DELTA_WORTH_RATIO, DELTA_ZLIB_LEVEL } from './patch';
export type { ChosenEncoding, DeltaTransfer } from './patch';
export { makeDeltaTransferInWorker } from './worker';
export { ImageStore, DEFAULT_PATCH_CACHE_BYTES } from './image-store';
export type { CachedDelta, ImageStoreOptions, StoredImage } from './image-store';
