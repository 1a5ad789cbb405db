/**
 * The plant's control server for tests and the demo: JSON lines over TCP on 127.0.0.1. Each request is
 * one line `{"cmd": ..., "id"?: any, ...}`, each answer one line `{"id", "ok": true, ...}` or
 * `{"id", "ok": false, "error": {"code", "message"}}`; a connection may send any number of requests.
 * Commands (docs/PLANT-SIM.md): devices, gateways, fault, range, dropGateway.
 */
import * as net from 'net';
import { OtaError, toOtaError } from '../../errors';
import { checkFault, parseFaultSpec, type Fault } from '../faults';
import { listenOnLoopback } from './hci-server';
import type { PlantSim } from './plant-sim';

/** A request line longer than this is refused and the connection closed. */
const MAX_REQUEST = 64 * 1024;

export type PlantCommand =
  | { cmd: 'devices' }
  | { cmd: 'gateways' }
  /** fault: a spec string ("powerCut@atMs=0", "vanish") or a Fault object (docs/FAULTS.md). */
  | { cmd: 'fault'; device: string; fault: string | Fault }
  /** rssi null: out of range; device omitted: every device. */
  | { cmd: 'range'; gateway: string; device?: string; rssi: number | null }
  | { cmd: 'dropGateway'; gateway: string };

function bad(message: string): OtaError {
  return new OtaError('PLANT_BAD_COMMAND', message);
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw bad(`"${field}" must be a non-empty string`);
  return value;
}

/** Runs one command against the plant; the answer's fields besides ok/id. Throws OtaError. */
export function runPlantCommand(plant: PlantSim, request: unknown): Record<string, unknown> {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) throw bad('a request is a JSON object {"cmd": ...}');
  const r = request as Record<string, unknown>;
  switch (r.cmd) {
    case 'devices':
      return { devices: plant.deviceInfos() };
    case 'gateways':
      return { gateways: plant.gateways() };
    case 'fault': {
      const name = text(r.device, 'device');
      let fault: Fault;
      if (typeof r.fault === 'string') fault = parseFaultSpec(r.fault);
      else if (typeof r.fault === 'object' && r.fault !== null) fault = checkFault(r.fault as Fault);
      else throw bad('"fault" must be a fault spec string like "powerCut@atMs=0" or a fault object');
      plant.injectFault(name, fault);
      return {};
    }
    case 'range': {
      const gateway = text(r.gateway, 'gateway');
      const device = r.device === undefined ? undefined : text(r.device, 'device');
      if (r.rssi !== null && typeof r.rssi !== 'number') throw bad('"rssi" must be a dBm number or null (out of range)');
      plant.setRange(gateway, device, r.rssi);
      return {};
    }
    case 'dropGateway':
      return { dropped: plant.dropGateway(text(r.gateway, 'gateway')) };
    default:
      throw bad(`unknown command ${JSON.stringify(r.cmd)} (devices, gateways, fault, range, dropGateway)`);
  }
}

export class PlantControlServer {
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly plant: PlantSim) {}

  listen(port: number): Promise<number> {
    return listenOnLoopback(this.server, port);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) socket.write(`${JSON.stringify(this.answer(line))}\n`);
      }
      if (buffer.length > MAX_REQUEST) {
        socket.end(`${JSON.stringify({ ok: false, error: bad(`a request line longer than ${MAX_REQUEST} bytes`).toJSON() })}\n`);
        buffer = '';
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private answer(line: string): Record<string, unknown> {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch {
      return { ok: false, error: bad('the request is not JSON').toJSON() };
    }
    const id = typeof request === 'object' && request !== null ? (request as { id?: unknown }).id : undefined;
    try {
      return { id, ok: true, ...runPlantCommand(this.plant, request) };
    } catch (err) {
      return { id, ok: false, error: toOtaError(err, 'PLANT_BAD_COMMAND').toJSON() };
    }
  }
}

/** A client of the control server (tests, the demo): one request at a time per call, answers in order. */
export class PlantControlClient {
  private socket: net.Socket | null = null;
  private buffer = '';
  private waiting: Array<{ resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  private connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, this.host);
      socket.setEncoding('utf8');
      socket.once('connect', () => {
        this.socket = socket;
        resolve(socket);
      });
      socket.once('error', (err) => {
        reject(new OtaError('PLANT_UNAVAILABLE', `the plant's control server at ${this.host}:${this.port} is not reachable: ${err.message}`));
        this.failAll(err);
      });
      socket.on('data', (chunk: string) => {
        this.buffer += chunk;
        let nl: number;
        while ((nl = this.buffer.indexOf('\n')) >= 0) {
          const line = this.buffer.slice(0, nl);
          this.buffer = this.buffer.slice(nl + 1);
          this.waiting.shift()?.resolve(JSON.parse(line) as Record<string, unknown>);
        }
      });
      socket.on('close', () => this.failAll(new OtaError('PLANT_UNAVAILABLE', 'the control connection closed')));
    });
  }

  private failAll(err: Error): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(err);
  }

  /** Sends one command; resolves with the answer line (ok true or false). */
  async request(command: PlantCommand | Record<string, unknown>): Promise<Record<string, unknown>> {
    const socket = await this.connect();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      socket.write(`${JSON.stringify(command)}\n`);
    });
  }

  /** As request, but an answer with ok false rejects with its OtaError. */
  async command(command: PlantCommand): Promise<Record<string, unknown>> {
    const answer = await this.request(command);
    if (answer.ok !== true) {
      const e = (answer.error ?? {}) as { code?: string; message?: string };
      throw new OtaError(e.code ?? 'PLANT_BAD_COMMAND', e.message ?? 'the plant refused the command');
    }
    return answer;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }
}
