/**
 * An in-process MQTT broker on a Clock: the broker of unit tests and of the modeled plant, where time is
 * virtual (lib/sim/virtual-clock.ts). It keeps the MQTT 3.1.1 semantics the plant relies on and nothing more:
 * - retained messages, one per topic; a retained empty payload clears it (§3.3.1.3); a subscription gets the
 *   retained messages matching its filter first;
 * - every message reaches every subscriber latencyMs after it was published, in publish order (one FIFO
 *   for the whole broker, so per-publisher order holds for every subscriber, §4.6);
 * - the will is published when the broker loses a client without a DISCONNECT (kill), never on close();
 * - a second connect with a client id that is connected takes the session over: the old connection is
 *   dropped as if killed (its will fires), as brokers do (§3.1.4).
 * Handlers are dispatched by filter matching per connection, like mqtt-bus.ts: a retained message sent for a
 * new subscription also reaches the connection's other handlers whose filters match (consumers treat
 * retained messages as state, never as events). A killed connection stays down; an outage (cut, then
 * reconnect) is a connection that loses the broker for less than its keepalive: no will, 'offline', its
 * publishes and subscribes refused and messages for it lost meanwhile, then on reconnect its subscriptions
 * are made again (the retained messages come again, as for mqtt-bus.ts's resubscription) and it says 'connect'.
 */
import { EventEmitter } from 'events';
import type { Clock, TimerHandle } from '../clock';
import { OtaError } from '../errors';
import type { BusMessage, BusWill, PlantBus, PublishOptions, Unsubscribe } from './bus';
import { checkTopicFilter, checkTopicName, topicMatches } from './topic-filter';

export interface MemoryBrokerOptions {
  /** One-way delay publisher -> subscriber, and of every acknowledgement (default 2 ms). */
  latencyMs?: number;
}

interface Delivery {
  due: number;
  client: MemoryBusClient;
  message: BusMessage;
}

interface Subscription {
  filter: string;
  onMessage: (message: BusMessage) => void;
}

export class MemoryBroker {
  readonly latencyMs: number;
  private readonly clients = new Map<string, MemoryBusClient>();
  private readonly retainedMessages = new Map<string, Buffer>();
  private readonly queue: Delivery[] = [];
  private timer: TimerHandle | undefined;

  constructor(
    readonly clock: Clock,
    options: MemoryBrokerOptions = {},
  ) {
    const latency = options.latencyMs ?? 2;
    if (!Number.isFinite(latency) || latency < 0) throw new OtaError('PLANT_BAD_ID', `latencyMs must be a number >= 0, got ${String(options.latencyMs)}`);
    this.latencyMs = latency;
  }

  /** A new connection; an existing connection with this client id is taken over (its will fires). */
  connect(clientId: string, will?: BusWill): PlantBus {
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 128) throw new OtaError('PLANT_BAD_ID', `client id must be 1 to 128 characters, got ${JSON.stringify(clientId)}`);
    if (will) checkTopicName(will.topic);
    if (this.clients.has(clientId)) this.kill(clientId);
    const client = new MemoryBusClient(this, clientId, will);
    this.clients.set(clientId, client);
    return client;
  }

  /** The broker loses the connection (process killed, network gone): its will is published, it goes 'offline'. */
  kill(clientId: string): void {
    const client = this.clients.get(clientId);
    if (!client) return;
    this.clients.delete(clientId);
    const will = client.drop();
    if (will) this.route(will.topic, Buffer.from(will.payload), will.retain);
  }

  /** The connection loses the broker for a while (shorter than its keepalive: the will does not fire). */
  cut(clientId: string): void {
    this.clients.get(clientId)?.cut();
  }

  /** A cut connection is back: it subscribes again to its filters, then emits 'connect'. */
  reconnect(clientId: string): void {
    const client = this.clients.get(clientId);
    if (!client?.isCut) return;
    client.restore();
    for (const filter of client.filters()) this.sendRetained(client, filter);
    this.clock.setTimer(() => client.announce(), this.latencyMs);
  }

  /** The retained message of a topic, if any. */
  retained(topic: string): Buffer | undefined {
    return this.retainedMessages.get(topic);
  }

  /** Client ids connected now. */
  connectedClients(): string[] {
    return [...this.clients.keys()];
  }

  // ---- used by MemoryBusClient ----

  /** @internal */
  removeClient(client: MemoryBusClient): void {
    if (this.clients.get(client.clientId) === client) this.clients.delete(client.clientId);
  }

  /** @internal The broker received a PUBLISH: store if retained, queue for every matching connection. */
  route(topic: string, payload: Buffer, retain: boolean): void {
    if (retain) {
      if (payload.length === 0) this.retainedMessages.delete(topic);
      else this.retainedMessages.set(topic, payload);
    }
    const due = this.clock.now() + this.latencyMs;
    for (const client of this.clients.values()) {
      if (client.wants(topic)) this.enqueue({ due, client, message: { topic, payload, retain: false } });
    }
  }

  /** @internal A SUBSCRIBE: the retained messages matching the filter, queued for the subscriber. */
  sendRetained(client: MemoryBusClient, filter: string): void {
    const due = this.clock.now() + this.latencyMs;
    for (const [topic, payload] of this.retainedMessages) {
      if (topicMatches(filter, topic)) this.enqueue({ due, client, message: { topic, payload, retain: true } });
    }
  }

  private enqueue(delivery: Delivery): void {
    this.queue.push(delivery);
    if (!this.timer) this.arm();
  }

  private arm(): void {
    const head = this.queue[0];
    if (!head) return;
    this.timer = this.clock.setTimer(() => this.drain(), Math.max(0, head.due - this.clock.now()));
  }

  /** Delivers everything due, in queue order (latency is constant, so queue order is due order). */
  private drain(): void {
    this.timer = undefined;
    const now = this.clock.now();
    while (this.queue.length > 0 && this.queue[0].due <= now) {
      const delivery = this.queue.shift() as Delivery;
      delivery.client.deliver(delivery.message);
    }
    this.arm();
  }
}

