/**
 * What the gateway agent needs from the rest of the plant layer, as small interfaces: where images come
 * from (the MQTT image transfer with its cache) and how payloads are decoded and encoded
 * (the plant's JSON schemas). The agent takes them as options; the defaults are the product's:
 * schemaGatewayCodec here, and the ImageCache of image-transfer.ts.
 */
import type { ExecutionStatus, GatewayPresence, GatewaySightings, TaskMessage } from '../messages';
import { encodePlantMessage, parsePlantMessage } from '../schemas';

/** Image bytes by SHA-256 (hex) and size; rejects with an OtaError (IMAGE_UNAVAILABLE, IMAGE_HASH_MISMATCH). */
export interface ImageSource {
  get(sha256: string, size: number): Promise<Buffer>;
}

export interface GatewayMessages {
  presence: GatewayPresence;
  sightings: GatewaySightings;
  execution: ExecutionStatus;
}

/** Decodes what arrives on the tasks topic and encodes what the gateway publishes. */
export interface GatewayCodec {
  /** Throws OtaError PAYLOAD_INVALID / PAYLOAD_TOO_LARGE naming what is wrong. */
  decodeTask(payload: Buffer): TaskMessage;
  encode<K extends keyof GatewayMessages>(kind: K, message: GatewayMessages[K]): Buffer;
}

/** The product's codec: the plant's schemas (docs/FLEET.md) for what the gateway reads and writes. */
export const schemaGatewayCodec: GatewayCodec = {
  decodeTask: (payload) => parsePlantMessage('task', payload),
  encode: (kind, message) => encodePlantMessage(kind, message as never),
};

export type GatewayLog = (level: 'info' | 'warn' | 'error', text: string) => void;
