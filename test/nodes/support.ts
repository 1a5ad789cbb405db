/**
 * Shared by the node tests: the Node-RED test helper (a real runtime), our four node modules, a
 * simulated-fleet adapter definition, synthetic firmware images, and small waits on helper nodes.
 */
import { EventEmitter } from 'events';
import adapterModule from '../../nodes/ble-ota-adapter/ble-ota-adapter';
import scanModule from '../../nodes/ble-ota-scan/ble-ota-scan';
import flashModule from '../../nodes/ble-ota-flash/ble-ota-flash';
import verifyModule from '../../nodes/ble-ota-verify/ble-ota-verify';
import type { AdapterNode } from '../../nodes/ble-ota-adapter/adapter-node';
import type { AdapterBackend } from '../../nodes/shared/library';
import { buildAppImage } from '../../lib/image';
import type { ChipName } from '../../lib/sim/types';
import { nodeRedMain } from '../helpers/node-red-under-test';

/** Loosely typed JSON as the flows produce it (tests read deep into results). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export type FlowNode = Record<string, unknown> & { id: string; type: string };

export interface RuntimeNode extends EventEmitter {
  id: string;
  receive(msg: Record<string, unknown>): void;
}

export interface TestHelper {
  init(runtimePath?: string, settings?: object): void;
  load(nodes: unknown[], flow: FlowNode[], credentials?: Record<string, Record<string, string>>): Promise<void>;
  setFlows(flow: FlowNode[], type: 'full' | 'flows' | 'nodes', credentials?: Record<string, Record<string, string>>): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): RuntimeNode | null;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
  settings(s: object): object;
  url(): string;
  log(): { args: unknown[][] };
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper: TestHelper = require('node-red-node-test-helper');
helper.init(nodeRedMain);

export const otaNodes = [adapterModule, scanModule, flashModule, verifyModule];

export const FIVE_LINE_DEVICES = ['esp32-line-01', 'esp32-line-02', 'esp32-line-03', 'esp32-line-04', 'esp32-line-05'];

/**
 * The plant master key of the test fleets. Devices are secure by default: a simulated adapter provisions
 * each of its devices with the key derived from its Master key credential, and the nodes use the same
 * credential, as in production. Tests about who may update use their own credentials.
 */
export const TEST_MASTER_KEY = '5e'.repeat(32);

/** The Master key credential for every adapter config node of a flow. */
export function keyedCredentials(flow: FlowNode[]): Record<string, Record<string, string>> {
  return Object.fromEntries(flow.filter((n) => n.type === 'ble-ota-adapter').map((n) => [n.id, { masterKey: TEST_MASTER_KEY }]));
}

/** helper.load with the adapters keyed (keyedCredentials) unless credentials are given. */
export function loadFlow(nodes: unknown[], flow: FlowNode[], credentials: Record<string, Record<string, string>> = keyedCredentials(flow)): Promise<void> {
  return helper.load(nodes, flow, credentials);
}

/** A simulated-fleet adapter on the virtual clock (transfers take no wall time). */
export function simAdapter(id: string, settings: Record<string, unknown> = {}): FlowNode {
  return {
    id,
    type: 'ble-ota-adapter',
    name: 'test fleet',
    mode: 'sim',
    maxConnections: 3,
    scanSeconds: 2,
    findSeconds: 3,
    simSize: 5,
    simNamePrefix: 'esp32-line-',
    simChip: 'esp32',
    simVersion: '1.0.0',
    simDevices: '',
    simLink: 'reference',
    simClock: 'virtual',
    simDiagnostics: 'pass',
    simConfirmPolicy: 'auto',
    ...settings,
  };
}

export function helperNode(id: string, z = 'tab'): FlowNode {
  return { id, type: 'helper', z, wires: [] };
}

const imageCache = new Map<string, Buffer>();

export function image(version: string, chip: ChipName = 'esp32', size = 200 * 1024): Buffer {
  const key = `${chip}/${version}/${size}`;
  const cached = imageCache.get(key);
  if (cached) return cached;
  const img: Buffer = buildAppImage({ chip, version, projectName: 'node-test', secureVersion: 0, size, seed: 7 });
  imageCache.set(key, img);
  return img;
}

/** Resolves with the next message a helper node receives (rejects after ms). */
export function nextInput(node: RuntimeNode | null, ms = 15000): Promise<Record<string, unknown>> {
  if (!node) throw new Error('helper node missing');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message at ${node.id} within ${ms} ms`)), ms);
    node.once('input', (msg: Record<string, unknown>) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

/** Collects every message a helper node receives. */
export function collect(node: RuntimeNode | null): Record<string, unknown>[] {
  if (!node) throw new Error('helper node missing');
  const list: Record<string, unknown>[] = [];
  node.on('input', (msg: Record<string, unknown>) => list.push(msg));
  return list;
}

export function expectNoInput(node: RuntimeNode | null, ms: number): Promise<void> {
  if (!node) throw new Error('helper node missing');
  return new Promise((resolve, reject) => {
    const onInput = (msg: unknown) => reject(new Error(`unexpected message at ${node.id}: ${JSON.stringify(msg).slice(0, 200)}`));
    node.once('input', onInput);
    setTimeout(() => {
      node.removeListener('input', onInput);
      resolve();
    }, ms);
  });
}

/** The open backend of an adapter config node (waits until the adapter is ready). */
export async function backendOf(adapterId: string): Promise<AdapterBackend> {
  const node = helper.getNode(adapterId) as unknown as AdapterNode | null;
  if (!node) throw new Error(`adapter ${adapterId} not deployed`);
  return node.connection.acquire();
}

export function adapterNode(adapterId: string): AdapterNode {
  const node = helper.getNode(adapterId) as unknown as AdapterNode | null;
  if (!node) throw new Error(`adapter ${adapterId} not deployed`);
  return node;
}
