import { strict as assert } from 'assert';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { realClock } from '../../lib/clock';
import { OtaError } from '../../lib/errors';
import type { PlantBus } from '../../lib/plant/bus';
import { ImageCache, ImageServer, decodeImageChunk, encodeImageChunk, type PlantLog } from '../../lib/plant/image-transfer';
import { MemoryBroker } from '../../lib/plant/memory-bus';
import { IMAGE_CHUNK_BYTES } from '../../lib/plant/messages';
import { connectMqttBus } from '../../lib/plant/mqtt-bus';
import { encodePlantMessage } from '../../lib/plant/schemas';
import { PlantTopics } from '../../lib/plant/topics';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { codeOf } from '../helpers/errors';
import { startAedes, type TestBroker } from './aedes-broker';
import { ObservedBus } from './support/observed-bus';

const topics = new PlantTopics();

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** An image of 3 full chunks and a partial one. */
const IMAGE = randomBytes(3 * IMAGE_CHUNK_BYTES + 4321);
const IMAGE_SHA = sha(IMAGE);

/** Every chunk frame and image request on the bus, per topic. */
async function spy(bus: PlantBus): Promise<{ frames: Map<string, number>; requests: string[] }> {
  const frames = new Map<string, number>();
  const requests: string[] = [];
  await bus.subscribe(`${topics.root}/images/+/to/+`, (m) => frames.set(m.topic, (frames.get(m.topic) ?? 0) + 1));
  await bus.subscribe(topics.allImageRequests, (m) => requests.push(m.payload.toString()));
  return { frames, requests };
}

/** Lets ms of virtual time pass (every chain of publishes in between runs). */
function settle(clock: VirtualClock, ms: number): Promise<void> {
  return clock.runUntil(new Promise<void>((resolve) => clock.setTimer(resolve, ms)));
}

function logInto(lines: string[]): PlantLog {
  return (level, text) => lines.push(`${level}: ${text}`);
}

describe('image chunk frames', () => {
  it('carry index, count and total, and refuse inconsistent frames', () => {
    const last = decodeImageChunk(encodeImageChunk(IMAGE, 3));
    assert.deepEqual([last.index, last.count, last.total, last.data.length], [3, 4, IMAGE.length, 4321]);
    assert.deepEqual(decodeImageChunk(encodeImageChunk(IMAGE, 0)).data, IMAGE.subarray(0, IMAGE_CHUNK_BYTES));
    const frame = encodeImageChunk(IMAGE, 1);
    const bad = (mutate: (f: Buffer) => Buffer, pattern: RegExp) => assert.throws(() => decodeImageChunk(mutate(Buffer.from(frame))), pattern);
    bad((f) => f.subarray(0, 10), /not an image chunk frame/);
    bad((f) => (f.write('XXXX', 0), f), /not an image chunk frame/);
    bad((f) => (f.writeUInt32BE(9, 4), f), /index 9 is not below the count 4/);
    bad((f) => (f.writeUInt32BE(5, 8), f), /count 5 does not fit a total/);
    bad((f) => (f.writeUInt32BE(0, 12), f), /count 4 does not fit a total of 0/);
    bad((f) => f.subarray(0, f.length - 1), /chunk 1 has 65535 bytes, 65536 expected/);
    assert.throws(() => encodeImageChunk(IMAGE, 4), RangeError);
  });
});

