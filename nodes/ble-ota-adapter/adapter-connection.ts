/**
 * One BLE adapter shared by every node that uses it, in the pattern of Node-RED's MQTT broker node:
 * users register and deregister; the adapter opens on the first user and closes after the last one
 * leaves (with a short grace so a redeploy that re-registers keeps the adapter and its devices), and
 * every state change fans out to the users so their status shows "adapter off" or "missing".
 */
import { EventEmitter } from 'events';
import { OtaError, toOtaError } from '../../lib/errors';
import type { AdapterBackend } from '../shared/library';
import { NO_KEY_DETAIL, forNodeRed } from '../shared/adapter-user';

export type AdapterState = 'idle' | 'starting' | 'ready' | 'off' | 'missing' | 'error' | 'closed';

export interface AdapterUser {
  id: string;
  onAdapterState(state: AdapterState, detail: string): void;
}

export interface AdapterSettings {
  label: string;
  maxConnections: number;
  scanMs: number;
  findTimeoutMs: number;
  readyTimeoutMs: number;
  /** How long the adapter stays open after its last user left (ms). */
  idleCloseMs: number;
  fleetKey?: Buffer;
  /** Plant master key: each device's session key is derived from it (recommended over fleetKey). */
  masterKey?: Buffer;
  /** A simulated fleet: every status, result and log line says so. */
  simulated: boolean;
  /** A real adapter without master or fleet key: provisioned devices refuse it, the nodes' status says so. */
  keyless?: boolean;
}

/** Who holds a device: the node and its label, for "busy" messages. */
export interface DeviceClaim {
  owner: string;
  label: string;
}

function stateForError(code: string): AdapterState {
  if (code === 'ADAPTER_OFF') return 'off';
  if (code.startsWith('BAD_')) return 'error';
  return 'missing';
}

export class AdapterConnection extends EventEmitter {
  private readonly users = new Map<string, AdapterUser>();
  private backend: AdapterBackend | null = null;
  private opening: Promise<AdapterBackend> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private currentState: AdapterState = 'idle';
  private detail = '';
  /** Devices being updated through this adapter, by resolved address, across every node that shares it. */
  private readonly claims = new Map<string, DeviceClaim>();

  constructor(
    readonly settings: AdapterSettings,
    private readonly open: () => Promise<AdapterBackend>,
    private readonly log: (text: string) => void,
  ) {
    super();
    // One listener per waiting job: a line with many queued requests is normal, not a leak.
    this.setMaxListeners(0);
  }

  get state(): AdapterState {
    return this.currentState;
  }

  get stateDetail(): string {
    return this.detail;
  }

  get userCount(): number {
    return this.users.size;
  }

  /** The open backend, if any (tests use it to reach the simulated fleet). */
  get current(): AdapterBackend | null {
    return this.backend;
  }

  /** Who holds the device with this address, if anyone. */
  holder(address: string): DeviceClaim | undefined {
    return this.claims.get(address.toLowerCase());
  }

  /** Takes the device for `owner`; false when someone else holds it. */
  claim(address: string, claim: DeviceClaim): boolean {
    const key = address.toLowerCase();
    const current = this.claims.get(key);
    if (current && current !== claim) return false;
    this.claims.set(key, claim);
    return true;
  }

  release(address: string, claim: DeviceClaim): void {
    const key = address.toLowerCase();
    if (this.claims.get(key) !== claim) return;
    this.claims.delete(key);
    this.emit('released', key);
  }

  /** Resolves once the device is free (or rejects with the signal's reason). */
  waitUntilFree(address: string, signal: AbortSignal): Promise<void> {
    const key = address.toLowerCase();
    if (!this.claims.has(key)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onReleased = (released: string) => {
        if (released !== key) return;
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(signal.reason);
      };
      const cleanup = () => {
        this.off('released', onReleased);
        signal.removeEventListener('abort', onAbort);
      };
      this.on('released', onReleased);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  register(user: AdapterUser): void {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    this.users.set(user.id, user);
    user.onAdapterState(this.currentState, this.detail);
    if (this.currentState === 'closed') return;
    if (!this.backend && !this.opening) this.acquire().catch(() => undefined);
  }

  deregister(user: AdapterUser): void {
    this.users.delete(user.id);
    if (this.users.size > 0 || this.currentState === 'closed') return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.users.size === 0) this.shutdown().catch(() => undefined);
    }, this.settings.idleCloseMs);
  }

  /** Opens the adapter if needed and waits until it is powered on; throws ADAPTER_OFF / ADAPTER_MISSING. */
  async acquire(): Promise<AdapterBackend> {
    if (this.currentState === 'closed') throw new OtaError('ADAPTER_CLOSED', `adapter ${this.settings.label} is shutting down`);
    if (this.backend) {
      // The central knows before its stateChange event has reached us.
      if (this.backend.central.state === 'poweredOff') this.setState('off', 'adapter powered off');
      if (this.currentState === 'off') throw new OtaError('ADAPTER_OFF', `adapter ${this.settings.label} is powered off`);
      if (this.currentState === 'missing' || this.currentState === 'error') throw new OtaError('ADAPTER_MISSING', `adapter ${this.settings.label} is not available: ${this.detail}`);
      return this.backend;
    }
    if (!this.opening) this.opening = this.openNow();
    return this.opening;
  }

  private async openNow(): Promise<AdapterBackend> {
    this.setState('starting', '');
    try {
      const backend = await this.open();
      backend.central.on('stateChange', (state: string) => this.onCentralState(state));
      await backend.central.waitReady(this.settings.readyTimeoutMs);
      if (this.currentState === 'closed') {
        await backend.close();
        throw new OtaError('ADAPTER_CLOSED', `adapter ${this.settings.label} closed while opening`);
      }
      this.backend = backend;
      this.setState('ready', this.readyDetail());
      return backend;
    } catch (err) {
      const e = forNodeRed(toOtaError(err, 'ADAPTER_MISSING'));
      if (this.currentState !== 'closed') this.setState(stateForError(e.code), e.message);
      throw e;
    } finally {
      this.opening = null;
    }
  }

  private onCentralState(state: string): void {
    if (this.currentState === 'closed' || this.currentState === 'starting') return;
    if (state === 'poweredOn') this.setState('ready', this.readyDetail());
    else if (state === 'poweredOff') this.setState('off', 'adapter powered off');
    else if (state === 'unsupported' || state === 'unauthorized') this.setState('missing', `adapter ${state}`);
  }

  private readyDetail(): string {
    return this.settings.keyless ? NO_KEY_DETAIL : '';
  }

  private setState(state: AdapterState, detail: string): void {
    if (state === this.currentState && detail === this.detail) return;
    this.currentState = state;
    this.detail = detail;
    this.log(`adapter ${this.settings.label}: ${state}${detail ? ` (${detail})` : ''}`);
    for (const user of this.users.values()) user.onAdapterState(state, detail);
    this.emit('state', state, detail);
  }

  private async shutdown(): Promise<void> {
    const backend = this.backend ?? (this.opening ? await this.opening.catch(() => null) : null);
    this.backend = null;
    if (backend) await backend.close();
    if (this.currentState !== 'closed') this.setState('idle', '');
  }

  /** Config node close: closes the adapter for good. */
  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const backend = this.backend;
    const opening = this.opening;
    this.setState('closed', '');
    this.users.clear();
    this.backend = null;
    if (backend) await backend.close();
    else if (opening) await opening.then((b) => b.close()).catch(() => undefined);
  }
}
