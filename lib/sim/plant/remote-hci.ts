/**
 * The gateway's side of the plant simulator: an HCI transport over TCP (wire.ts) to the plant's HCI
 * server, under noble's own hci-socket layer loaded by createHciNoble (lib/sim/hci/noble-hci-loader.ts),
 * the same seam the simulated fleet uses. isUp() is the TCP connection: noble's 1 s isDevUp poll
 * (hci.js:169-200) sees a lost connection as an adapter that went down, and a new connection (the
 * transport reconnects) as one that came back, which noble initialises again. The plant gives every
 * connection a fresh central, as a replugged dongle is a fresh controller.
 */
import * as net from 'net';
import { createNobleCentral, type NobleBleCentral } from '../../ble/noble-central';
import { OtaError } from '../../errors';
import { createHciNoble, type NobleScopeHost } from '../hci/noble-hci-loader';
import type { VirtualHciSocket } from '../hci/virtual-hci-socket';
import { frame, PlantStreamReader } from './wire';

export interface RemotePlantOptions {
  host: string;
  port: number;
  /** This gateway's id in the plant layout. */
  gateway: string;
  /** Connect again after the connection was lost (default true; every reconnectMs, default 1000). */
  reconnect?: boolean;
  reconnectMs?: number;
  /** How long the first connection (TCP and hello answer) may take (default 5000 ms). */
  connectTimeoutMs?: number;
}

export class RemoteHciTransport implements NobleScopeHost {
  /** The adapter number inside noble's scope (hciN); the plant knows the gateway by its id. */
  readonly deviceId = 0;
  /** The plant's address for this gateway's adapter (from the hello answer). */
  adapterAddress = '';
  private readonly sockets = new Set<VirtualHciSocket>();
  private readonly pollTimers = new Set<NodeJS.Timeout>();
  private readonly processListeners: Array<[string, (...args: unknown[]) => void]> = [];
  private tcp: net.Socket | null = null;
  private up = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  /** Connections made (the first one and every reconnection). */
  sessions = 0;

  constructor(private readonly options: RemotePlantOptions) {}

  /** Connects and waits for the plant's hello answer; OtaError PLANT_UNAVAILABLE or the plant's refusal code. */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.connectTimeoutMs ?? 5000;
      const socket = net.connect(this.options.port, this.options.host);
      socket.setNoDelay(true);
      let answered = false;
      const timer = setTimeout(() => fail(new OtaError('PLANT_UNAVAILABLE', `the plant at ${this.where()} did not answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: OtaError) => {
        clearTimeout(timer);
        if (!answered) {
          answered = true;
          reject(err);
        }
        socket.destroy();
      };
      const reader = new PlantStreamReader(
        (line) => {
          let answer: { ok?: boolean; address?: string; error?: { code?: string; message?: string } };
          try {
            answer = JSON.parse(line) as typeof answer;
          } catch {
            return fail(new OtaError('PLANT_PROTOCOL', `the plant at ${this.where()} answered the hello with something that is not JSON`));
          }
          if (answer.ok !== true) return fail(new OtaError(answer.error?.code ?? 'PLANT_PROTOCOL', answer.error?.message ?? 'the plant refused the gateway'));
          clearTimeout(timer);
          answered = true;
          this.adapterAddress = answer.address ?? '';
          this.tcp = socket;
          this.up = true;
          this.sessions++;
          resolve();
        },
        (packet) => {
          for (const s of this.sockets) s.deliver(packet);
        },
      );
      socket.on('connect', () => socket.write(`${JSON.stringify({ gateway: this.options.gateway })}\n`));
      socket.on('data', (chunk: Buffer) => {
        try {
          reader.push(chunk);
        } catch (err) {
          fail(err as OtaError);
        }
      });
      socket.on('error', (err) => fail(new OtaError('PLANT_UNAVAILABLE', `the plant at ${this.where()} is not reachable: ${err.message}`)));
      socket.on('close', () => {
        clearTimeout(timer);
        if (!answered) {
          answered = true;
          reject(new OtaError('PLANT_UNAVAILABLE', `the plant at ${this.where()} closed the connection`));
        }
        if (this.tcp === socket) this.lost();
      });
    });
  }

  isUp(): boolean {
    return this.up;
  }

  open(socket: VirtualHciSocket): void {
    this.sockets.add(socket);
  }

  close(socket: VirtualHciSocket): void {
    this.sockets.delete(socket);
  }

  fromHost(packet: Buffer): void {
    // Adapter down (connection lost): nothing is sent, as to a controller that is gone.
    if (this.up && this.tcp && !this.tcp.destroyed) this.tcp.write(frame(packet));
  }

  pollTimer(fn: () => void, ms: number): unknown {
    if (this.closed) return null;
    const timer = setTimeout(() => {
      this.pollTimers.delete(timer);
      if (!this.closed) fn();
    }, ms);
    timer.unref();
    this.pollTimers.add(timer);
    return timer;
  }

  processListener(event: string, fn: (...args: unknown[]) => void): void {
    // noble's SIGINT/exit handlers are kept here and dropped on shutdown (noble-hci-loader.ts).
    this.processListeners.push([event, fn]);
  }

  /** Closes the connection for good (no reconnection). */
  shutdown(): void {
    this.closed = true;
    this.up = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    for (const t of this.pollTimers) clearTimeout(t);
    this.pollTimers.clear();
    this.processListeners.length = 0;
    this.tcp?.destroy();
    this.tcp = null;
    this.sockets.clear();
  }

  /** The gateway's adapter dies as seen from the plant (tests): the connection closes, reconnection follows unless disabled. */
  dropConnection(): void {
    this.tcp?.destroy();
  }

  private lost(): void {
    this.tcp = null;
    this.up = false;
    if (this.closed || this.options.reconnect === false) return;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.retry || this.closed) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.closed) return;
      this.connect().catch(() => this.scheduleReconnect());
    }, this.options.reconnectMs ?? 1000);
    this.retry.unref();
  }

  private where(): string {
    return `${this.options.host}:${this.options.port}`;
  }
}

export type RemotePlantCentral = NobleBleCentral & { readonly transport: RemoteHciTransport };

/**
 * A NobleBleCentral for this gateway on the plant simulator: a real noble on its hci-socket layer over
 * the TCP transport. Resolves once the plant took the gateway (PLANT_UNAVAILABLE, PLANT_UNKNOWN_GATEWAY,
 * PLANT_GATEWAY_CONNECTED otherwise); close() also closes the connection.
 */
export async function createRemotePlantCentral(options: RemotePlantOptions): Promise<RemotePlantCentral> {
  const transport = new RemoteHciTransport(options);
  await transport.connect();
  const central = createNobleCentral(() => createHciNoble(transport), { adapterName: `plant gateway "${options.gateway}"` });
  const closeCentral = central.close.bind(central);
  return Object.assign(central, {
    transport,
    async close(): Promise<void> {
      try {
        await closeCentral();
      } finally {
        transport.shutdown();
      }
    },
  });
}
