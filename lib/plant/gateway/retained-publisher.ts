/**
 * Retained publishes that survive a broker outage: while the bus is offline (or a publish is refused) the
 * latest payload of each topic is kept, and sent when the bus connects again. Older payloads of a topic are
 * superseded: a retained topic only ever shows its last state, so only that one matters.
 */
import type { PlantBus } from '../bus';
import { toOtaError } from '../../errors';
import type { GatewayLog } from './ports';

export class RetainedPublisher {
  private readonly unsent = new Map<string, Buffer>();
  private readonly latest = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;

  constructor(
    private readonly bus: PlantBus,
    private readonly log: GatewayLog,
  ) {}

  /** Topics waiting for the broker. */
  get waiting(): number {
    return this.unsent.size;
  }

  publish(topic: string, payload: Buffer): void {
    const seq = ++this.seq;
    this.latest.set(topic, seq);
    if (!this.bus.connected) {
      this.unsent.set(topic, payload);
      return;
    }
    this.unsent.delete(topic);
    const sent = this.bus.publish(topic, payload, { retain: true, qos: 1 }).catch((err: unknown) => {
      // Keep it for the next connect unless a newer state of the topic was published since.
      if (this.latest.get(topic) === seq) this.unsent.set(topic, payload);
      this.log('warn', `publish to ${topic} failed (${toOtaError(err).code}); it is sent again when the broker is back`);
    });
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }

  /** Sends what waited (call on the bus's 'connect'). */
  flush(): void {
    const waiting = [...this.unsent];
    this.unsent.clear();
    for (const [topic, payload] of waiting) this.publish(topic, payload);
  }

  /** Resolves when every publish handed to the bus has settled. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
