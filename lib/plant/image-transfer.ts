/**
 * Moving an image from the coordinator to the gateways over the bus, once per gateway (not once per device).
 * A gateway that lacks an image publishes an ImageRequest on imageRequest(sha); the ImageServer answers with
 * the image cut into frames (messages.ts: "BOI1", index, count, total, bytes) on imageChunks(sha, gateway),
 * QoS 1, one after the other. The ImageCache on the gateway reassembles them, checks the SHA-256 and keeps
 * the image in memory (and in a directory, if given) for the next device.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Clock, TimerHandle } from '../clock';
import { OtaError } from '../errors';
import { fileSha256 } from '../image';
import type { BusMessage, PlantBus, Unsubscribe } from './bus';
import { IMAGE_CHUNK_BYTES, IMAGE_CHUNK_MAGIC, type ImageRequest } from './messages';
import { PLANT_MAX_IMAGE_BYTES, encodePlantMessage, parsePlantMessage } from './schemas';
import type { PlantTopics } from './topics';

export type PlantLog = (level: 'info' | 'warn' | 'error', text: string) => void;

export const IMAGE_CHUNK_HEADER_BYTES = 16;
export const DEFAULT_IMAGE_TIMEOUT_MS = 30000;
export const DEFAULT_MEMORY_IMAGES = 4;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Hex SHA-256 of an image file (lib/image fileSha256): the digest every plant message names. */
export function sha256Hex(data: Buffer): string {
  return fileSha256(data).toString('hex');
}

export function chunkCountOf(total: number): number {
  return Math.ceil(total / IMAGE_CHUNK_BYTES);
}

/** Frame `index` of an image: header + the chunk's bytes. */
export function encodeImageChunk(image: Buffer, index: number): Buffer {
  const count = chunkCountOf(image.length);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`chunk ${index} of an image of ${count} chunks`);
  const header = Buffer.alloc(IMAGE_CHUNK_HEADER_BYTES);
  header.write(IMAGE_CHUNK_MAGIC, 0, 'latin1');
  header.writeUInt32BE(index, 4);
  header.writeUInt32BE(count, 8);
  header.writeUInt32BE(image.length, 12);
  return Buffer.concat([header, image.subarray(index * IMAGE_CHUNK_BYTES, (index + 1) * IMAGE_CHUNK_BYTES)]);
}

export interface ImageChunk {
  index: number;
  count: number;
  total: number;
  data: Buffer;
}

/** Parses a frame; throws a sentence (plain Error) naming what is inconsistent. */
export function decodeImageChunk(frame: Buffer): ImageChunk {
  if (frame.length < IMAGE_CHUNK_HEADER_BYTES || frame.toString('latin1', 0, 4) !== IMAGE_CHUNK_MAGIC) throw new Error(`not an image chunk frame (${frame.length} bytes, no "${IMAGE_CHUNK_MAGIC}" header)`);
  const index = frame.readUInt32BE(4);
  const count = frame.readUInt32BE(8);
  const total = frame.readUInt32BE(12);
  const data = frame.subarray(IMAGE_CHUNK_HEADER_BYTES);
  if (total === 0 || count !== chunkCountOf(total)) throw new Error(`chunk count ${count} does not fit a total of ${total} bytes`);
  if (index >= count) throw new Error(`chunk index ${index} is not below the count ${count}`);
  const expected = index === count - 1 ? total - index * IMAGE_CHUNK_BYTES : IMAGE_CHUNK_BYTES;
  if (data.length !== expected) throw new Error(`chunk ${index} has ${data.length} bytes, ${expected} expected`);
  return { index, count, total, data };
}

const noLog: PlantLog = () => undefined;

/**
 * Answers image requests (coordinator side). lookup(sha) returns the image or null when it is not one this
 * server offers (the request is then ignored: another coordinator may have it). One transfer per
 * (image, gateway) at a time: a repeated request while sending is ignored.
 */
export class ImageServer {
  private unsubscribe: Unsubscribe | undefined;
  private readonly sending = new Set<string>();
  private stopped = false;

  constructor(
    private readonly bus: PlantBus,
    private readonly topics: PlantTopics,
    private readonly lookup: (sha256: string) => Promise<Buffer | null>,
    private readonly log: PlantLog = noLog,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    if (this.unsubscribe) return;
    this.unsubscribe = await this.bus.subscribe(this.topics.allImageRequests, (m) => this.onRequest(m));
  }

  stop(): void {
    this.stopped = true;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    unsubscribe?.().catch(() => undefined);
  }

  /** Transfers running now, as "sha/gateway". */
  get active(): string[] {
    return [...this.sending];
  }

