/**
 * One gateway on a simulated fleet for the agent tests: keyed devices (per-device keys from a plant master
 * key, a release key, signed manifests), the real scheduler on noble over the virtual radio, a GatewayAgent
 * on the in-process broker (MemoryBroker) with its default codec (the plant schemas) and image source (an
 * ImageCache fetching over the bus), and a "coordinator" client on the same broker that sends tasks, serves
 * the images of `store` with the plant's ImageServer and records every execution status. The agent's clock is counted, so a test can tell that stop() leaves no timer behind.
 */
import { createHash, createPrivateKey } from 'crypto';
import { AdapterScheduler } from '../../../lib/ble/scheduler';
import type { Clock } from '../../../lib/clock';
import { appHash, buildAppImage } from '../../../lib/image';
import { GatewayAgent, presenceWill, type GatewayAgentOptions } from '../../../lib/plant/gateway/agent';
import { ImageServer } from '../../../lib/plant/image-transfer';
import { MemoryBroker } from '../../../lib/plant/memory-bus';
import type { ExecutionStatus, InstallTask } from '../../../lib/plant/messages';
import { PlantTopics } from '../../../lib/plant/topics';
import { generateReleaseKeyPair, manifestForImage } from '../../../lib/security';
import type { VirtualClock } from '../../../lib/sim/virtual-clock';
import { SimDevice } from '../../../lib/sim/device';
import { createSimFleet } from '../../../lib/sim/fleet';
import type { SimDeviceConfig } from '../../../lib/sim/types';
import { ObservedBus } from './observed-bus';

export const MASTER = Buffer.alloc(32, 0x6b);
const RELEASE = generateReleaseKeyPair();
const RELEASE_PRIVATE = createPrivateKey(RELEASE.privateKeyPem);
export const GATEWAY = 'gw-a';
export const CAMPAIGN = 'c1';

export interface TestImage {
  bytes: Buffer;
  sha256: string;
  appSha256: string;
  version: string;
  manifest: string;
}

export function testImage(version: string, size = 64 * 1024, seed = 7): TestImage {
  const bytes = buildAppImage({ chip: 'esp32', version, size, seed });
  return {
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    appSha256: appHash(bytes).toString('hex'),
    version,
    manifest: manifestForImage(bytes, { release: 5 }, RELEASE_PRIVATE).bytes.toString('base64'),
  };
}

/** A clock that counts the timers set through it and not yet fired or cancelled. */
export function countingClock(inner: Clock): { clock: Clock; live(): number } {
  let live = 0;
  const clock: Clock = {
    now: () => inner.now(),
    virtual: inner.virtual,
    setTimer(fn, ms) {
      live++;
      let over = false;
      const end = () => {
        if (!over) live--;
        over = true;
      };
      const handle = inner.setTimer(() => {
        if (over) return;
        end();
        fn();
      }, ms);
      return {
        cancel() {
          end();
          handle.cancel();
        },
      };
    },
  };
  return { clock, live: () => live };
}

export function device(name: string, address: string, overrides: Partial<SimDeviceConfig> = {}): SimDeviceConfig {
  return { name, address, chip: 'esp32', version: '1.0.0', confirmPolicy: 'host', ...overrides };
}

export interface GatewayEnvOptions {
  agent?: Partial<GatewayAgentOptions>;
  images?: TestImage[];
  factoryImage?: Buffer;
  /** 'virtual' (default) or 'real' time, or a virtual clock of the test's own. */
  clock?: 'virtual' | 'real' | VirtualClock;
}