class MemoryBusClient extends EventEmitter implements PlantBus {
  private readonly subscriptions = new Set<Subscription>();
  private up = true;
  /** Down for an outage, not for good: the subscriptions are kept for the reconnect. */
  private outage = false;

  constructor(
    private readonly broker: MemoryBroker,
    readonly clientId: string,
    private readonly will: BusWill | undefined,
  ) {
    super();
  }

  /** PlantBus declares listeners loosely (never[]) so that every event's listener fits. */
  override off(event: string, listener: (...args: never[]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  get connected(): boolean {
    return this.up;
  }

  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    if (!this.up) return Promise.reject(unavailable(this.clientId, `publish to ${topic}`));
    try {
      checkTopicName(topic);
    } catch (err) {
      return Promise.reject(err);
    }
    this.broker.route(topic, Buffer.from(payload), options.retain === true);
    // QoS 1: resolves when the PUBACK would be back; QoS 0 at once.
    return options.qos === 0 ? Promise.resolve() : this.afterLatency();
  }

  async subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
    checkTopicFilter(filter);
    if (!this.up) throw unavailable(this.clientId, `subscribe to ${filter}`);
    const subscription: Subscription = { filter, onMessage };
    this.subscriptions.add(subscription);
    this.broker.sendRetained(this, filter);
    await this.afterLatency();
    return async () => {
      this.subscriptions.delete(subscription);
    };
  }

  async close(): Promise<void> {
    if (!this.up && !this.outage) return;
    this.up = false;
    this.outage = false;
    this.subscriptions.clear();
    this.broker.removeClient(this);
  }

  /** @internal True when one of this connection's subscriptions matches the topic. */
  wants(topic: string): boolean {
    if (!this.up) return false;
    for (const s of this.subscriptions) if (topicMatches(s.filter, topic)) return true;
    return false;
  }

  /** @internal Hands a message to every handler whose filter matches it. */
  deliver(message: BusMessage): void {
    if (!this.up) return;
    for (const s of [...this.subscriptions]) {
      if (!this.subscriptions.has(s) || !topicMatches(s.filter, message.topic)) continue;
      try {
        s.onMessage(message);
      } catch (err) {
        this.report(err instanceof OtaError ? err : new OtaError('INTERNAL', `a handler of ${s.filter} threw on ${message.topic}: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
  }

  /** @internal The broker lost this connection: returns the will to publish. */
  drop(): BusWill | undefined {
    if (!this.up && !this.outage) return undefined;
    const wasUp = this.up;
    this.up = false;
    this.outage = false;
    this.subscriptions.clear();
    if (wasUp) this.emit('offline');
    return this.will;
  }

  get isCut(): boolean {
    return this.outage;
  }

  /** @internal */
  cut(): void {
    if (!this.up) return;
    this.up = false;
    this.outage = true;
    this.emit('offline');
  }

  /** @internal Up again after an outage (the broker then sends the retained messages of filters()). */
  restore(): void {
    this.up = true;
    this.outage = false;
  }

  /** @internal */
  filters(): string[] {
    return [...new Set([...this.subscriptions].map((s) => s.filter))];
  }

  /** @internal The resubscriptions are acknowledged: 'connect', as mqtt-bus.ts says it. */
  announce(): void {
    if (this.up) this.emit('connect');
  }

  private report(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private afterLatency(): Promise<void> {
    return new Promise((resolve) => this.broker.clock.setTimer(resolve, this.broker.latencyMs));
  }
}

function unavailable(clientId: string, what: string): OtaError {
  return new OtaError('BROKER_UNAVAILABLE', `cannot ${what}: the connection of ${clientId} to the in-process broker is closed`);
}