  private onRequest(message: BusMessage): void {
    if (message.retain || message.payload.length === 0) return;
    let request: ImageRequest;
    try {
      request = parsePlantMessage('imageRequest', message.payload);
    } catch (err) {
      this.log('warn', `ignored an image request on ${message.topic}: ${(err as Error).message}`);
      return;
    }
    if (message.topic !== this.topics.imageRequest(request.sha256)) {
      this.log('warn', `ignored an image request for ${request.sha256} on the topic of another image (${message.topic})`);
      return;
    }
    const key = `${request.sha256}/${request.gateway}`;
    if (this.sending.has(key)) {
      this.log('info', `image ${request.sha256} is already on its way to ${request.gateway}: repeated request ignored`);
      return;
    }
    this.sending.add(key);
    this.send(request, key).catch((err: Error) => {
      this.sending.delete(key);
      this.log('error', `sending image ${request.sha256} to ${request.gateway} failed: ${err.message}`);
    });
  }

  private async send(request: ImageRequest, key: string): Promise<void> {
    const image = await this.lookup(request.sha256);
    if (!image) {
      this.sending.delete(key);
      this.log('info', `image ${request.sha256} requested by ${request.gateway} is not one this coordinator serves: ignored`);
      return;
    }
    if (image.length === 0 || image.length > PLANT_MAX_IMAGE_BYTES || sha256Hex(image) !== request.sha256) {
      this.sending.delete(key);
      this.log('error', `image ${request.sha256}: the source holds ${image.length} bytes with another SHA-256: not sent`);
      return;
    }
    const topic = this.topics.imageChunks(request.sha256, request.gateway);
    const count = chunkCountOf(image.length);
    for (let index = 0; index < count; index++) {
      if (this.stopped) break;
      const last = index === count - 1;
      // Free the slot as the last frame leaves: a gateway whose copy was corrupted asks again at once.
      if (last) this.sending.delete(key);
      await this.bus.publish(topic, encodeImageChunk(image, index), { qos: 1 });
    }
    this.sending.delete(key);
    this.log('info', `image ${request.sha256} (${image.length} bytes, ${count} chunks) sent to ${request.gateway}`);
  }
}

export interface ImageCacheOptions {
  /** Keeps fetched images as <sha256>.bin here too (verified when read back). */
  dir?: string;
  /** A fetch fails IMAGE_UNAVAILABLE after this long without a new chunk (ms, default 30000). */
  timeoutMs?: number;
  /** Images kept in memory, least recently used dropped first (default 4). */
  memoryImages?: number;
  log?: PlantLog;
}

/** A gateway's images by SHA-256: memory, then the directory, then fetched from whoever serves it. */
export class ImageCache {
  private readonly memory = new Map<string, Buffer>();
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private readonly timeoutMs: number;
  private readonly memoryImages: number;
  private readonly log: PlantLog;

  constructor(
    private readonly bus: PlantBus,
    private readonly topics: PlantTopics,
    private readonly gatewayId: string,
    private readonly clock: Clock,
    private readonly options: ImageCacheOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_IMAGE_TIMEOUT_MS;
    this.memoryImages = Math.max(1, options.memoryImages ?? DEFAULT_MEMORY_IMAGES);
    this.log = options.log ?? noLog;
  }

