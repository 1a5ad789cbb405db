/** A small plant for the coordinator's tests: virtual clock, the in-process broker (MemoryBroker), fake devices and gateways, an image. */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { sleep } from '../../../lib/clock';
import { buildAppImage } from '../../../lib/image';
import { RolloutCoordinator, type CoordinatorOptions } from '../../../lib/plant/coordinator/coordinator';
import type { CampaignSpec, CampaignState, DeviceResult } from '../../../lib/plant/messages';
import { PlantTopics } from '../../../lib/plant/topics';
import { VirtualClock } from '../../../lib/sim/virtual-clock';
import { MemoryBroker } from '../../../lib/plant/memory-bus';
import { FakeGateway, FakePlant, type Behaviour, type Script } from './fake-gateway';

export const IMAGE_FILE = 'app-2.0.0.bin';

export class CoordHarness {
  readonly clock = new VirtualClock({ startMs: Date.UTC(2026, 11, 1, 12, 0, 0) });
  readonly broker = new MemoryBroker(this.clock, { latencyMs: 1 });
  readonly topics = new PlantTopics();
  readonly plant = new FakePlant();
  readonly gateways = new Map<string, FakeGateway>();
  readonly image = buildAppImage({ chip: 'esp32c3', version: '2.0.0', projectName: 'line-sensor', size: 8192 });
  readonly sha = createHash('sha256').update(this.image).digest('hex');
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coord-test-'));
  readonly coordinators: RolloutCoordinator[] = [];
  readonly warnings: string[] = [];
  readonly results: DeviceResult[] = [];

  constructor() {
    fs.writeFileSync(path.join(this.dir, IMAGE_FILE), this.image);
  }

  /** Devices `<prefix>-<i>` at aa:00:00:00:<n>:<i>, running version 1.0.0. */
  addDevices(count: number, prefix = 'line1', group = 0): string[] {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const address = `aa:00:00:00:${group.toString(16).padStart(2, '0')}:${i.toString(16).padStart(2, '0')}`;
      this.plant.add(address, `${prefix}-${i}`);
      out.push(address);
    }
    return out;
  }

  async addGateway(id: string, sees: Record<string, number>, options: { slots?: number; script?: Script } = {}): Promise<FakeGateway> {
    const gw = new FakeGateway({ broker: this.broker, clock: this.clock, topics: this.topics, id, plant: this.plant, sees, ...options });
    this.gateways.set(id, gw);
    await gw.start();
    return gw;
  }

  gateway(id: string): FakeGateway {
    const gw = this.gateways.get(id);
    if (!gw) throw new Error(`no gateway ${id}`);
    return gw;
  }

  async coordinator(options: Partial<CoordinatorOptions> = {}): Promise<RolloutCoordinator> {
    const c = new RolloutCoordinator({
      bus: this.broker.connect(`coord-${this.coordinators.length}`),
      topics: this.topics,
      clock: this.clock,
      coordinatorId: 'coord-1',
      images: { firmwareDir: this.dir },
      ...options,
    });
    c.on('warning', (text: string) => this.warnings.push(text));
    c.on('device', (r: DeviceResult) => this.results.push(r));
    this.coordinators.push(c);
    await c.start();
    return c;
  }

  spec(overrides: Partial<CampaignSpec> = {}): CampaignSpec {
    return { image: { sha256: this.sha, file: IMAGE_FILE }, target: { namePrefix: 'line1-' }, waves: [{ percent: 100 }], ...overrides };
  }

  /** Lets `ms` of virtual time pass. */
  async run(ms: number): Promise<void> {
    await this.clock.runUntil(sleep(this.clock, ms));
  }

  /** Resolves on the campaign's end ('campaign' event), failing after limitMs of virtual time. */
  ended(c: RolloutCoordinator, id: string, limitMs = 3_600_000): Promise<CampaignState> {
    return this.clock.runUntil(
      new Promise<CampaignState>((resolve) => {
        const on = (state: CampaignState) => {
          if (state.id !== id) return;
          c.off('campaign', on);
          resolve(state);
        };
        c.on('campaign', on);
      }),
      limitMs,
    );
  }

  async close(): Promise<void> {
    for (const c of this.coordinators) await c.stop();
    for (const gw of this.gateways.values()) gw.kill();
    this.clock.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** address -> rssi for every address. */
export function seeAll(addresses: string[], rssi = -60): Record<string, number> {
  return Object.fromEntries(addresses.map((a) => [a, rssi]));
}

/** A new harness for every test of the suite (closed after it), handed to `use`. */
export function harnessPerTest(use: (h: CoordHarness) => void): void {
  let h: CoordHarness | undefined;
  beforeEach(() => {
    h = new CoordHarness();
    use(h);
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
}

/** A gateway script: every task succeeds after `ms`. */
export const succeedAfter =
  (ms: number) =>
  (): Behaviour => ({ kind: 'succeed', afterMs: ms });
