/**
 * A worker thread of the campaign (runner.ts, `workers`): takes schedule indexes from the campaign one at
 * a time, runs them `concurrency` at once and reports each outcome back.
 */
import { parentPort, workerData } from 'worker_threads';
import { runSchedule } from './run-schedule';
import { runPool, type WorkerMessage, type WorkerSetup } from './runner';
import { drawSchedule, loadRealImages } from './schedule';

const port = parentPort;
const setup = workerData as WorkerSetup;
const post = (msg: WorkerMessage) => port?.postMessage(msg);

/** Index requests answered in order (the campaign replies to each 'take' with one { index }). */
const waiting: Array<(index: number | null) => void> = [];
port?.on('message', (msg: { index: number | null }) => waiting.shift()?.(msg.index));

function take(): Promise<number | null> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    post({ type: 'take' });
  });
}

if (port) {
  const real = loadRealImages(setup.vectorsDir);
  runPool(
    setup.concurrency,
    take,
    (index) => runSchedule(drawSchedule(setup.seed, index, real, setup.priorUpdates)),
    (outcome) => post({ type: 'outcome', outcome }),
  ).then(
    () => post({ type: 'done' }),
    (err: unknown) => post({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) }),
  );
}