describe('image transfer over the in-process broker', () => {
  let clock: VirtualClock;
  let broker: MemoryBroker;
  let serverBus: ObservedBus;
  let server: ImageServer;
  let serverLog: string[];
  let lookups: string[];

  beforeEach(async () => {
    clock = new VirtualClock({ startMs: 0 });
    broker = new MemoryBroker(clock);
    serverBus = new ObservedBus(broker.connect('coordinator'));
    serverLog = [];
    lookups = [];
    server = new ImageServer(
      serverBus,
      topics,
      async (wanted) => {
        lookups.push(wanted);
        return wanted === IMAGE_SHA ? IMAGE : null;
      },
      logInto(serverLog),
    );
    await clock.runUntil(server.start());
  });

  function cacheOf(gateway: string, options: ConstructorParameters<typeof ImageCache>[4] = {}): { cache: ImageCache; bus: ObservedBus } {
    const bus = new ObservedBus(broker.connect(gateway));
    return { cache: new ImageCache(bus, topics, gateway, clock, options), bus };
  }

  it('sends one copy to each gateway that asks, and none again for a cached image', async () => {
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const a = cacheOf('gw-a');
    const b = cacheOf('gw-b');
    const [imageA, imageB] = await clock.runUntil(Promise.all([a.cache.get(IMAGE_SHA, IMAGE.length), b.cache.get(IMAGE_SHA, IMAGE.length)]));
    assert.ok(imageA.equals(IMAGE) && imageB.equals(IMAGE));
    assert.deepEqual(Object.fromEntries(watch.frames), { [topics.imageChunks(IMAGE_SHA, 'gw-a')]: 4, [topics.imageChunks(IMAGE_SHA, 'gw-b')]: 4 });
    assert.equal(watch.requests.length, 2);

    const again = await clock.runUntil(a.cache.get(IMAGE_SHA, IMAGE.length));
    assert.ok(again.equals(IMAGE));
    await settle(clock, 1000);
    assert.equal(watch.requests.length, 2, 'the second get comes from memory');
    assert.equal(a.bus.subscriptions.length, 0, 'the chunk subscription is gone after the fetch');
    assert.deepEqual(a.cache.cached(), [IMAGE_SHA]);
  });

  it('shares one fetch between concurrent gets of one image', async () => {
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const a = cacheOf('gw-a');
    const results = await clock.runUntil(Promise.all([1, 2, 3].map(() => a.cache.get(IMAGE_SHA, IMAGE.length))));
    assert.ok(results.every((r) => r.equals(IMAGE)));
    assert.equal(watch.requests.length, 1);
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-a')), 4);
  });

  it('asks again once when the copy arrives with another SHA-256, then gives it', async () => {
    let corrupted = 0;
    serverBus.alter = (topic, payload) => {
      if (!topic.includes('/to/') || corrupted > 0) return payload;
      corrupted++;
      const copy = Buffer.from(payload);
      copy[100] ^= 0xff;
      return copy;
    };
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const log: string[] = [];
    const a = cacheOf('gw-a', { log: logInto(log) });
    const image = await clock.runUntil(a.cache.get(IMAGE_SHA, IMAGE.length));
    assert.ok(image.equals(IMAGE));
    assert.equal(watch.requests.length, 2);
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-a')), 8);
    assert.ok(log.some((l) => /arrived with SHA-256 [0-9a-f]{64}: asking for it again/.test(l)), log.join('\n'));
  });

  it('fails IMAGE_HASH_MISMATCH when the second copy is wrong too', async () => {
    serverBus.alter = (topic, payload) => {
      if (!topic.includes('/to/')) return payload;
      const copy = Buffer.from(payload);
      copy[copy.length - 1] ^= 0x01;
      return copy;
    };
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const a = cacheOf('gw-a');
    const err = await clock.runUntil(a.cache.get(IMAGE_SHA, IMAGE.length)).catch((e: OtaError) => e);
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'IMAGE_HASH_MISMATCH');
    assert.match(err.message, new RegExp(`image ${IMAGE_SHA} arrived with SHA-256`));
    assert.equal(watch.requests.length, 2);
    assert.equal(a.bus.subscriptions.length, 0);
    assert.deepEqual(a.cache.cached(), []);
  });

  it('fails IMAGE_UNAVAILABLE after 30 s without a chunk (nobody serves the image)', async () => {
    const unknown = 'cd'.repeat(32);
    const a = cacheOf('gw-a');
    const started = clock.now();
    const err = await clock.runUntil(a.cache.get(unknown, 1000)).catch((e: OtaError) => e);
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'IMAGE_UNAVAILABLE');
    assert.equal(clock.now() - started, 30000);
    assert.match(err.message, /0 of 1 chunks after 30000 ms without progress/);
    assert.equal(a.bus.subscriptions.length, 0);
    assert.deepEqual(lookups, [unknown]);
    assert.ok(serverLog.some((l) => l.includes('is not one this coordinator serves')), serverLog.join('\n'));

    // A shorter timeout, and the clock keeps counting from the last chunk that arrived.
    const b = cacheOf('gw-b', { timeoutMs: 5000 });
    assert.equal(await codeOf(clock.runUntil(b.cache.get(unknown, 1000))), 'IMAGE_UNAVAILABLE');
  });

  it('drops a subscription that arrives after its fetch timed out, and asks nobody', async () => {
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const a = cacheOf('gw-a', { timeoutMs: 1000 });
    a.bus.beforeSubscribe = () => new Promise((r) => clock.setTimer(r, 5000));
    assert.equal(await codeOf(clock.runUntil(a.cache.get(IMAGE_SHA, IMAGE.length))), 'IMAGE_UNAVAILABLE');
    await settle(clock, 10000);
    assert.equal(a.bus.subscriptions.length, 0);
    assert.equal(watch.requests.length, 0);
  });

  it('ignores garbage frames on its topic and names the last one when it times out', async () => {
    const garbage = broker.connect('garbage');
    const a = cacheOf('gw-a', { timeoutMs: 5000 });
    const unknown = 'ef'.repeat(32);
    const pending = a.cache.get(unknown, 70000).catch((e: OtaError) => e);
    await clock.runUntil(new Promise<void>((r) => clock.setTimer(r, 10)));
    await clock.runUntil(garbage.publish(topics.imageChunks(unknown, 'gw-a'), 'not a frame'));
    await clock.runUntil(garbage.publish(topics.imageChunks(unknown, 'gw-a'), encodeImageChunk(IMAGE, 0)));
    const err = await clock.runUntil(pending);
    assert.ok(err instanceof OtaError);
    assert.equal(err.code, 'IMAGE_UNAVAILABLE');
    assert.match(err.message, /last problem: the frames describe 200929 bytes, the task 70000/);
  });

  it('keeps images in a directory, verified on read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plant-images-'));
    try {
      const watch = await clock.runUntil(spy(broker.connect('watch')));
      await clock.runUntil(cacheOf('gw-a', { dir }).cache.get(IMAGE_SHA, IMAGE.length));
      const file = path.join(dir, `${IMAGE_SHA}.bin`);
      assert.ok(fs.readFileSync(file).equals(IMAGE));
      assert.equal(watch.requests.length, 1);

      const restarted = cacheOf('gw-a2', { dir });
      assert.ok((await clock.runUntil(restarted.cache.get(IMAGE_SHA, IMAGE.length))).equals(IMAGE));
      assert.equal(watch.requests.length, 1, 'read from the directory');

      const damaged = Buffer.from(IMAGE);
      damaged[0] ^= 1;
      fs.writeFileSync(file, damaged);
      const log: string[] = [];
      const third = cacheOf('gw-a3', { dir, log: logInto(log) });
      assert.ok((await clock.runUntil(third.cache.get(IMAGE_SHA, IMAGE.length))).equals(IMAGE));
      assert.equal(watch.requests.length, 2, 'a damaged file is fetched again');
      assert.ok(fs.readFileSync(file).equals(IMAGE), 'and replaced');
      assert.ok(log.some((l) => l.includes('does not match its name')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps at most memoryImages images in memory, least recently used dropped first', async () => {
    const images = [1, 2, 3].map((n) => Buffer.alloc(1000 * n, n));
    const byHash = new Map(images.map((i) => [sha(i), i]));
    const own = new ImageServer(broker.connect('coordinator-2'), topics, async (s) => byHash.get(s) ?? null);
    await clock.runUntil(own.start());
    const a = cacheOf('gw-a', { memoryImages: 2 });
    for (const image of images) await clock.runUntil(a.cache.get(sha(image), image.length));
    assert.deepEqual(a.cache.cached(), [sha(images[1]), sha(images[2])]);
    own.stop();
  });

  it('refuses a malformed digest or size before asking anyone', async () => {
    const a = cacheOf('gw-a');
    assert.equal(await codeOf(a.cache.get('XYZ', 10)), 'PAYLOAD_INVALID');
    assert.equal(await codeOf(a.cache.get(IMAGE_SHA, 0)), 'PAYLOAD_INVALID');
    assert.equal(await codeOf(a.cache.get(IMAGE_SHA, 1.5)), 'PAYLOAD_INVALID');
  });

  it('the server ignores malformed requests, requests on another image topic and repeats while sending', async () => {
    const watch = await clock.runUntil(spy(broker.connect('watch')));
    const gw = broker.connect('gw-x');
    const request = encodePlantMessage('imageRequest', { v: 1, gateway: 'gw-x', sha256: IMAGE_SHA });
    await clock.runUntil(gw.publish(topics.imageRequest(IMAGE_SHA), '{"v":1,"gateway":"gw-x"}'));
    await clock.runUntil(gw.publish(topics.imageRequest('00'.repeat(32)), request));
    await clock.runUntil(Promise.all([gw.publish(topics.imageRequest(IMAGE_SHA), request), gw.publish(topics.imageRequest(IMAGE_SHA), request)]));
    await settle(clock, 1000);
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-x')), 4, 'one copy for two requests in a row');
    assert.ok(serverLog.some((l) => /ignored an image request .*lacks the field "sha256"/.test(l)), serverLog.join('\n'));
    assert.ok(serverLog.some((l) => l.includes('on the topic of another image')));
    assert.ok(serverLog.some((l) => l.includes('repeated request ignored')));
    assert.deepEqual(server.active, []);
    server.stop();
    await clock.runUntil(gw.publish(topics.imageRequest(IMAGE_SHA), request));
    await settle(clock, 1000);
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-x')), 4, 'a stopped server answers nothing');
  });
});

