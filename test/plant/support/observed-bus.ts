/**
 * A PlantBus around a real connection (MemoryBroker or mqtt-bus) for what the tests observe or disturb,
 * kept out of the product: every publish the connection took, in order; the filters subscribed now; an
 * `alter` hook that changes what goes out (a corrupting network); a `beforeSubscribe` hook awaited before a
 * subscription reaches the broker (a slow SUBACK).
 */
import type { BusMessage, PlantBus, PublishOptions, Unsubscribe } from '../../../lib/plant/bus';

export interface RecordedPublish {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

export class ObservedBus implements PlantBus {
  readonly published: RecordedPublish[] = [];
  /** Filters subscribed and not yet unsubscribed, in subscription order. */
  readonly subscriptions: string[] = [];
  alter: ((topic: string, payload: Buffer) => Buffer) | undefined;
  beforeSubscribe: (() => Promise<void>) | undefined;

  constructor(private readonly inner: PlantBus) {}

  get clientId(): string {
    return this.inner.clientId;
  }

  get connected(): boolean {
    return this.inner.connected;
  }

  publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    const original = Buffer.from(payload);
    const bytes = this.alter ? this.alter(topic, original) : original;
    const sent = this.inner.publish(topic, bytes, options);
    // A connection that is up hands it to the broker; one that is down refuses it (not recorded).
    if (this.inner.connected) this.published.push({ topic, payload: bytes, retain: options.retain === true });
    return sent;
  }

  async subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
    await this.beforeSubscribe?.();
    const unsubscribe = await this.inner.subscribe(filter, onMessage);
    this.subscriptions.push(filter);
    let done = false;
    return async () => {
      if (!done) this.subscriptions.splice(this.subscriptions.indexOf(filter), 1);
      done = true;
      await unsubscribe();
    };
  }

  on(event: 'connect' | 'offline', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'connect' | 'offline' | 'error', listener: (...args: never[]) => void): this {
    this.inner.on(event as 'connect', listener as () => void);
    return this;
  }

  off(event: string, listener: (...args: never[]) => void): this {
    this.inner.off(event, listener);
    return this;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
