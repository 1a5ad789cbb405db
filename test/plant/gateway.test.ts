/**
 * GatewayAgent on the plant bus: presence and its will, sightings from the continuous scan, bad task
 * payloads, a broker outage, and stop() (simulated fleet, virtual clock, in-process broker).
 */
import { strict as assert } from 'assert';
import type { Clock } from '../../lib/clock';
import { appHash } from '../../lib/image';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { GatewayAgent, presenceWill } from '../../lib/plant/gateway/agent';
import type { GatewayPresence, GatewaySightings } from '../../lib/plant/messages';
import { CAMPAIGN, GATEWAY, device, gatewayEnv, installTask, testImage, type GatewayEnv } from './support/gateway-env';

const A = 'a4:cf:12:00:00:01';
const B = 'a4:cf:12:00:00:02';

describe('plant/GatewayAgent: presence, sightings, bad input, outage, stop', function () {
  this.timeout(60000);
  let env: GatewayEnv | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('publishes retained presence online with its slots; the will says offline when the connection dies', async () => {
    env = await gatewayEnv([device('dev-a', A)], { agent: { slots: 2 } });
    await env.agent.start();
    await env.sleep(10);
    const online = env.retained<GatewayPresence>(env.topics.presence(GATEWAY));
    assert.equal(online?.state, 'online');
    assert.deepEqual(online?.slots, { total: 2, free: 2 });
    assert.deepEqual(online?.adapter, { label: 'simulated adapter', simulated: true });
    assert.equal(typeof online?.software, 'string');
    const will = presenceWill(env.topics, GATEWAY, { label: 'x', simulated: false }, 2, 123);
    assert.equal(will.topic, env.topics.presence(GATEWAY));
    assert.equal(will.retain, true);
    assert.deepEqual(JSON.parse(will.payload.toString()), { v: 1, gateway: GATEWAY, state: 'offline', at: 123, slots: { total: 2, free: 0 }, adapter: { label: 'x', simulated: false }, software: online?.software });
    env.broker.kill(GATEWAY);
    assert.equal(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.state, 'offline');
  });

  it('stamps sightings on its own clock, not on the clock of the scheduler (coordinators in other processes compare lastSeen with theirs)', async () => {
    const modeled = new VirtualClock();
    // The agent counts epoch-like time, the adapter's scheduler counts from its own origin (as performance.now() does).
    const epoch: Clock = { now: () => modeled.now() + 1.7e12, setTimer: (fn, ms) => modeled.setTimer(fn, ms), virtual: true };
    env = await gatewayEnv([device('dev-a', A)], { clock: modeled, agent: { clock: epoch, sightingsEveryMs: 1000, scanWindowMs: 500, scanEveryMs: 1000 } });
    await env.agent.start();
    const topic = env.topics.sightings(GATEWAY);
    await env.until(() => (env?.retained<GatewaySightings>(topic)?.devices.length ?? 0) === 1, 'a sighting');
    const sightings = env.retained<GatewaySightings>(topic) as GatewaySightings;
    assert.ok(sightings.at > 1.7e12);
    const age = sightings.at - sightings.devices[0].lastSeen;
    assert.ok(age >= 0 && age < 5000, `lastSeen ${sightings.devices[0].lastSeen} is ${age} ms before the message's time ${sightings.at}`);
  });

  it('publishes sightings with version and hash prefix from the advertisements, strongest first, and forgets a vanished device', async () => {
    env = await gatewayEnv([device('dev-a', A), device('dev-b', B)], { agent: { sightingsEveryMs: 2000, scanWindowMs: 1000, scanEveryMs: 2000, forgetAfterMs: 8000 } });
    await env.agent.start();
    const topic = env.topics.sightings(GATEWAY);
    await env.until(() => (env?.retained<GatewaySightings>(topic)?.devices.length ?? 0) === 2, 'two sightings');
    const sightings = env.retained<GatewaySightings>(topic) as GatewaySightings;
    assert.equal(sightings.gateway, GATEWAY);
    const running = appHash(env.devices[0].flash.imageBytes(0)).toString('hex');
    for (const s of sightings.devices) {
      assert.ok([A, B].includes(s.address));
      assert.equal(s.version, '1.0.0');
      assert.equal(s.protocol, 'v2');
      assert.equal(s.otaState, 'valid');
      assert.equal(s.sessionActive, false);
      assert.ok(s.hashPrefix && running.startsWith(s.hashPrefix), `hash prefix ${s.hashPrefix} of ${running}`);
      assert.ok(s.lastSeen <= sightings.at && s.lastSeen > sightings.at - 8000);
    }
    const rssi = sightings.devices.map((s) => s.rssi);
    assert.deepEqual(rssi, [...rssi].sort((x, y) => y - x), 'strongest first');
    env.fleet.radio.injectFault(B, { kind: 'vanish', forMs: 60000 });
    await env.until(() => {
      const now = env?.retained<GatewaySightings>(topic);
      return now?.devices.length === 1 && now.devices[0].address === A;
    }, 'the vanished device forgotten');
    assert.equal(env.agent.status().sightings, 1);
  });

  it('drops malformed and oversized tasks with a warning and keeps serving the valid ones', async () => {
    const image = testImage('1.1.0');
    env = await gatewayEnv([device('dev-a', A)]);
    await env.agent.start();
    const valid = installTask(A, image);
    await env.send('not json {');
    await env.send({ ...valid, v: 2 });
    await env.send({ ...valid, device: { address: 'a4/cf/12/00/00/01', name: '' } });
    await env.send({ ...valid, image: { ...valid.image, sha256: 'xyz' } });
    await env.send({ ...valid, type: 'format-disk' });
    await env.send({ ...valid, options: { encoding: 'auto', confirm: 'yes', maxAttempts: 3 } });
    await env.send(Buffer.alloc(300 * 1024, 0x20));
    await env.send({ v: 1, type: 'cancel', taskId: 'never-sent', campaign: CAMPAIGN, reason: 'x' });
    await env.sleep(100);
    assert.equal(env.warnings.length, 7, env.warnings.join('\n'));
    assert.match(env.warnings[0], /PAYLOAD_INVALID.*not JSON/);
    assert.match(env.warnings[1], /\$\.v must be 1/);
    assert.match(env.warnings[2], /device\.address/);
    assert.match(env.warnings[3], /image\.sha256/);
    assert.match(env.warnings[4], /type/);
    assert.match(env.warnings[5], /options\.confirm/);
    assert.match(env.warnings[6], /PAYLOAD_TOO_LARGE/);
    assert.equal(env.statuses.length, 0, 'nothing was executed');
    // The agent still serves: this image is not in the store.
    await env.send(valid);
    const end = await env.end(valid.taskId);
    assert.equal(end.state, 'failed');
    assert.equal(end.error?.code, 'IMAGE_UNAVAILABLE');
    assert.equal(env.devices[0].flash.opCount, 0, 'nothing written');
  });

  it('keeps running through a broker outage and publishes the latest state and its presence when the broker is back', async () => {
    const image = testImage('1.1.0');
    // The devices already run the image: the task is a verify only, short.
    env = await gatewayEnv([device('dev-a', A)], { images: [image], factoryImage: image.bytes });
    await env.agent.start();
    const task = installTask(A, image);
    await env.send(task);
    await env.until(() => env!.of(task.taskId).length > 0, 'queued');
    env.broker.cut(GATEWAY);
    const ended = new Promise<string>((resolve) => env!.agent.on('execution', (s: { taskId: string; state: string }) => s.state === 'succeeded' && resolve(s.state)));
    assert.equal(await ended, 'succeeded');
    const topic = env.topics.execution(CAMPAIGN, A);
    assert.notEqual(env.retained<{ state: string }>(topic)?.state, 'succeeded', 'not published while offline');
    const presenceBefore = env.gatewayBus.published.filter((p) => p.topic === env!.topics.presence(GATEWAY)).length;
    env.broker.reconnect(GATEWAY);
    await env.sleep(10);
    const final = env.retained<{ state: string; installed: boolean }>(topic);
    assert.equal(final?.state, 'succeeded');
    assert.equal(final?.installed, false);
    assert.ok(env.gatewayBus.published.filter((p) => p.topic === env!.topics.presence(GATEWAY)).length > presenceBefore, 'presence published again');
    assert.equal(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.state, 'online');
  });

  it('stop() cancels the running task (reported cancelled), publishes offline, unsubscribes and leaves no timer', async () => {
    const image = testImage('1.1.0', 400 * 1024);
    env = await gatewayEnv([device('dev-a', A)], { images: [image] });
    await env.agent.start();
    const task = installTask(A, image);
    await env.send(task);
    await env.until(() => env!.of(task.taskId).some((s) => s.progress?.phase === 'transferring'), 'transferring');
    await Promise.all([env.agent.stop(), env.agent.stop()]);
    const end = env.of(task.taskId).pop();
    assert.equal(end?.state, 'cancelled');
    assert.equal(end?.error?.code, 'TASK_CANCELLED');
    assert.equal(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.state, 'offline');
    assert.equal(env.gatewayBus.subscriptions.length, 0, 'tasks topic unsubscribed');
    assert.equal(env.liveAgentTimers(), 0, 'no timer of the agent left');
    assert.equal(env.devices[0].installs, 0);
    const statusCount = env.statuses.length;
    await env.send(installTask(A, image));
    await env.sleep(100);
    assert.equal(env.statuses.length, statusCount, 'a stopped agent takes no task');
  });

  it('runs on the real clock too: sightings come, and stop() leaves no timer', async () => {
    env = await gatewayEnv([device('dev-a', A)], { clock: 'real', agent: { scanWindowMs: 150, scanEveryMs: 200, sightingsEveryMs: 250 } });
    await env.agent.start();
    const topic = env.topics.sightings(GATEWAY);
    for (let i = 0; i < 200 && env.retained<GatewaySightings>(topic)?.devices[0]?.address !== A; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(env.retained<GatewaySightings>(topic)?.devices[0]?.address, A);
    await env.agent.stop();
    assert.equal(env.liveAgentTimers(), 0);
  });

  it('a message its codec refuses to encode is logged, and the agent goes on', async () => {
    const errors: string[] = [];
    env = await gatewayEnv([device('dev-a', A)], {
      agent: {
        sightingsEveryMs: 1000,
        log: (level, text) => level === 'error' && errors.push(text),
        codec: {
          decodeTask: () => {
            throw new Error('unused');
          },
          encode: (kind, message) => {
            if (kind === 'sightings') throw new Error('sightings refused');
            return Buffer.from(JSON.stringify(message));
          },
        },
      },
    });
    await env.agent.start();
    await env.sleep(3500);
    assert.ok(errors.filter((e) => /sightings refused/.test(e)).length >= 3, errors.join('\n'));
    assert.equal(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.state, 'online');
  });

  it('refuses bad options with typed errors', () => {
    const base = { bus: {} as never, topics: {} as never, scheduler: {} as never, clock: {} as never, adapter: { label: 'a', simulated: true }, keys: {} };
    assert.throws(() => new GatewayAgent({ ...base, gatewayId: 'gw/1', slots: 1 }), /PLANT_BAD_ID|1 to 64/);
    assert.throws(() => new GatewayAgent({ ...base, gatewayId: 'gw-1', slots: 0 }), (e: { code?: string }) => e.code === 'BAD_OPTION');
    assert.throws(() => new GatewayAgent({ ...base, gatewayId: 'gw-1', slots: 1, keys: { masterKey: Buffer.alloc(32), fleetKey: Buffer.alloc(32) } }), (e: { code?: string }) => e.code === 'BAD_OPTION');
    assert.throws(() => new GatewayAgent({ ...base, gatewayId: 'gw-1', slots: 1, scanEveryMs: -1 }), (e: { code?: string }) => e.code === 'BAD_OPTION');
  });
});
