/**
 * The smallest zlib stream this library makes of a whole image: zopfli, Google's exhaustive deflate
 * encoder (the @gfx/zopfli WebAssembly build: no native build step), one iteration. Its output is an
 * ordinary zlib stream (RFC 1950/1951, 32 KiB window), so every inflater reads it, the device's included;
 * on ESP32 app images it is 3-6 % smaller than zlib level 9 (synthetic 1.4 MB ESP32-C3 image: 681,121 B
 * vs 707,277 B; esp32-hello_world.bin: 94,988 B vs 100,572 B), i.e. as much less air time on every
 * link-bound update. It costs about a second of CPU per megabyte, so it runs in a worker thread (the
 * event loop, i.e. every other flow and BLE session, keeps running) and once per image content. The
 * worker is also the only place that loads it: its Emscripten runtime registers process-wide
 * 'uncaughtException' and 'unhandledRejection' handlers (dist/libzopfli.js) that must not reach Node-RED's.
 * The output is deterministic: every attempt and every gateway sends the same bytes for the same image.
 * When the encoder cannot be loaded, zlib level 9 stands in (an update never fails for its compressor).
 */
import { createHash } from 'crypto';
import { isMainThread, parentPort, workerData } from 'worker_threads';
import { deflateSync } from 'zlib';
import { runWorkerJob } from '../worker-job';

/** zopfli's passes over the data: 1 keeps it near a second per MB; 15 (its default) gains 0.4 % more for 2x the time. */
const ZOPFLI_ITERATIONS = 1;
/** Images whose streams are kept (by SHA-256): a production line flashes a handful of images many times. */
const CACHE_ENTRIES = 16;

interface Job {
  bestDeflateJob: true;
  image: Uint8Array;
}

type Answer = { ok: true; stream: Uint8Array } | { ok: false; message: string };

const cache = new Map<string, Promise<Buffer>>();

/** The image's zlib stream as the flash path sends it (see the file comment). */
export function bestDeflate(image: Buffer): Promise<Buffer> {
  const key = createHash('sha256').update(image).digest('hex');
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // most recently used last
    cache.set(key, hit);
    return hit;
  }
  const made = deflateInWorker(image).catch(() => deflateSync(image, { level: 9 }));
  cache.set(key, made);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  return made;
}

async function deflateInWorker(image: Buffer): Promise<Buffer> {
  const answer = await runWorkerJob<Answer>(__filename, { bestDeflateJob: true, image } satisfies Job, 'The deflate worker');
  if (!answer.ok) throw new Error(answer.message);
  return Buffer.from(answer.stream.buffer, answer.stream.byteOffset, answer.stream.byteLength);
}

async function runJob(job: Job): Promise<Answer> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const zopfli = require('@gfx/zopfli') as { zlibAsync(input: Uint8Array, options: { numiterations: number }): Promise<Uint8Array> };
    return { ok: true, stream: await zopfli.zlibAsync(job.image, { numiterations: ZOPFLI_ITERATIONS }) };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

if (!isMainThread && parentPort && (workerData as Job | undefined)?.bestDeflateJob === true) {
  const port = parentPort;
  void runJob(workerData as Job).then((answer) => port.postMessage(answer));
}
