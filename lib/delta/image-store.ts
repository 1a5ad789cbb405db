/**
 * Base images for delta updates, kept in a directory and found by the digest a device reports as
 * running_sha256 (esp_partition_get_sha256 of the running app: SHA-256 from offset 0 through the checksum
 * byte, which equals the appended hash of a hash_appended image; lib/image appHash. ESP-IDF v5.3.2
 * components/bootloader_support/src/bootloader_common.c:149-172: the appended digest when hash_appended,
 * else SHA-256 of esp_image_get_metadata's image_len, which ends at the checksum byte). Any valid app image
 * dropped into the directory counts, whatever its file name; `add` writes `<digest>.bin`.
 * Patches made from them are cached in memory by (base digest, new image digest), up to a byte cap.
 */
import { createHash } from 'crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'fs';
import { join } from 'path';
import { OtaError } from '../errors';
import { appHash } from '../image';
import type { DeltaTransfer } from './patch';
import { baseImageBytes, makeDeltaTransfer } from './patch';
import { makeDeltaTransferInWorker } from './worker';

export interface StoredImage {
  /** running_sha256 of the image (lower-case hex). */
  sha256: string;
  /** Its length as ESP-IDF measures it (what the patch may read). */
  length: number;
  file: string;
}

/** A cached delta: what BEGIN and the transfer need. */
export interface CachedDelta {
  baseSha256: string;
  /** SHA-256 of the whole new image (BEGIN sha256). */
  imageSha256: string;
  baseLength: number;
  /** The zlib stream of the patch. */
  transfer: Buffer;
}

export interface ImageStoreOptions {
  /** Bytes of patch transfers kept in memory (default 32 MiB); the least recently used go first. */
  patchCacheBytes?: number;
}

interface IndexedFile {
  size: number;
  mtimeMs: number;
  image: StoredImage | null;
}

const DIGEST_HEX = /^[0-9a-f]{64}$/;
export const DEFAULT_PATCH_CACHE_BYTES = 32 * 1024 * 1024;

export class ImageStore {
  readonly patchCacheBytes: number;
  /** File name → what it holds, refreshed when a file's size or mtime changes. */
  private readonly files = new Map<string, IndexedFile>();
  /** Insertion order = recency (a hit moves the entry to the end). */
  private readonly patches = new Map<string, CachedDelta>();
  private readonly inFlight = new Map<string, Promise<CachedDelta>>();
  private cachedBytes = 0;

  constructor(
    readonly dir: string,
    options: ImageStoreOptions = {},
  ) {
    const cap = options.patchCacheBytes ?? DEFAULT_PATCH_CACHE_BYTES;
    if (!Number.isInteger(cap) || cap < 0) throw new OtaError('BAD_OPTION', `patchCacheBytes must be a whole number of bytes, got ${JSON.stringify(options.patchCacheBytes)}.`);
    this.patchCacheBytes = cap;
    mkdirSync(dir, { recursive: true });
  }

