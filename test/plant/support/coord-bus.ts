/**
 * CoordTestBroker: a small in-process broker on a Clock for the coordinator's tests, with the MQTT semantics
 * the coordinator relies on: retained messages (an empty retained payload clears), delivered first on
 * subscribe; per-publisher order; `+` and `#` filters; a will published when a client is killed (not when it
 * closes). Every delivery is a clock timer of `latencyMs`, so a test on a VirtualClock is deterministic.
 */
import { EventEmitter } from 'events';
import type { Clock } from '../../../lib/clock';
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
  onMessage: (message: BusMessage) => void;
}

class TestClient extends EventEmitter implements PlantBus {
  connected = true;
  readonly subscriptions = new Set<Subscription>();

  constructor(
    readonly clientId: string,
    private readonly broker: CoordTestBroker,
    readonly will: BusWill | undefined,
  ) {
    super();
  }

  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    if (!this.connected) return Promise.reject(new OtaError('BROKER_UNAVAILABLE', `client ${this.clientId} is closed`));
    this.broker.route(topic, Buffer.from(payload), options.retain ?? false);
    return Promise.resolve();
  }

  subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
    const sub: Subscription = { filter, onMessage };
    this.subscriptions.add(sub);
    this.broker.deliverRetained(this, sub);
    return Promise.resolve(async () => {
      this.subscriptions.delete(sub);
    });
  }

  override off(event: string, listener: (...args: never[]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  close(): Promise<void> {
    this.connected = false;
    this.broker.drop(this);
    return Promise.resolve();
  }
}

export class CoordTestBroker {
  private readonly clients = new Map<string, TestClient>();
  private readonly retainedStore = new Map<string, Buffer>();
  /** Every publish routed, in order (topic, payload, retain). */
  readonly log: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];

  constructor(
    private readonly clock: Clock,
    private readonly latencyMs = 1,
  ) {}

  connect(clientId: string, will?: BusWill): PlantBus {
    const client = new TestClient(clientId, this, will);
    this.clients.set(clientId, client);
    return client;
  }

  /** The client vanishes without a goodbye: its will goes out. */
  kill(clientId: string): void {
    const client = this.clients.get(clientId);
    if (!client) return;
    client.connected = false;
    this.drop(client);
    if (client.will) this.route(client.will.topic, Buffer.from(client.will.payload), client.will.retain);
  }

  retained(topic: string): Buffer | undefined {
    return this.retainedStore.get(topic);
  }

  drop(client: TestClient): void {
    client.subscriptions.clear();
    if (this.clients.get(client.clientId) === client) this.clients.delete(client.clientId);
  }

  route(topic: string, payload: Buffer, retain: boolean): void {
    this.log.push({ topic, payload, retain });
    if (retain) {
      if (payload.length === 0) this.retainedStore.delete(topic);
      else this.retainedStore.set(topic, payload);
    }
    for (const client of this.clients.values()) {
      for (const sub of client.subscriptions) {
        if (!topicMatches(sub.filter, topic)) continue;
        this.clock.setTimer(() => {
          if (client.subscriptions.has(sub)) sub.onMessage({ topic, payload, retain: false });
        }, this.latencyMs);
      }
    }
  }

  deliverRetained(client: TestClient, sub: Subscription): void {
    for (const [topic, payload] of this.retainedStore) {
      if (!topicMatches(sub.filter, topic)) continue;
      this.clock.setTimer(() => {
        if (client.subscriptions.has(sub)) sub.onMessage({ topic, payload, retain: true });
      }, this.latencyMs);
    }
  }
}
