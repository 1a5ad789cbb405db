// STUB: replaced at merge
/** Placeholder with the contract's signature so the nodes compile before the gateway agent exists. */
import { EventEmitter } from 'events';
import type { AdapterScheduler } from '../../ble/scheduler';
import type { Clock } from '../../clock';
import type { BusWill, PlantBus } from '../bus';
import type { ExecutionStatus, GatewayPresence, GatewaySightings, TaskMessage } from '../messages';
import type { PlantTopics } from '../topics';

export interface GatewayAgentOptions {
  bus: PlantBus;
  topics: PlantTopics;
  gatewayId: string;
  scheduler: AdapterScheduler;
  clock: Clock;
  slots: number;
  adapter: { label: string; simulated: boolean };
  keys: { masterKey?: Buffer; fleetKey?: Buffer };
  scanWindowMs?: number;
  scanEveryMs?: number;
  sightingsEveryMs?: number;
  forgetAfterMs?: number;
  imageDir?: string;
  log?: (level: 'info' | 'warn' | 'error', text: string) => void;
  images?: { get(sha256: string, size: number): Promise<Buffer> };
  codec?: {
    decodeTask(payload: Buffer): TaskMessage;
    encode<K extends 'presence' | 'sightings' | 'execution'>(kind: K, message: { presence: GatewayPresence; sightings: GatewaySightings; execution: ExecutionStatus }[K]): Buffer;
  };
}

export class GatewayAgent extends EventEmitter {
  constructor(readonly options: GatewayAgentOptions) {
    super();
  }
  start(): Promise<void> {
    return Promise.reject(new Error('the gateway agent is not available in this build'));
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  status(): { running: number; queued: number; sightings: number } {
    return { running: 0, queued: 0, sightings: 0 };
  }
}

export function presenceWill(topics: PlantTopics, gatewayId: string, adapter: { label: string; simulated: boolean }, slots: number): BusWill {
  return { topic: topics.presence(gatewayId), payload: JSON.stringify({ v: 1, gateway: gatewayId, state: 'offline', at: 0, slots: { total: slots, free: 0 }, adapter, software: '' }), retain: true };
}
