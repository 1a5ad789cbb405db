/**
 * The one place where the plant nodes reach into the plant library (lib/plant): the MQTT bus, the gateway
 * agent and the rollout coordinator. Keeps the node files free of library wiring details.
 */
export { connectMqttBus } from '../../lib/plant/mqtt-bus';
export { GatewayAgent, presenceWill, type GatewayAgentOptions } from '../../lib/plant/gateway/agent';
export { RolloutCoordinator, COORDINATOR_MAX_PAYLOAD_BYTES, type CoordinatorOptions } from '../../lib/plant/coordinator/coordinator';
export { computeProgress } from '../../lib/plant/coordinator/progress';
export { PlantTopics, checkPrefix, checkTopicId, DEFAULT_PLANT_PREFIX } from '../../lib/plant/topics';
export type { BusConnectOptions, BusWill, PlantBus } from '../../lib/plant/bus';
export type { CampaignProgress, CampaignRunState, CampaignSpec, CampaignState, DeviceCampaignState, DeviceResult, WaveSpec } from '../../lib/plant/messages';
import { realClock, type Clock } from '../../lib/clock';

/**
 * The clock of a plant runtime: plant messages carry times in milliseconds since the Unix epoch and are
 * compared across processes (sighting freshness, presence), so now() is Date.now(); timers are realClock's.
 */
export const wallClock: Clock = { now: () => Date.now(), setTimer: (fn, ms) => realClock.setTimer(fn, ms), virtual: false };
