/**
 * A plant config node with an adapter makes its runtime a gateway: once the adapter is ready and the broker
 * connected, a GatewayAgent runs on the adapter's scheduler with the adapter's keys. Stopping it (redeploy,
 * Node-RED stop) stops the agent first, which cancels its tasks and publishes the "offline" presence, so the
 * coordinator re-assigns this gateway's devices at once instead of waiting for the will.
 */
import { toOtaError } from '../../lib/errors';
import type { AdapterConnection, AdapterState } from '../ble-ota-adapter/adapter-connection';
import { GatewayAgent, PlantTopics, wallClock, type BusWill, presenceWill } from '../shared/plant-library';
import type { PlantConnection, PlantState } from './plant-connection';
import type { PlantSettings } from './plant-config';

export type GatewayLog = (level: 'info' | 'warn' | 'error', text: string) => void;

export class GatewayRole {
  private agent: GatewayAgent | null = null;
  private starting: Promise<void> | null = null;
  private stopped = false;
  private adapterState: AdapterState = 'idle';
  private plantState: PlantState = 'idle';
  private plant: PlantConnection | null = null;
  private readonly topics: PlantTopics;
  private readonly adapterUser;
  private readonly plantUser;

  constructor(
    private readonly id: string,
    private readonly settings: PlantSettings,
    private readonly adapter: AdapterConnection,
    private readonly log: GatewayLog,
  ) {
    this.topics = new PlantTopics(settings.prefix);
    this.adapterUser = {
      id: `${id}:gateway`,
      onAdapterState: (state: AdapterState) => {
        this.adapterState = state;
        this.maybeStart();
      },
    };
    this.plantUser = {
      id: `${id}:gateway`,
      onPlantState: (state: PlantState) => {
        this.plantState = state;
        this.maybeStart();
      },
    };
  }

  /** Installs at once: the setting, else the adapter's max connections. */
  get slots(): number {
    return this.settings.slots ?? this.adapter.settings.maxConnections;
  }

  /** The presence the broker publishes when this gateway goes silent. */
  will(): BusWill {
    return presenceWill(this.topics, this.settings.gatewayId, { label: this.adapter.settings.label, simulated: this.adapter.settings.simulated }, this.slots);
  }

  status(): { running: number; queued: number; sightings: number } | null {
    return this.agent ? this.agent.status() : null;
  }

  attach(plant: PlantConnection): void {
    this.plant = plant;
    this.adapter.register(this.adapterUser);
    plant.register(this.plantUser);
  }

  private maybeStart(): void {
    if (this.stopped || this.agent || this.starting || !this.plant) return;
    if (this.adapterState !== 'ready' || this.plantState !== 'connected') return;
    const plant = this.plant;
    this.starting = (async () => {
      const [backend, bus] = await Promise.all([this.adapter.acquire(), plant.acquire()]);
      if (this.stopped) return;
      const agent = new GatewayAgent({
        bus,
        topics: this.topics,
        gatewayId: this.settings.gatewayId,
        scheduler: backend.scheduler,
        clock: wallClock,
        slots: this.slots,
        adapter: { label: this.adapter.settings.label, simulated: this.adapter.settings.simulated },
        keys: { masterKey: this.adapter.settings.masterKey, fleetKey: this.adapter.settings.fleetKey },
        scanWindowMs: this.settings.scanWindowMs,
        scanEveryMs: this.settings.scanEveryMs,
        sightingsEveryMs: this.settings.sightingsEveryMs,
        ...(this.settings.imageDir ? { imageDir: this.settings.imageDir } : {}),
        log: this.log,
      });
      await agent.start();
      this.agent = agent;
      if (this.stopped) await this.stopAgent();
      else this.log('info', `gateway ${this.settings.gatewayId} joined the plant (${this.slots} slots on adapter ${this.adapter.settings.label})`);
    })()
      .catch((err) => this.log('error', `gateway ${this.settings.gatewayId} could not start: ${toOtaError(err).message}`))
      .finally(() => {
        this.starting = null;
      });
  }

  private async stopAgent(): Promise<void> {
    const agent = this.agent;
    this.agent = null;
    if (agent) await agent.stop();
  }

  /** Agent stop (tasks cancelled, presence "offline"), then the adapter and the plant connection let go. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.starting) await this.starting;
    try {
      await this.stopAgent();
    } finally {
      this.adapter.deregister(this.adapterUser);
      this.plant?.deregister(this.plantUser);
    }
  }
}
