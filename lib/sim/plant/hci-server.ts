/**
 * The plant's HCI server: one TCP connection per gateway process (127.0.0.1 only). After the hello line
 * the connection is that gateway's adapter: a VirtualHciSocket bound to a new central of the plant's radio
 * carries HCI packets both ways (wire.ts framing). When the connection closes the adapter is gone, as a
 * dead USB dongle is: the central leaves the radio and its devices notice by their supervision timeouts.
 */
import * as net from 'net';
import { OtaError, toOtaError } from '../../errors';
import { VirtualHciSocket } from '../hci/virtual-hci-socket';
import type { CentralController } from '../hci/central-controller';
import { frame, PlantStreamReader } from './wire';
import type { PlantSim } from './plant-sim';

/** A connection that has not said which gateway it is within this time is closed. */
const HELLO_TIMEOUT_MS = 5000;

interface Session {
  gateway: string;
  socket: net.Socket;
}

export class PlantHciServer {
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly plant: PlantSim) {}

  listen(port: number): Promise<number> {
    return listenOnLoopback(this.server, port);
  }

  /** Closes the gateway's connection; false when it has none. */
  drop(gateway: string): boolean {
    const session = this.sessions.get(gateway);
    if (!session) return false;
    session.socket.destroy();
    return true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let controller: CentralController | null = null;
    let gateway: string | null = null;
    let hci: VirtualHciSocket | null = null;
    const helloTimer = setTimeout(() => refuse(new OtaError('PLANT_PROTOCOL', `no hello line within ${HELLO_TIMEOUT_MS} ms`)), HELLO_TIMEOUT_MS);
    const refuse = (err: OtaError) => {
      if (socket.destroyed) return;
      socket.end(`${JSON.stringify({ ok: false, error: err.toJSON() })}\n`);
      socket.destroySoon?.();
    };
    const reader = new PlantStreamReader(
      (line) => {
        clearTimeout(helloTimer);
        let id: unknown;
        try {
          id = (JSON.parse(line) as { gateway?: unknown }).gateway;
        } catch {
          id = undefined;
        }
        if (typeof id !== 'string') return refuse(new OtaError('PLANT_PROTOCOL', 'the hello line must be JSON {"gateway": "<id>"}'));
        try {
          controller = this.plant.attachGateway(id);
        } catch (err) {
          return refuse(toOtaError(err, 'PLANT_PROTOCOL'));
        }
        gateway = id;
        const bound = controller;
        hci = new VirtualHciSocket(() => bound);
        hci.bindRaw(bound.deviceId);
        hci.on('data', (packet: Buffer) => {
          if (!socket.destroyed) socket.write(frame(packet));
        });
        hci.on('error', () => undefined);
        hci.start();
        this.sessions.set(id, { gateway: id, socket });
        socket.write(`${JSON.stringify({ ok: true, gateway: id, address: bound.address })}\n`);
      },
      (packet) => hci?.write(packet),
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        if (hci) socket.destroy();
        else refuse(toOtaError(err, 'PLANT_PROTOCOL'));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(socket);
      hci?.stop();
      if (gateway !== null && controller) {
        if (this.sessions.get(gateway)?.socket === socket) this.sessions.delete(gateway);
        this.plant.detachGateway(gateway, controller);
      }
    });
  }
}

/** Listens on 127.0.0.1 (never another interface); resolves with the port. */
export function listenOnLoopback(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new OtaError('PLANT_PORT_UNAVAILABLE', `cannot listen on 127.0.0.1:${port}: ${err.code ?? err.message}`));
    };
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
