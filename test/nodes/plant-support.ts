/**
 * Shared by the plant node tests: the plant node modules, an in-process aedes broker on 127.0.0.1, a fake
 * gateway (an MQTT client that speaks the plant topic tree like a gateway would: presence, sightings, task
 * statuses), and the check whether the plant library modules are present in this build.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as mqtt from 'mqtt';
import adapterModule from '../../nodes/ble-ota-adapter/ble-ota-adapter';
import plantModule from '../../nodes/ble-ota-plant/ble-ota-plant';
import rolloutModule from '../../nodes/ble-ota-rollout/ble-ota-rollout';
import { PlantTopics } from '../../lib/plant/topics';
import type { DeviceSighting, ExecutionState, InstallTask, TaskMessage } from '../../lib/plant/messages';
import { repoPath } from '../helpers/paths';

export const plantNodes = [adapterModule, plantModule, rolloutModule];

/** The plant library modules the nodes drive; a build may carry placeholders for them (first line marks it). */
const PLANT_MODULES = ['lib/plant/mqtt-bus.ts', 'lib/plant/gateway/agent.ts', 'lib/plant/coordinator/coordinator.ts'];

export function placeholderPlantModules(): string[] {
  return PLANT_MODULES.filter((file) => {
    const source = repoPath(file);
    return !fs.existsSync(source) || fs.readFileSync(source, 'utf8').startsWith('// STUB');
  });
}

/** Skips the test, saying why, when the plant library is not in this build. */
export function needsPlantLibrary(context: Mocha.Context): void {
  const missing = placeholderPlantModules();
  if (missing.length === 0) return;
  console.log(`    skipped: needs the plant library (placeholders in this build: ${missing.join(', ')})`);
  context.skip();
}

export interface TestBroker {
  url: string;
  close(): Promise<void>;
}

interface AedesLike {
  handle: (socket: net.Socket) => void;
  close(cb: () => void): void;
  authenticate?: (client: unknown, username: string | undefined, password: Buffer | undefined, done: (err: Error | null, ok: boolean) => void) => void;
}

/** aedes on 127.0.0.1 (a free port); with `credentials`, it refuses clients without exactly those. */
export async function startBroker(credentials?: { username: string; password: string }): Promise<TestBroker> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Aedes } = require('aedes') as { Aedes: { createBroker(): Promise<AedesLike> } };
  const aedes = await Aedes.createBroker();
  if (credentials) {
    aedes.authenticate = (_client, username, password, done) => done(null, username === credentials.username && password?.toString() === credentials.password);
  }
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => aedes.close(() => resolve()))),
  };
}

/** A port on 127.0.0.1 where nothing listens. */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * A gateway as the coordinator sees it over MQTT: online presence and sightings of `devices` (retained),
 * install tasks answered "queued" then "in-progress" and held, cancel tasks answered "cancelled".
 */
export class FakeGateway {
  readonly tasks: TaskMessage[] = [];
  private client: mqtt.MqttClient | null = null;
  private readonly topics: PlantTopics;

  constructor(
    private readonly url: string,
    prefix: string,
    readonly id: string,
    private readonly devices: Array<Pick<DeviceSighting, 'address' | 'name' | 'version' | 'hashPrefix'>>,
  ) {
    this.topics = new PlantTopics(prefix);
  }

  async start(): Promise<void> {
    this.client = await mqtt.connectAsync(this.url, { clientId: `fake-${this.id}-${process.pid}` });
    this.client.on('message', (_topic, payload) => this.onTask(JSON.parse(payload.toString()) as TaskMessage));
    await this.client.subscribeAsync(this.topics.tasks(this.id), { qos: 1 });
    const now = Date.now();
    await this.client.publishAsync(this.topics.presence(this.id), JSON.stringify({ v: 1, gateway: this.id, state: 'online', at: now, slots: { total: 2, free: 2 }, adapter: { label: 'fake', simulated: true }, software: '0.0.0' }), { retain: true, qos: 1 });
    const devices: DeviceSighting[] = this.devices.map((d, i) => ({ ...d, rssi: -50 - i, protocol: 'v2', otaState: 'valid', sessionActive: false, lastSeen: now }));
    await this.client.publishAsync(this.topics.sightings(this.id), JSON.stringify({ v: 1, gateway: this.id, at: now, devices }), { retain: true, qos: 1 });
  }

  private installs = new Map<string, InstallTask>();

  private onTask(task: TaskMessage): void {
    this.tasks.push(task);
    if (task.type === 'install') {
      this.installs.set(task.taskId, task);
      this.report(task, 'queued');
      this.report(task, 'in-progress', { progress: { phase: 'transferring', percent: 10, bytesSent: 1000, bytesTotal: 10000 } });
    } else {
      const install = this.installs.get(task.taskId);
      if (install) this.report(install, 'cancelled', { error: { code: 'CANCELLED', message: task.reason } });
    }
  }

  private report(task: InstallTask, state: ExecutionState, extra: Record<string, unknown> = {}): void {
    const status = { v: 1, campaign: task.campaign, taskId: task.taskId, gateway: this.id, device: task.device, state, at: Date.now(), ...extra };
    this.client?.publish(this.topics.execution(task.campaign, task.device.address), JSON.stringify(status), { retain: true, qos: 1 });
  }

  async stop(): Promise<void> {
    await this.client?.endAsync();
    this.client = null;
  }
}

/** Reads a retained message (or waits for the next one) on a topic. */
export async function retainedOn(url: string, topic: string, predicate: (payload: Record<string, unknown>) => boolean, ms = 10000): Promise<Record<string, unknown>> {
  const client = await mqtt.connectAsync(url, { clientId: `probe-${process.pid}-${Math.random().toString(16).slice(2, 8)}` });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing matching on ${topic} within ${ms} ms`)), ms);
      client.on('message', (_t, payload) => {
        if (payload.length === 0) return;
        const message = JSON.parse(payload.toString()) as Record<string, unknown>;
        if (!predicate(message)) return;
        clearTimeout(timer);
        resolve(message);
      });
      client.subscribe(topic, { qos: 1 });
    });
  } finally {
    await client.endAsync();
  }
}
