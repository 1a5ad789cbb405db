/**
 * The plant bus over a real MQTT broker (mqtt.js v5; MQTT 3.1.1 by default, which every plant broker speaks).
 * Clean session, QoS 1. After the first connection it reconnects forever (every reconnectPeriodMs), subscribes
 * again to every filter and only then emits 'connect'; handlers are dispatched here by matching each received topic
 * against their filters (topic-filter.ts), so overlapping subscriptions on one connection each get what
 * matches them. Messages larger than maxPayloadBytes are dropped with a PAYLOAD_TOO_LARGE 'error' event.
 */
import { EventEmitter } from 'events';
import * as mqtt from 'mqtt';
import { OtaError } from '../errors';
import type { BusConnectOptions, BusMessage, PlantBus, PublishOptions, Unsubscribe } from './bus';
import { checkTopicFilter, checkTopicName, topicMatches } from './topic-filter';

export interface MqttBusOptions extends BusConnectOptions {
  /** The first connection must be up within this (ms, default 10000), else BROKER_UNAVAILABLE. */
  connectTimeoutMs?: number;
  /** MQTT protocol level: 4 = 3.1.1 (default), 5 = MQTT 5. */
  protocolVersion?: 4 | 5;
  /** Pause between reconnect attempts (ms, default 1000). */
  reconnectPeriodMs?: number;
  /** Publishes waiting for the broker while offline before publish() rejects BROKER_UNAVAILABLE (default 1000). */
  maxQueuedPublishes?: number;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10000;
export const DEFAULT_MAX_QUEUED_PUBLISHES = 1000;
const CLOSE_WAIT_MS = 3000;

interface Subscription {
  filter: string;
  onMessage: (message: BusMessage) => void;
}

/** Connects; resolves once the broker accepted the connection, rejects BROKER_UNAVAILABLE otherwise. */
export function connectMqttBus(options: MqttBusOptions): Promise<PlantBus> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const client = mqtt.connect(options.url, {
    clientId: options.clientId,
    protocolVersion: options.protocolVersion ?? 4,
    keepalive: options.keepaliveS ?? 10,
    clean: true,
    // The bus subscribes again itself, so that 'connect' means "subscriptions restored" (bus.ts).
    resubscribe: false,
    reconnectPeriod: options.reconnectPeriodMs ?? 1000,
    connectTimeout: Math.max(1000, Math.min(timeoutMs, 30000)),
    username: options.username,
    password: options.password,
    ca: options.tls?.ca,
    cert: options.tls?.cert,
    key: options.tls?.key,
    rejectUnauthorized: options.tls?.rejectUnauthorized ?? true,
    will: options.will ? { topic: checkTopicName(options.will.topic), payload: Buffer.from(options.will.payload), qos: 1, retain: options.will.retain } : undefined,
  });
  return new Promise<PlantBus>((resolve, reject) => {
    let lastError: Error | undefined;
    const fail = (cause: string) => {
      clearTimeout(timer);
      client.removeListener('connect', onConnect);
      client.removeListener('error', onError);
      client.on('error', () => undefined);
      client.end(true);
      reject(new OtaError('BROKER_UNAVAILABLE', `cannot connect to the MQTT broker ${redact(options.url)} as ${options.clientId}: ${cause}`, { url: redact(options.url) }));
    };
    const onError = (err: Error & { code?: unknown }) => {
      lastError = err;
      // A CONNACK refusal (bad credentials, not authorised, client id refused) will not heal by retrying.
      if (typeof err.code === 'number') fail(err.message);
    };
    const onConnect = () => {
      clearTimeout(timer);
      client.removeListener('error', onError);
      resolve(new MqttBus(client, options));
    };
    const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`), timeoutMs);
    client.on('error', onError);
    client.once('connect', onConnect);
  });
}

/** The URL without credentials, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

class MqttBus extends EventEmitter implements PlantBus {
  readonly clientId: string;
  private readonly subscriptions = new Set<Subscription>();
  private readonly maxPayloadBytes: number;
  private readonly maxQueued: number;
  private closed = false;
  private up = true;
  /** Publishes and subscriptions not yet acknowledged (mqtt.js keeps them while offline, sends them on reconnect). */
  private readonly unacknowledged = new Set<(err: Error) => void>();
  /** Connection errors are reported once per outage, not at every reconnect attempt. */
  private errorReported = false;

  constructor(
    private readonly client: mqtt.MqttClient,
    options: MqttBusOptions,
  ) {
    super();
    this.clientId = options.clientId;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.maxQueued = options.maxQueuedPublishes ?? DEFAULT_MAX_QUEUED_PUBLISHES;
    client.on('message', (topic, payload, packet) => this.dispatch(topic, payload, packet.retain));
    client.on('connect', () => this.restore());
    client.on('close', () => {
      if (!this.up) return;
      this.up = false;
      if (!this.closed) this.emit('offline');
    });
    client.on('error', (err) => {
      if (this.errorReported) return;
      this.errorReported = true;
      this.report(new OtaError('BROKER_UNAVAILABLE', `MQTT connection of ${this.clientId} to ${redact(options.url)}: ${err.message} (reconnecting)`));
    });
  }

  /** PlantBus declares listeners loosely (never[]) so that every event's listener fits. */
  override off(event: string, listener: (...args: never[]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  get connected(): boolean {
    return !this.closed && this.client.connected;
  }

  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new OtaError('BROKER_UNAVAILABLE', `cannot publish to ${topic}: the MQTT connection of ${this.clientId} is closed`));
    try {
      checkTopicName(topic);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.client.connected && this.unacknowledged.size >= this.maxQueued) {
      return Promise.reject(new OtaError('BROKER_UNAVAILABLE', `cannot publish to ${topic}: the broker is unreachable and ${this.unacknowledged.size} messages already wait for it`));
    }
    return new Promise((resolve, reject) => {
      this.unacknowledged.add(reject);
      this.client.publish(topic, Buffer.from(payload), { qos: options.qos ?? 1, retain: options.retain === true }, (err) => {
        this.unacknowledged.delete(reject);
        if (err) reject(new OtaError('BROKER_UNAVAILABLE', `the broker did not take the message to ${topic}: ${err.message}`));
        else resolve();
      });
    });
  }

  async subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
    checkTopicFilter(filter);
    if (this.closed) throw new OtaError('BROKER_UNAVAILABLE', `cannot subscribe to ${filter}: the MQTT connection of ${this.clientId} is closed`);
    const subscription: Subscription = { filter, onMessage };
    this.subscriptions.add(subscription);
    try {
      await new Promise<void>((resolve, reject) => {
        this.unacknowledged.add(reject);
        this.client.subscribe(filter, { qos: 1 }, (err, granted) => {
          this.unacknowledged.delete(reject);
          if (err) reject(new OtaError('BROKER_UNAVAILABLE', `cannot subscribe to ${filter}: ${err.message}`));
          else if (granted?.some((g) => g.qos === 128)) reject(new OtaError('BROKER_UNAVAILABLE', `the broker refused the subscription to ${filter} (not authorised?)`));
          else resolve();
        });
      });
    } catch (err) {
      this.subscriptions.delete(subscription);
      throw err;
    }
    return async () => {
      if (!this.subscriptions.delete(subscription)) return;
      if (this.closed || [...this.subscriptions].some((s) => s.filter === filter)) return;
      await new Promise<void>((resolve) => this.client.unsubscribe(filter, () => resolve()));
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscriptions.clear();
    // A DISCONNECT first (the broker then drops the will) when connected; offline there is nobody to tell,
    // and mqtt.js would wait for the broker to take the queued messages first.
    // Connected, mqtt.js first waits for the PUBACKs of messages in flight: a broker that never sends them
    // gets its socket closed after CLOSE_WAIT_MS (it then publishes the will, as for any lost client).
    const force = !this.client.connected;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        (this.client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
        resolve();
      }, CLOSE_WAIT_MS);
      this.client.end(force, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const pending = [...this.unacknowledged];
    this.unacknowledged.clear();
    for (const reject of pending) reject(new OtaError('BROKER_UNAVAILABLE', `the MQTT connection of ${this.clientId} was closed before the broker acknowledged the request`));
  }

  /** After a reconnect (clean session: the broker forgot everything): subscribe again, then say 'connect'. */
  private restore(): void {
    this.up = true;
    this.errorReported = false;
    const filters = [...new Set([...this.subscriptions].map((s) => s.filter))];
    if (filters.length === 0) {
      this.emit('connect');
      return;
    }
    this.client.subscribe(filters, { qos: 1 }, (err, granted) => {
      const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
      if (err) this.report(new OtaError('BROKER_UNAVAILABLE', `could not subscribe again to ${filters.join(', ')} after a reconnect: ${err.message}`));
      else if (refused.length > 0) this.report(new OtaError('BROKER_UNAVAILABLE', `the broker refused the subscriptions to ${refused.join(', ')} after a reconnect`));
      if (!this.closed) this.emit('connect');
    });
  }

  private dispatch(topic: string, payload: Buffer, retain: boolean): void {
    if (this.closed) return;
    if (payload.length > this.maxPayloadBytes) {
      this.report(new OtaError('PAYLOAD_TOO_LARGE', `dropped a message of ${payload.length} bytes on ${topic}: more than the ${this.maxPayloadBytes} bytes allowed`, { topic, size: payload.length }));
      return;
    }
    const message: BusMessage = { topic, payload, retain };
    for (const s of [...this.subscriptions]) {
      if (!this.subscriptions.has(s) || !topicMatches(s.filter, topic)) continue;
      try {
        s.onMessage(message);
      } catch (err) {
        this.report(err instanceof OtaError ? err : new OtaError('INTERNAL', `a handler of ${s.filter} threw on ${topic}: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
  }

  /** 'error' without a listener would throw out of mqtt.js: report only to listeners. */
  private report(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
