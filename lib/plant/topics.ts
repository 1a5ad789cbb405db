/**
 * The plant's MQTT topic tree, version 1 (docs/FLEET.md). Every topic starts with the configured prefix
 * (default "ble-ota/plant") then "v1", so a later incompatible tree can live beside this one on one broker.
 * Ids used as topic levels (gateway ids, campaign ids, device addresses, image digests) never contain
 * "/", "+", "#" or NUL: checkTopicId refuses them.
 */
import { OtaError } from '../errors';

export const PLANT_TOPIC_VERSION = 'v1';
export const DEFAULT_PLANT_PREFIX = 'ble-ota/plant';

/** Gateway ids, campaign ids: 1..64 of [A-Za-z0-9._-]. Addresses and digests also fit. */
const TOPIC_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export function checkTopicId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !TOPIC_ID.test(value)) {
    throw new OtaError('PLANT_BAD_ID', `${what} must be 1 to 64 characters of letters, digits, ".", "_", ":" or "-", got ${JSON.stringify(value)}`);
  }
  return value;
}

export function checkPrefix(value: unknown): string {
  const prefix = value === undefined || value === '' ? DEFAULT_PLANT_PREFIX : value;
  if (typeof prefix !== 'string' || prefix.length > 128 || /[+#]/.test(prefix) || prefix.includes(String.fromCharCode(0)) || prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//')) {
    throw new OtaError('PLANT_BAD_ID', `the topic prefix must be up to 128 characters without "+", "#", leading/trailing or double "/", got ${JSON.stringify(value)}`);
  }
  return prefix;
}

/** Device addresses as topic levels: lower case without colons ("aabbccddeeff"). */
export function addressLevel(address: string): string {
  return address.toLowerCase().replace(/:/g, '');
}

export class PlantTopics {
  readonly root: string;
  constructor(prefix: string = DEFAULT_PLANT_PREFIX) {
    this.root = `${checkPrefix(prefix)}/${PLANT_TOPIC_VERSION}`;
  }
  /** Retained GatewayPresence; the gateway's MQTT will publishes state "offline" here. */
  presence(gateway: string): string {
    return `${this.root}/gateways/${gateway}/presence`;
  }
  /** Retained GatewaySightings (whole list, republished every sightingsEveryMs). */
  sightings(gateway: string): string {
    return `${this.root}/gateways/${gateway}/sightings`;
  }
  /** TaskMessage from a coordinator to one gateway (QoS 1, not retained). */
  tasks(gateway: string): string {
    return `${this.root}/gateways/${gateway}/tasks`;
  }
  /** Retained ExecutionStatus of one device in one campaign, published by the gateway running it. */
  execution(campaign: string, address: string): string {
    return `${this.root}/campaigns/${campaign}/executions/${addressLevel(address)}`;
  }
  /** Retained CampaignState, the coordinator's whole record (it resumes from it after a restart). */
  campaignState(campaign: string): string {
    return `${this.root}/campaigns/${campaign}/state`;
  }
  /** CampaignProgress (not retained), after every change and at least every progressEveryMs. */
  campaignProgress(campaign: string): string {
    return `${this.root}/campaigns/${campaign}/progress`;
  }
  /** CampaignControl to the coordinator: pause / resume / cancel. */
  campaignControl(campaign: string): string {
    return `${this.root}/campaigns/${campaign}/control`;
  }
  /** ImageRequest from a gateway that lacks an image (QoS 1). */
  imageRequest(sha256: string): string {
    return `${this.root}/images/${sha256}/request`;
  }
  /** ImageChunk stream to the requesting gateway only (binary frames, QoS 1): one copy per gateway. */
  imageChunks(sha256: string, gateway: string): string {
    return `${this.root}/images/${sha256}/to/${gateway}`;
  }
  /** Retained DeviceClaim: which campaign holds a device (two campaigns never hold one device). */
  deviceClaim(address: string): string {
    return `${this.root}/devices/${addressLevel(address)}/claim`;
  }
  /** Filters. */
  get allPresence(): string {
    return `${this.root}/gateways/+/presence`;
  }
  get allSightings(): string {
    return `${this.root}/gateways/+/sightings`;
  }
  allExecutions(campaign: string): string {
    return `${this.root}/campaigns/${campaign}/executions/+`;
  }
  get allCampaignStates(): string {
    return `${this.root}/campaigns/+/state`;
  }
  get allCampaignControls(): string {
    return `${this.root}/campaigns/+/control`;
  }
  get allImageRequests(): string {
    return `${this.root}/images/+/request`;
  }
  get allClaims(): string {
    return `${this.root}/devices/+/claim`;
  }
}
