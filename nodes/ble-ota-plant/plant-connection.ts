/**
 * One plant broker connection shared by every node that uses it, in the pattern of the adapter's
 * AdapterConnection: users register and deregister; the connection opens on the first user (or at once on
 * a gateway) and closes after the last one leaves (with a short grace, so a redeploy keeps it), and every
 * state change fans out to the users so their status shows "broker unavailable" or "reconnecting". A first
 * connection that fails is tried again every retryMs while someone needs it; once up, the bus reconnects
 * by itself (mqtt-bus) and the connection only reports it.
 */
import { EventEmitter } from 'events';
import { OtaError, toOtaError } from '../../lib/errors';
import type { PlantBus } from '../shared/plant-library';

export type PlantState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'unavailable' | 'error' | 'closed';

export interface PlantUser {
  id: string;
  onPlantState(state: PlantState, detail: string): void;
}

export interface PlantConnectionOptions {
  /** Where it connects, for log lines and messages (never with credentials: plant-config refuses them in URLs). */
  label: string;
  /** Opens the bus (mqtt-bus with the will, credentials and TLS of the config node). */
  open: () => Promise<PlantBus>;
  log: (text: string) => void;
  /** The configuration itself is wrong: never connects, every acquire fails with this error. */
  configError?: Error | null;
  /** A gateway stays connected without users (its agent is one). */
  keepOpen?: boolean;
  retryMs?: number;
  idleCloseMs?: number;
}

export class PlantConnection extends EventEmitter {
  private readonly users = new Map<string, PlantUser>();
  private bus: PlantBus | null = null;
  private opening: Promise<PlantBus> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private currentState: PlantState = 'idle';
  private detail = '';
  private readonly onConnect = () => this.setState('connected', '');
  private readonly onOffline = () => this.setState('reconnecting', 'broker connection lost');

  constructor(private readonly options: PlantConnectionOptions) {
    super();
    this.setMaxListeners(0);
    if (options.configError) this.setState('error', options.configError.message);
  }

  get state(): PlantState {
    return this.currentState;
  }

  get stateDetail(): string {
    return this.detail;
  }

  get label(): string {
    return this.options.label;
  }

  /** The bus once it has connected (it may be reconnecting now). */
  get current(): PlantBus | null {
    return this.bus;
  }

  get userCount(): number {
    return this.users.size;
  }

  register(user: PlantUser): void {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    this.users.set(user.id, user);
    user.onPlantState(this.currentState, this.detail);
    this.start();
  }

  deregister(user: PlantUser): void {
    this.users.delete(user.id);
    if (this.users.size > 0 || this.options.keepOpen || this.currentState === 'closed') return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.users.size === 0) this.shutdown().catch(() => undefined);
    }, this.options.idleCloseMs ?? 2000);
  }

  /** Starts connecting unless connected, connecting, misconfigured or closed. */
  start(): void {
    if (this.options.configError || this.currentState === 'closed' || this.bus || this.opening) return;
    this.acquire().catch(() => undefined);
  }

  /** The bus; waits for a first connection under way. Fails with the config error or PLANT_NOT_CONNECTED. */
  async acquire(): Promise<PlantBus> {
    if (this.options.configError) throw this.options.configError;
    if (this.currentState === 'closed') throw new OtaError('PLANT_NOT_CONNECTED', `the plant connection to ${this.options.label} is closed (the flow is being redeployed or stopped)`);
    if (this.bus) return this.bus;
    if (!this.opening) this.opening = this.openNow();
    return this.opening;
  }

  private async openNow(): Promise<PlantBus> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.setState('connecting', '');
    try {
      const bus = await this.options.open();
      if (this.currentState === 'closed') {
        await bus.close();
        throw new OtaError('PLANT_NOT_CONNECTED', `the plant connection to ${this.options.label} closed while connecting`);
      }
      this.bus = bus;
      bus.on('connect', this.onConnect);
      bus.on('offline', this.onOffline);
      this.setState(bus.connected ? 'connected' : 'reconnecting', bus.connected ? '' : 'broker connection lost');
      this.emit('bus', bus);
      return bus;
    } catch (err) {
      const error = toOtaError(err, 'PLANT_NOT_CONNECTED');
      if (this.currentState === 'closed') throw error;
      this.setState('unavailable', error.message);
      this.scheduleRetry();
      throw new OtaError('PLANT_NOT_CONNECTED', `the plant broker ${this.options.label} is not reachable: ${error.message}`, { cause: error.code });
    } finally {
      this.opening = null;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || (this.users.size === 0 && !this.options.keepOpen)) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.start();
    }, this.options.retryMs ?? 5000);
  }

  private setState(state: PlantState, detail: string): void {
    if (state === this.currentState && detail === this.detail) return;
    this.currentState = state;
    this.detail = detail;
    this.options.log(`plant broker ${this.options.label}: ${state}${detail ? ` (${detail})` : ''}`);
    for (const user of [...this.users.values()]) user.onPlantState(state, detail);
    this.emit('state', state, detail);
  }

  private async shutdown(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const bus = this.bus ?? (this.opening ? await this.opening.catch(() => null) : null);
    this.detach(bus);
    if (bus) await bus.close();
    if (this.currentState !== 'closed' && !this.options.configError) this.setState('idle', '');
  }

  private detach(bus: PlantBus | null): void {
    this.bus = null;
    if (!bus) return;
    bus.off('connect', this.onConnect);
    bus.off('offline', this.onOffline);
  }

  /** Config node close: closes the connection for good (publish your own "offline" before). */
  async close(): Promise<void> {
    for (const timer of [this.idleTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.idleTimer = null;
    this.retryTimer = null;
    const bus = this.bus;
    const opening = this.opening;
    this.setState('closed', '');
    this.users.clear();
    this.detach(bus);
    if (bus) await bus.close();
    // A connection still being opened closes itself when it sees the closed state (openNow); a redeploy does
    // not wait for a broker that does not answer.
    else if (opening) opening.catch(() => undefined);
  }
}
