/**
 * Peak RSS with N concurrent update sessions, measured in a fresh Node process (forked by the benchmark)
 * so that nothing the earlier rows allocated counts. N simulated devices each receive the same image over
 * one simulated adapter; afterwards the memory the devices keep (their flash contents, state) and what the
 * gateway side keeps (noble, scheduler, clients) are told apart by releasing one, then the other.
 */
import { AdapterScheduler } from '../ble/scheduler';
import { flashDevice } from '../ota/flash';
import { createSimFleet } from '../sim/fleet';
import { isVirtualClock } from '../sim/virtual-clock';
import type { LinkScenarioName } from '../sim/link-model';
import type { SimDeviceConfig } from '../sim/types';
import { loadBenchImages, SYNTHETIC_NAME } from './images';

export interface RssRequest {
  image: string;
  vectorsDir?: string;
  sessions: number;
  link: LinkScenarioName;
}

export interface RssReport {
  image: string;
  link: string;
  sessions: number;
  peakRssMB: number;
  /** RSS with everything loaded and the fleet idle, before any session. */
  baselineRssMB: number;
  /** Heap + buffers still held by the devices after the sessions (mostly the images in their flash). */
  devicesRetainedMB: number;
  /** Heap + buffers still held by the gateway side (noble, scheduler, clients) after the sessions. */
  gatewayRetainedMB: number;
  /** Peak of V8 heap used and of ArrayBuffer memory seen during the sessions. */
  peakHeapUsedMB: number;
  peakArrayBuffersMB: number;
  /** Modeled seconds of the concurrent sessions. */
  modeledSeconds: number;
}

const MB = 1024 * 1024;
const round1 = (x: number) => Math.round(x * 10) / 10;

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}

function held(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Devices off the radio and out of reach (their pending timers dropped with the clock's): what they
 * kept is freed. A function of its own, so that no variable of the caller's frame (the loop's last
 * device) keeps one alive through the collection that follows.
 */
async function releaseDevices(fleet: Awaited<ReturnType<typeof createSimFleet>>): Promise<void> {
  for (const [name, device] of fleet.devices) {
    fleet.radio.removeDevice(device.address);
    await device.shutdown();
    fleet.devices.delete(name);
  }
  if (isVirtualClock(fleet.clock)) fleet.clock.stop();
}

export async function measureRss(request: RssRequest): Promise<RssReport> {
  const { images } = loadBenchImages({ vectorsDir: request.vectorsDir, only: [request.image], synthetic: request.image === SYNTHETIC_NAME });
  const image = images[0];
  if (!image) throw new Error(`image ${request.image} not found`);
  const devices: SimDeviceConfig[] = Array.from({ length: request.sessions }, (_v, i) => ({
    name: `rss-${String(i + 1).padStart(2, '0')}`,
    chip: image.chip,
    version: '0.0.1',
    protocol: 'v2',
    confirmPolicy: 'auto',
    allowUnauthenticated: true,
  }));
  let fleet: Awaited<ReturnType<typeof createSimFleet>> | null = await createSimFleet({ devices, link: request.link, clock: 'virtual', maxConnections: request.sessions });
  let scheduler: AdapterScheduler | null = new AdapterScheduler(fleet.central, { maxConnections: request.sessions });
  collect();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let peakHeap = 0;
  let peakBuffers = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakBuffers = Math.max(peakBuffers, m.arrayBuffers);
  };
  const sampler = setInterval(sample, 5);
  const started = fleet.clock.now();
  const s = scheduler;
  try {
    await Promise.all(
      devices.map((d) => flashDevice(s, { device: d.name, image: image.data, encoding: 'deflate', preventDowngrade: false, maxAttempts: 1, onProgress: sample })),
    );
  } finally {
    clearInterval(sampler);
    sample();
  }
  const modeledSeconds = (fleet.clock.now() - started) / 1000;
  collect();
  const afterSessions = held();
  await releaseDevices(fleet);
  collect();
  const withoutDevices = held();
  await scheduler.close();
  await fleet.close();
  // Dropping the references is the point: the collection below frees what the gateway held.
  // eslint-disable-next-line no-useless-assignment
  scheduler = null;
  // eslint-disable-next-line no-useless-assignment
  fleet = null;
  collect();
  const withoutGateway = held();
  return {
    image: image.name,
    link: request.link,
    sessions: request.sessions,
    peakRssMB: round1(peak / MB),
    baselineRssMB: round1(baseline / MB),
    devicesRetainedMB: round1((afterSessions - withoutDevices) / MB),
    gatewayRetainedMB: round1((withoutDevices - withoutGateway) / MB),
    peakHeapUsedMB: round1(peakHeap / MB),
    peakArrayBuffersMB: round1(peakBuffers / MB),
    modeledSeconds: Math.round(modeledSeconds * 1000) / 1000,
  };
}

if (require.main === module) {
  const request = JSON.parse(process.argv[2] ?? '{}') as RssRequest;
  measureRss(request).then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0)),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
