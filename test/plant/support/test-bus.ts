/**
 * An in-process broker for the gateway tests, with the MQTT semantics the agent relies on: retained
 * messages (an empty retained payload clears, MQTT 3.1.1 §3.3.1.3), the will published when a client dies
 * (not on a graceful close), "+" and "#" filters, retained messages first on subscribe, per-topic order.
 * A client can be taken offline and back (its publishes are refused meanwhile, messages to it are lost,
 * 'connect' again after it is back). Delivery is asynchronous (a microtask), as a broker's is.
 */
import { EventEmitter } from 'events';
import { OtaError } from '../../../lib/errors';
import type { BusMessage, BusWill, PlantBus, PublishOptions, Unsubscribe } from '../../../lib/plant/bus';

export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

interface Subscription {
  filter: string;
  onMessage: (m: BusMessage) => void;
}

export class TestBus extends EventEmitter implements PlantBus {
  readonly subscriptions: Subscription[] = [];
  online = true;
  closed = false;
  /** Every publish the broker accepted from this client, in order. */
  readonly published: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];

  constructor(
    private readonly broker: TestBroker,
    readonly clientId: string,
    readonly will: BusWill | undefined,
  ) {
    super();
  }

  get connected(): boolean {
    return this.online && !this.closed;
  }

  async publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    if (!this.connected) throw new OtaError('BROKER_UNAVAILABLE', `${this.clientId} is not connected`);
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    this.published.push({ topic, payload: bytes, retain: options.retain === true });
    this.broker.route(topic, bytes, options.retain === true);
  }

  async subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
    const sub: Subscription = { filter, onMessage };
    this.subscriptions.push(sub);
    for (const [topic, payload] of this.broker.retainedMatching(filter)) this.deliver(sub, { topic, payload, retain: true });
    return async () => {
      const i = this.subscriptions.indexOf(sub);
      if (i >= 0) this.subscriptions.splice(i, 1);
    };
  }

  deliver(sub: Subscription, message: BusMessage): void {
    queueMicrotask(() => {
      if (this.connected && this.subscriptions.includes(sub)) sub.onMessage(message);
    });
  }

  override off(event: string, listener: (...args: never[]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.broker.forget(this);
  }
}

export class TestBroker {
  private readonly clients = new Set<TestBus>();
  private readonly retainedMessages = new Map<string, Buffer>();

  connect(clientId: string, will?: BusWill): TestBus {
    const bus = new TestBus(this, clientId, will);
    this.clients.add(bus);
    queueMicrotask(() => bus.emit('connect'));
    return bus;
  }

  /** The client's connection dies: its will is published. */
  kill(bus: TestBus): void {
    bus.closed = true;
    this.forget(bus);
    if (bus.will) this.route(bus.will.topic, Buffer.isBuffer(bus.will.payload) ? bus.will.payload : Buffer.from(bus.will.payload), bus.will.retain);
  }

  /** The client loses the broker for a while (no will: the broker has not given up on it yet). */
  setOffline(bus: TestBus): void {
    bus.online = false;
    bus.emit('offline');
  }

  setOnline(bus: TestBus): void {
    bus.online = true;
    bus.emit('connect');
  }

  retained(topic: string): Buffer | undefined {
    return this.retainedMessages.get(topic);
  }

  retainedJson<T = Record<string, unknown>>(topic: string): T | undefined {
    const payload = this.retainedMessages.get(topic);
    return payload ? (JSON.parse(payload.toString('utf8')) as T) : undefined;
  }

  retainedMatching(filter: string): Array<[string, Buffer]> {
    return [...this.retainedMessages].filter(([topic]) => topicMatches(filter, topic));
  }

  route(topic: string, payload: Buffer, retain: boolean): void {
    if (retain) {
      if (payload.length === 0) this.retainedMessages.delete(topic);
      else this.retainedMessages.set(topic, payload);
    }
    for (const client of this.clients) for (const sub of client.subscriptions) if (topicMatches(sub.filter, topic)) client.deliver(sub, { topic, payload, retain: false });
  }

  forget(bus: TestBus): void {
    this.clients.delete(bus);
  }
}
