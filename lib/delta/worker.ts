/**
 * makeDeltaTransfer off the main thread: generating a patch for a 1.4 MB image takes about a second of CPU,
 * which in a gateway would stall every other flow and BLE session; a worker thread keeps the event loop free.
 */
import { isMainThread, parentPort, workerData } from 'worker_threads';
import { runWorkerJob } from '../worker-job';
import { OtaError } from '../errors';
import type { DeltaTransfer } from './patch';
import { makeDeltaTransfer } from './patch';

interface Job {
  deltaJob: true;
  base: Uint8Array;
  image: Uint8Array;
}

type Answer = { ok: true; baseSha256: Uint8Array; baseLength: number; patch: Uint8Array; transfer: Uint8Array } | { ok: false; code: string; message: string; details?: Record<string, unknown> };

const asBuffer = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** The same result as makeDeltaTransfer(base, image), computed in a worker thread. */
export async function makeDeltaTransferInWorker(base: Buffer, image: Buffer): Promise<DeltaTransfer> {
  const job: Job = { deltaJob: true, base, image };
  let answer: Answer;
  try {
    answer = await runWorkerJob<Answer>(__filename, job, 'The delta generator');
  } catch (err) {
    throw new OtaError('INTERNAL', (err as Error).message);
  }
  if (!answer.ok) throw new OtaError(answer.code, answer.message, answer.details);
  return { baseSha256: asBuffer(answer.baseSha256), baseLength: answer.baseLength, patch: asBuffer(answer.patch), transfer: asBuffer(answer.transfer) };
}

function runJob(job: Job): Answer {
  try {
    const made = makeDeltaTransfer(asBuffer(job.base), asBuffer(job.image));
    return { ok: true, ...made };
  } catch (err) {
    const e = err instanceof OtaError ? err : new OtaError('INTERNAL', err instanceof Error ? err.message : String(err));
    return { ok: false, code: e.code, message: e.message, details: e.details };
  }
}

if (!isMainThread && parentPort && (workerData as Job | undefined)?.deltaJob === true) {
  parentPort.postMessage(runJob(workerData as Job));
}
