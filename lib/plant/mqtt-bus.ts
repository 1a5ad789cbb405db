// STUB: replaced at merge
/** Placeholder with the contract's signature so the nodes compile before the MQTT bus exists. */
import type { BusConnectOptions, PlantBus } from './bus';

export function connectMqttBus(options: BusConnectOptions): Promise<PlantBus> {
  return Promise.reject(new Error(`the MQTT bus is not available in this build (${options.url})`));
}
