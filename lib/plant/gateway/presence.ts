/** The gateway's presence message and the MQTT will that says "offline" for it when it dies. */
import type { BusWill } from '../bus';
import { PLANT_MESSAGE_VERSION, type GatewayPresence } from '../messages';
import type { PlantTopics } from '../topics';
import { packageVersion } from './software-version';

export interface PresenceFacts {
  gateway: string;
  adapter: { label: string; simulated: boolean };
  slots: { total: number; free: number };
  at: number;
  software?: string;
}

export function presenceMessage(state: GatewayPresence['state'], facts: PresenceFacts): GatewayPresence {
  return {
    v: PLANT_MESSAGE_VERSION,
    gateway: facts.gateway,
    state,
    at: facts.at,
    slots: { total: facts.slots.total, free: facts.slots.free },
    adapter: { label: facts.adapter.label, simulated: facts.adapter.simulated },
    software: facts.software ?? packageVersion(),
  };
}

/**
 * The will to connect with: retained presence "offline" with no free slots. `at` is when the will was made
 * (the connection's start): the broker publishes it later, unchanged.
 */
export function presenceWill(topics: PlantTopics, gatewayId: string, adapter: { label: string; simulated: boolean }, slots: number, at: number = Date.now()): BusWill {
  const message = presenceMessage('offline', { gateway: gatewayId, adapter, slots: { total: slots, free: 0 }, at });
  return { topic: topics.presence(gatewayId), payload: Buffer.from(JSON.stringify(message)), retain: true };
}
