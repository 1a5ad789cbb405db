/**
 * What the plant's agents and coordinators need from an MQTT broker connection. Implemented over mqtt.js
 * (mqtt-bus.ts, the product) and by an in-process broker on a Clock (memory-bus.ts: unit tests and the
 * modeled plant benchmark, where time is virtual; it keeps MQTT's retained, will and per-topic ordering
 * semantics, docs/FLEET.md says which).
 */
export interface BusMessage {
  topic: string;
  payload: Buffer;
  /** True when the broker delivers a retained message on subscribe. */
  retain: boolean;
}

export interface PublishOptions {
  /** Default false. An empty payload with retain clears the retained message (MQTT 3.1.1 §3.3.1.3). */
  retain?: boolean;
  /** Default 1. */
  qos?: 0 | 1;
}

export interface BusWill {
  topic: string;
  payload: Buffer | string;
  retain: boolean;
}

export interface BusConnectOptions {
  /** mqtt://, mqtts://, ws://, wss:// */
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  tls?: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string; rejectUnauthorized?: boolean };
  will?: BusWill;
  /** Payloads larger than this are dropped on receipt with a PAYLOAD_TOO_LARGE report (default 1 MiB). */
  maxPayloadBytes?: number;
  /** Seconds (default 10): the broker publishes the will this long (x1.5) after the client went silent. */
  keepaliveS?: number;
}

export type Unsubscribe = () => Promise<void>;

export interface PlantBus {
  readonly clientId: string;
  /** True while the broker connection is up. */
  readonly connected: boolean;
  /** Rejects with OtaError BROKER_UNAVAILABLE when the broker does not take it (offline queue full, closed). */
  publish(topic: string, payload: Buffer | string, options?: PublishOptions): Promise<void>;
  /** Subscribes (QoS 1) and calls onMessage for every message matching the filter, retained ones first. */
  subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe>;
  /** 'connect' (also after a reconnect: subscriptions are restored), 'offline', 'error' (OtaError). */
  on(event: 'connect' | 'offline', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: string, listener: (...args: never[]) => void): this;
  /** Graceful close: the will is NOT published (publish your own "offline" first). */
  close(): Promise<void>;
}