describe('image transfer over MQTT (aedes on loopback)', function () {
  this.timeout(20000);
  let broker: TestBroker;
  const buses: PlantBus[] = [];

  before(async () => {
    broker = await startAedes();
  });

  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await broker.close();
  });

  async function bus(clientId: string): Promise<PlantBus> {
    const b = await connectMqttBus({ url: broker.url, clientId });
    buses.push(b);
    return b;
  }

  it('two gateways get one copy each, verified', async () => {
    const server = new ImageServer(await bus('coordinator'), topics, async (s) => (s === IMAGE_SHA ? IMAGE : null));
    await server.start();
    const watch = await spy(await bus('watch'));
    const a = new ImageCache(await bus('gw-a'), topics, 'gw-a', realClock, { timeoutMs: 5000 });
    const b = new ImageCache(await bus('gw-b'), topics, 'gw-b', realClock, { timeoutMs: 5000 });
    const [imageA, imageB, imageA2] = await Promise.all([a.get(IMAGE_SHA, IMAGE.length), b.get(IMAGE_SHA, IMAGE.length), a.get(IMAGE_SHA, IMAGE.length)]);
    assert.ok(imageA.equals(IMAGE) && imageB.equals(IMAGE) && imageA2 === imageA);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-a')), 4);
    assert.equal(watch.frames.get(topics.imageChunks(IMAGE_SHA, 'gw-b')), 4);
    assert.equal(watch.requests.length, 2);
    server.stop();
  });

  it('a gateway whose connection drops while its frames are sent asks again after the reconnect', async () => {
    let asked = 0;
    const server = new ImageServer(await bus('coordinator-r'), topics, async (s) => {
      asked++;
      // Long enough for the gateway to be offline when the frames go out.
      await new Promise((r) => setTimeout(r, 300));
      return s === IMAGE_SHA ? IMAGE : null;
    });
    await server.start();
    const gwBus = await bus('gw-r');
    const cache = new ImageCache(gwBus, topics, 'gw-r', realClock, { timeoutMs: 8000 });
    const events: string[] = [];
    gwBus.on('offline', () => events.push('offline'));
    gwBus.on('connect', () => events.push('connect'));
    const pending = cache.get(IMAGE_SHA, IMAGE.length);
    const until = Date.now() + 3000;
    while (asked === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    broker.cut('gw-r');
    const image = await pending;
    assert.ok(image.equals(IMAGE));
    assert.deepEqual(events, ['offline', 'connect']);
    assert.equal(asked, 2, 'asked once, and again after the reconnect');
    server.stop();
  });

  it('an image nobody serves fails IMAGE_UNAVAILABLE after the timeout', async () => {
    const a = new ImageCache(await bus('gw-c'), topics, 'gw-c', realClock, { timeoutMs: 500 });
    const started = Date.now();
    assert.equal(await codeOf(a.get('12'.repeat(32), 100)), 'IMAGE_UNAVAILABLE');
    assert.ok(Date.now() - started >= 490);
  });
});