  /** Stores an image (its bytes or a file path) as `<running_sha256>.bin`; throws the image's error when it is invalid. */
  add(image: Buffer | string): StoredImage {
    const data = typeof image === 'string' ? readImageFile(image) : image;
    const bytes = baseImageBytes(data);
    const sha256 = appHash(data).toString('hex');
    const file = join(this.dir, `${sha256}.bin`);
    // Written under a temporary name first: a reader never sees half a file.
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, bytes);
    renameSync(temporary, file);
    return { sha256, length: bytes.length, file };
  }

  /** Every valid app image in the directory. */
  list(): StoredImage[] {
    this.refresh();
    const seen = new Map<string, StoredImage>();
    for (const entry of this.files.values()) if (entry.image && !seen.has(entry.image.sha256)) seen.set(entry.image.sha256, entry.image);
    return [...seen.values()];
  }

  /** The stored image whose running_sha256 is `digest`, or null. */
  find(digest: Buffer | string): StoredImage | null {
    const hex = digestHex(digest);
    return this.list().find((i) => i.sha256 === hex) ?? null;
  }

  /** The base bytes (ESP-IDF's image length) of the image with that running_sha256, or null. */
  get(digest: Buffer | string): Buffer | null {
    const found = this.find(digest);
    if (!found) return null;
    const data = readFileSync(found.file);
    // The file may have changed since it was indexed: trust only what still hashes right.
    if (appHash(data).toString('hex') !== found.sha256) {
      this.files.delete(found.file);
      return this.get(digest);
    }
    return baseImageBytes(data);
  }

  /**
   * The delta from the stored base `baseDigest` to `image`, from the cache or made now (and cached);
   * null when the store has no such base. Blocks for the generation (about a second of CPU for 1.4 MB):
   * in a server use deltaInWorker.
   */
  delta(baseDigest: Buffer | string, image: Buffer): CachedDelta | null {
    const { key, baseHex, imageSha256 } = this.keyOf(baseDigest, image);
    const hit = this.lookup(key);
    if (hit) return hit;
    const base = this.get(baseHex);
    if (!base) return null;
    return this.remember(key, imageSha256, makeDeltaTransfer(base, image));
  }

  /**
   * As delta, generated in a worker thread; requests for one (base, image) pair while it is being made
   * share that one generation (a fleet updated from one base costs one diff).
   */
  async deltaInWorker(baseDigest: Buffer | string, image: Buffer): Promise<CachedDelta | null> {
    const { key, baseHex, imageSha256 } = this.keyOf(baseDigest, image);
    const hit = this.lookup(key);
    if (hit) return hit;
    const running = this.inFlight.get(key);
    if (running) return running;
    const base = this.get(baseHex);
    if (!base) return null;
    const made = makeDeltaTransferInWorker(base, image).then((d) => this.remember(key, imageSha256, d));
    this.inFlight.set(key, made);
    try {
      return await made;
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Bytes of patch transfers held by the cache now. */
  get patchCacheUsed(): number {
    return this.cachedBytes;
  }

  private keyOf(baseDigest: Buffer | string, image: Buffer): { key: string; baseHex: string; imageSha256: string } {
    const baseHex = digestHex(baseDigest);
    const imageSha256 = createHash('sha256').update(image).digest('hex');
    return { key: `${baseHex}:${imageSha256}`, baseHex, imageSha256 };
  }

  private lookup(key: string): CachedDelta | null {
    const hit = this.patches.get(key);
    if (!hit) return null;
    // Most recently used last.
    this.patches.delete(key);
    this.patches.set(key, hit);
    return hit;
  }

  private remember(key: string, imageSha256: string, made: DeltaTransfer): CachedDelta {
    const entry: CachedDelta = { baseSha256: made.baseSha256.toString('hex'), imageSha256, baseLength: made.baseLength, transfer: made.transfer };
    if (entry.transfer.length > this.patchCacheBytes) return entry;
    this.patches.set(key, entry);
    this.cachedBytes += entry.transfer.length;
    for (const [oldKey, old] of this.patches) {
      if (this.cachedBytes <= this.patchCacheBytes) break;
      this.patches.delete(oldKey);
      this.cachedBytes -= old.transfer.length;
    }
    return entry;
  }

  /** Re-reads the directory; only new or changed files are hashed again. */
  private refresh(): void {
    const present = new Set<string>();
    for (const name of readdirSync(this.dir)) {
      if (!name.toLowerCase().endsWith('.bin')) continue;
      const file = join(this.dir, name);
      let stat;
      try {
        stat = statSync(file);
      } catch {
        continue; // removed meanwhile
      }
      if (!stat.isFile()) continue;
      present.add(file);
      const known = this.files.get(file);
      if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs) continue;
      this.files.set(file, { size: stat.size, mtimeMs: stat.mtimeMs, image: describe(file) });
    }
    for (const file of this.files.keys()) if (!present.has(file)) this.files.delete(file);
  }
}

/** What a file holds, or null when it is no usable app image (other files may sit in the directory). */
function describe(file: string): StoredImage | null {
  try {
    const data = readFileSync(file);
    return { sha256: appHash(data).toString('hex'), length: baseImageBytes(data).length, file };
  } catch {
    return null;
  }
}

function readImageFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new OtaError('FILE_NOT_FOUND', `Cannot read the image ${file} for the base image store: ${(err as Error).message}.`);
  }
}

function digestHex(digest: Buffer | string): string {
  const hex = Buffer.isBuffer(digest) ? digest.toString('hex') : String(digest).toLowerCase();
  if (!DIGEST_HEX.test(hex)) throw new OtaError('BAD_PARAMETER', `A base image digest must be 32 bytes (64 hex digits), got ${JSON.stringify(Buffer.isBuffer(digest) ? `${digest.length} bytes` : digest)}.`);
  return hex;
}