  /** The image with this SHA-256 and size; IMAGE_UNAVAILABLE / IMAGE_HASH_MISMATCH when it cannot be had. */
  async get(sha256: string, size: number): Promise<Buffer> {
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) throw new OtaError('PAYLOAD_INVALID', `image digest must be 64 lower-case hex digits, got ${JSON.stringify(sha256)}`);
    if (!Number.isInteger(size) || size < 1 || size > PLANT_MAX_IMAGE_BYTES) throw new OtaError('PAYLOAD_INVALID', `image size must be 1 to ${PLANT_MAX_IMAGE_BYTES} bytes, got ${String(size)}`);
    const inMemory = this.memory.get(sha256);
    if (inMemory && inMemory.length === size) {
      this.memory.delete(sha256);
      this.memory.set(sha256, inMemory);
      return inMemory;
    }
    const key = `${sha256}/${size}`;
    let pending = this.fetching.get(key);
    if (!pending) {
      pending = this.load(sha256, size).finally(() => this.fetching.delete(key));
      this.fetching.set(key, pending);
    }
    return pending;
  }

  /** Images in memory now (least recently used first). */
  cached(): string[] {
    return [...this.memory.keys()];
  }

  private async load(sha256: string, size: number): Promise<Buffer> {
    const fromDir = await this.readDir(sha256, size);
    const image = fromDir ?? (await this.fetchWithRetry(sha256, size));
    this.remember(sha256, image);
    if (!fromDir) await this.writeDir(sha256, image);
    return image;
  }

  private remember(sha256: string, image: Buffer): void {
    this.memory.delete(sha256);
    this.memory.set(sha256, image);
    while (this.memory.size > this.memoryImages) this.memory.delete(this.memory.keys().next().value as string);
  }

  private fileOf(sha256: string): string | undefined {
    return this.options.dir ? path.join(this.options.dir, `${sha256}.bin`) : undefined;
  }

  private async readDir(sha256: string, size: number): Promise<Buffer | undefined> {
    const file = this.fileOf(sha256);
    if (!file) return undefined;
    let data: Buffer;
    try {
      data = await fs.promises.readFile(file);
    } catch {
      return undefined;
    }
    if (data.length === size && sha256Hex(data) === sha256) return data;
    this.log('warn', `cached image ${file} does not match its name (${data.length} bytes): fetching it again`);
    return undefined;
  }

  private async writeDir(sha256: string, image: Buffer): Promise<void> {
    const file = this.fileOf(sha256);
    if (!file) return;
    const temporary = `${file}.${process.pid}.part`;
    try {
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(temporary, image);
      await fs.promises.rename(temporary, file);
    } catch (err) {
      this.log('warn', `could not keep image ${sha256} in ${this.options.dir}: ${(err as Error).message}`);
      await fs.promises.rm(temporary, { force: true }).catch(() => undefined);
    }
  }

  /** A copy that arrives whole but with another SHA-256 is asked for once more. */
  private async fetchWithRetry(sha256: string, size: number): Promise<Buffer> {
    try {
      return await this.fetch(sha256, size);
    } catch (err) {
      if (!(err instanceof OtaError) || err.code !== 'IMAGE_HASH_MISMATCH') throw err;
      this.log('warn', `${err.message}: asking for it again`);
      return this.fetch(sha256, size);
    }
  }

  private async fetch(sha256: string, size: number): Promise<Buffer> {
    const image = Buffer.alloc(size);
    const count = chunkCountOf(size);
    const received = new Set<number>();
    let lastProblem = '';
    let timer: TimerHandle | undefined;
    let unsubscribe: Unsubscribe | undefined;
    let askAgain: (() => void) | undefined;
    let cleanedUp = false;
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        let settled = false;
        const finish = (err: Error | undefined, value?: Buffer) => {
          if (settled) return;
          settled = true;
          timer?.cancel();
          if (err) reject(err);
          else resolve(value as Buffer);
        };
        const armTimeout = () => {
          timer?.cancel();
          timer = this.clock.setTimer(() => {
            finish(
              new OtaError(
                'IMAGE_UNAVAILABLE',
                `image ${sha256} did not arrive: ${received.size} of ${count} chunks after ${this.timeoutMs} ms without progress${lastProblem ? ` (last problem: ${lastProblem})` : ''}; is a coordinator serving it?`,
                { sha256, received: received.size, count },
              ),
            );
          }, this.timeoutMs);
        };
        const onFrame = (message: BusMessage) => {
          if (settled) return;
          let chunk: ImageChunk;
          try {
            chunk = decodeImageChunk(message.payload);
            if (chunk.total !== size) throw new Error(`the frames describe ${chunk.total} bytes, the task ${size}`);
          } catch (err) {
            lastProblem = (err as Error).message;
            this.log('warn', `image ${sha256}: dropped a frame: ${lastProblem}`);
            return;
          }
          if (received.has(chunk.index)) return;
          chunk.data.copy(image, chunk.index * IMAGE_CHUNK_BYTES);
          received.add(chunk.index);
          armTimeout();
          if (received.size < count) return;
          const actual = sha256Hex(image);
          if (actual === sha256) finish(undefined, image);
          else finish(new OtaError('IMAGE_HASH_MISMATCH', `image ${sha256} arrived with SHA-256 ${actual}`, { expected: sha256, actual }));
        };
        const request = encodePlantMessage('imageRequest', { v: 1, gateway: this.gatewayId, sha256 });
        const ask = () => this.bus.publish(this.topics.imageRequest(sha256), request, { qos: 1 });
        // Frames sent while the connection was down are lost: ask again after a reconnect (frames
        // already here are kept; the server ignores a request while it is still sending).
        askAgain = () => {
          if (!settled) ask().catch((err: Error) => this.log('warn', `image ${sha256}: asking again after a reconnect failed: ${err.message}`));
        };
        this.bus.on('connect', askAgain);
        armTimeout();
        this.bus
          .subscribe(this.topics.imageChunks(sha256, this.gatewayId), onFrame)
          .then((u) => {
            if (cleanedUp) {
              // The fetch ended (timeout) before the subscription existed: drop it now.
              u().catch(() => undefined);
              return undefined;
            }
            unsubscribe = u;
            return settled ? undefined : ask();
          })
          .catch((err: Error) => finish(new OtaError('IMAGE_UNAVAILABLE', `cannot ask for image ${sha256}: ${err.message}`, { sha256 })));
      });
    } finally {
      cleanedUp = true;
      timer?.cancel();
      if (askAgain) this.bus.off('connect', askAgain);
      await unsubscribe?.().catch(() => undefined);
    }
  }
}
