/**
 * A PlantBus that records every publish its broker accepted, in order, and the filters subscribed now: the
 * observation the tests need ("was presence published again after the outage?", "is the tasks topic
 * unsubscribed?"), kept out of the product's MemoryBroker.
 */
import type { BusMessage, PlantBus, PublishOptions, Unsubscribe } from '../../../lib/plant/bus';

export interface RecordedPublish {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

export class RecordingBus implements PlantBus {
  readonly published: RecordedPublish[] = [];
  /** Filters subscribed and not yet unsubscribed, in subscription order. */
  readonly subscriptions: string[] = [];

  constructor(private readonly inner: PlantBus) {}

  get clientId(): string {
    return this.inner.clientId;
  }

  get connected(): boolean {
    return this.inner.connected;
  }

  async publish(topic: string, payload: Buffer | string, options: PublishOptions = {}): Promise<void> {
    const accepted = this.inner.publish(topic, payload, options);
    // A connection that is up hands it to the broker; one that is down refuses it (not recorded).
    if (this.inner.connected) this.published.push({ topic, payload: Buffer.from(payload), retain: options.retain === true });
    return accepted;
  }

  async subscribe(filter: string, onMessage: (message: BusMessage) => void): Promise<Unsubscribe> {
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
