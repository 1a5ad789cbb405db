/**
 * One job in a worker thread: the worker runs `filename` with `job` as its workerData and posts one
 * answer. CPU-heavy preparations (a delta patch, the best deflate stream) run this way so the event loop,
 * i.e. every other flow and BLE session of a gateway, keeps running.
 */
import { Worker } from 'worker_threads';

/** The worker's first message; rejects when the worker fails or exits without one. */
export function runWorkerJob<Answer>(filename: string, job: object, what: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(filename, { workerData: job });
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      action();
    };
    worker.once('message', (answer: Answer) => settle(() => resolve(answer)));
    worker.once('error', (err) => settle(() => reject(new Error(`${what} failed: ${err.message}`))));
    worker.once('exit', (code) => settle(() => reject(new Error(`${what} stopped (exit code ${code}) without an answer`))));
  });
}
