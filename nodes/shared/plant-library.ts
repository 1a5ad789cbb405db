/**
 * The one place where the plant nodes reach into the plant library (lib/plant): the MQTT bus, the gateway
 * agent and the rollout coordinator. Keeps the node files free of library wiring details.
 */
import { ImageCache, ImageServer } from '../../lib/plant/image-transfer';
import { encodePlantMessage, parsePlantMessage } from '../../lib/plant/schemas';
import type { PlantBus } from '../../lib/plant/bus';
import type { PlantTopics } from '../../lib/plant/topics';
import type { GatewayAgentOptions } from '../../lib/plant/gateway/agent';
import type { CoordinatorOptions } from '../../lib/plant/coordinator/coordinator';

export { connectMqttBus } from '../../lib/plant/mqtt-bus';
export { GatewayAgent, presenceWill, type GatewayAgentOptions } from '../../lib/plant/gateway/agent';
export { RolloutCoordinator, type CoordinatorOptions } from '../../lib/plant/coordinator/coordinator';
export { PlantTopics, checkPrefix, checkTopicId, DEFAULT_PLANT_PREFIX } from '../../lib/plant/topics';
export type { BusConnectOptions, BusWill, PlantBus } from '../../lib/plant/bus';
export type { CampaignProgress, CampaignRunState, CampaignSpec, CampaignState, DeviceCampaignState, DeviceResult, WaveSpec } from '../../lib/plant/messages';
import { realClock, type Clock } from '../../lib/clock';

/**
 * The clock of a plant runtime: plant messages carry times in milliseconds since the Unix epoch and are
 * compared across processes (sighting freshness, presence), so now() is Date.now(); timers are realClock's.
 */
export const wallClock: Clock = { now: () => Date.now(), setTimer: (fn, ms) => realClock.setTimer(fn, ms), virtual: false };

type PlantLogger = (level: 'info' | 'warn' | 'error', text: string) => void;

/**
 * What a gateway agent gets from the rest of the plant library: images fetched over MQTT once per gateway
 * (cached in memory and in imageDir when set, SHA-256 checked) and the schema-checked codec.
 */
export function gatewayPorts(bus: PlantBus, topics: PlantTopics, gatewayId: string, imageDir: string, log: PlantLogger): Pick<GatewayAgentOptions, 'images' | 'codec'> {
  return {
    images: new ImageCache(bus, topics, gatewayId, wallClock, { ...(imageDir ? { dir: imageDir } : {}), log }),
    codec: {
      decodeTask: (payload) => parsePlantMessage('task', payload),
      encode: (kind, message) => encodePlantMessage(kind, message as never),
    },
  };
}

/** What a coordinator gets: the schema-checked codec and the server that sends images to the gateways that ask. */
export function coordinatorPorts(): Pick<CoordinatorOptions, 'codec' | 'imageServer'> {
  return {
    codec: {
      decode: (kind, payload) => parsePlantMessage(kind, payload) as never,
      encode: (kind, message) => encodePlantMessage(kind, message as never),
    },
    imageServer: (bus, topics, lookup, log) => new ImageServer(bus, topics, lookup, log),
  };
}