export async function gatewayEnv(devices: SimDeviceConfig[], options: GatewayEnvOptions = {}) {
  const fleet = await createSimFleet({ devices, clock: options.clock ?? 'virtual', masterKey: MASTER, releaseKeys: [RELEASE.publicKeySec1], factoryImage: options.factoryImage });
  const scheduler = new AdapterScheduler(fleet.central, { readyTimeoutMs: 2000 });
  const counted = countingClock(fleet.clock);
  const topics = new PlantTopics();
  const broker = new MemoryBroker(fleet.clock, { latencyMs: 1 });
  const adapter = { label: 'simulated adapter', simulated: true };
  const gatewayBus = new ObservedBus(broker.connect(GATEWAY, presenceWill(topics, GATEWAY, adapter, 1, 0)));
  const coordinator = broker.connect('coordinator');
  const statuses: ExecutionStatus[] = [];
  await coordinator.subscribe(topics.allExecutions('+'), (m) => statuses.push(JSON.parse(m.payload.toString('utf8')) as ExecutionStatus));
  const store = new Map<string, Buffer>((options.images ?? []).map((i) => [i.sha256, i.bytes]));
  const imageServer = new ImageServer(coordinator, topics, async (sha256) => store.get(sha256) ?? null);
  await imageServer.start();
  const warnings: string[] = [];
  const agent = new GatewayAgent({
    bus: gatewayBus,
    topics,
    gatewayId: GATEWAY,
    scheduler,
    clock: counted.clock,
    slots: 1,
    adapter,
    keys: { masterKey: MASTER },
    ...options.agent,
  });
  agent.on('warning', (w: string) => warnings.push(w));
  const models = devices.map((d) => fleet.devices.get(d.name) as SimDevice);
  const env = {
    fleet,
    clock: fleet.clock,
    scheduler,
    topics,
    broker,
    gatewayBus,
    coordinator,
    agent,
    statuses,
    warnings,
    store,
    devices: models,
    liveAgentTimers: counted.live,
    /** Waits `ms` of virtual time. */
    sleep(ms: number): Promise<void> {
      return new Promise<void>((resolve) => fleet.clock.setTimer(resolve, ms));
    },
    async send(message: unknown): Promise<void> {
      await coordinator.publish(topics.tasks(GATEWAY), typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message), { qos: 1 });
    },
    /** Statuses of one task, in the order they were published. */
    of(taskId: string): ExecutionStatus[] {
      return statuses.filter((s) => s.taskId === taskId);
    },
    /** Resolves with the task's end (a state other than queued / in-progress), on the broker. */
    async end(taskId: string, limitMs = 600000): Promise<ExecutionStatus> {
      const deadline = fleet.clock.now() + limitMs;
      for (;;) {
        const last = statuses.filter((s) => s.taskId === taskId && s.state !== 'queued' && s.state !== 'in-progress').pop();
        if (last) return last;
        if (fleet.clock.now() > deadline) throw new Error(`task ${taskId} did not end within ${limitMs} ms; statuses: ${JSON.stringify(statuses.filter((s) => s.taskId === taskId).map((s) => s.state))}`);
        await env.sleep(50);
      }
    },
    /** Waits until pred holds (checked every 20 ms of virtual time). */
    async until(pred: () => boolean, what: string, limitMs = 600000): Promise<void> {
      const deadline = fleet.clock.now() + limitMs;
      while (!pred()) {
        if (fleet.clock.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await env.sleep(20);
      }
    },
    retained<T>(topic: string): T | undefined {
      const payload = broker.retained(topic);
      return payload ? (JSON.parse(payload.toString('utf8')) as T) : undefined;
    },
    async close(): Promise<void> {
      await agent.stop();
      imageServer.stop();
      await scheduler.close();
      await fleet.close();
    },
  };
  return env;
}

export type GatewayEnv = Awaited<ReturnType<typeof gatewayEnv>>;

let taskCounter = 0;

export function installTask(address: string, image: TestImage, overrides: Partial<InstallTask> = {}, options: Partial<InstallTask['options']> = {}): InstallTask {
  return {
    v: 1,
    type: 'install',
    taskId: `t-${++taskCounter}`,
    campaign: CAMPAIGN,
    device: { address, name: '' },
    image: { sha256: image.sha256, size: image.bytes.length, manifest: image.manifest, version: image.version, chip: 'esp32' },
    timeoutMs: 300000,
    options: { encoding: 'auto', confirm: true, maxAttempts: 3, ...options },
    ...overrides,
  };
}
