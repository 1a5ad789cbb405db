/**
 * GatewayAgent install tasks on keyed simulated devices (per-device keys from the master key, signed
 * manifests, host confirm policy): the state sequence, exactly-once, failing diagnostics, cancel before and
 * after the image is written, timeout, the slot limit, repeated and competing tasks, a wrong image.
 */
import { strict as assert } from 'assert';
import { appHash } from '../../lib/image';
import { chunkCountOf, encodeImageChunk } from '../../lib/plant/image-transfer';
import type { ExecutionStatus, GatewayPresence } from '../../lib/plant/messages';
import { CAMPAIGN, GATEWAY, device, gatewayEnv, installTask, testImage, type GatewayEnv, type TestImage } from './support/gateway-env';

const A = 'a4:cf:12:00:00:01';
const B = 'a4:cf:12:00:00:02';
const C = 'a4:cf:12:00:00:03';

function runningSha(env: GatewayEnv, index = 0): string {
  const d = env.devices[index];
  const app = d.application as unknown as { boot: { slot: 0 | 1 } } | null;
  assert.ok(app, 'the device runs');
  return appHash(d.flash.imageBytes(app.boot.slot)).toString('hex');
}

function states(list: ExecutionStatus[]): string[] {
  return list.map((s) => s.state).filter((s, i, all) => i === 0 || s !== all[i - 1]);
}

describe('plant/GatewayAgent: install tasks', function () {
  this.timeout(120000);
  let env: GatewayEnv | undefined;
  let image: TestImage;
  before(() => {
    image = testImage('1.1.0');
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it('installs: queued, in-progress (at most every 500 ms), succeeded; the device runs the image, confirmed; a second task for it only verifies (installed: false)', async () => {
    env = await gatewayEnv([device('dev-a', A)], { images: [image] });
    await env.agent.start();
    const old = runningSha(env);
    const task = installTask(A, image);
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'succeeded', JSON.stringify(end.error));
    assert.deepEqual(states(env.of(task.taskId)), ['queued', 'in-progress', 'succeeded']);
    const progress = env.of(task.taskId).filter((s) => s.state === 'in-progress');
    assert.ok(progress.some((s) => s.progress?.phase === 'transferring'));
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].at - progress[i - 1].at >= 500, `progress ${i} came ${progress[i].at - progress[i - 1].at} ms after the last ${JSON.stringify(progress.map((p) => [p.at, p.progress?.phase]))}`);
    assert.equal(end.installed, true);
    assert.deepEqual(end.before, { version: '1.0.0', sha256: old });
    assert.deepEqual(end.after, { version: '1.1.0', sha256: image.appSha256 });
    assert.equal(end.gateway, GATEWAY);
    assert.ok((end.bytesOnAir ?? 0) > 0 && (end.seconds ?? 0) > 0);
    assert.equal(env.devices[0].installs, 1);
    assert.equal(runningSha(env), image.appSha256);
    assert.equal(env.devices[0].flash.otadata.state(env.devices[0].flash.otadata.bootSlot() ?? 0), 2 /* VALID */, 'confirmed');
    assert.deepEqual(env.retained<ExecutionStatus>(env.topics.execution(CAMPAIGN, A))?.state, 'succeeded');
    assert.deepEqual(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.slots, { total: 1, free: 1 });
    // Exactly once: an install reported lost and sent again finds the image running.
    const again = installTask(A, image);
    await env.send(again);
    const second = await env.end(again.taskId);
    assert.equal(second.state, 'succeeded');
    assert.equal(second.installed, false);
    assert.deepEqual(second.before, { version: '1.1.0', sha256: image.appSha256 });
    assert.equal(env.devices[0].installs, 1, 'not installed twice');
  });

  it('a device whose first-boot diagnostics fail ends rolled-back (VERIFY_REJECTED) and runs its old image', async () => {
    env = await gatewayEnv([device('dev-a', A, { diagnostics: 'fail' })], { images: [image] });
    await env.agent.start();
    const old = runningSha(env);
    const task = installTask(A, image);
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'rolled-back', JSON.stringify(end));
    assert.equal(end.error?.code, 'VERIFY_REJECTED');
    assert.match(end.error?.message ?? '', /diagnostics/);
    await env.sleep(3000);
    assert.equal(runningSha(env), old);
  });

  it('cancel mid-transfer: cancelled, the device keeps booting its old image, nothing installed', async () => {
    const big = testImage('1.2.0', 400 * 1024, 9);
    env = await gatewayEnv([device('dev-a', A)], { images: [big] });
    await env.agent.start();
    const old = runningSha(env);
    const task = installTask(A, big);
    await env.send(task);
    await env.until(() => env!.of(task.taskId).some((s) => s.progress?.phase === 'transferring' && s.progress.percent > 10), 'the transfer under way');
    await env.send({ v: 1, type: 'cancel', taskId: task.taskId, campaign: CAMPAIGN, reason: 'operator' });
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'cancelled');
    assert.equal(end.error?.code, 'TASK_CANCELLED');
    assert.match(end.error?.message ?? '', /operator/);
    env.devices[0].powerLoss(100);
    await env.sleep(3000);
    assert.equal(runningSha(env), old, 'the old image boots');
    assert.equal(env.devices[0].installs, 0);
    assert.equal(env.agent.status().running, 0);
  });

  it('cancel after the image was written (device rebooting into it): rolled back, never left pending', async () => {
    env = await gatewayEnv([device('dev-a', A)], { images: [image] });
    await env.agent.start();
    const old = runningSha(env);
    const task = installTask(A, image);
    await env.send(task);
    await env.until(() => env!.devices[0].installs === 1, 'the boot switch');
    await env.send({ v: 1, type: 'cancel', taskId: task.taskId, campaign: CAMPAIGN, reason: 'late' });
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'cancelled', JSON.stringify(end));
    assert.match(end.error?.message ?? '', /rolled back/);
    await env.sleep(3000);
    assert.equal(runningSha(env), old, 'the previous image runs again');
    const flash = env.devices[0].flash;
    assert.notEqual(flash.otadata.state(flash.otadata.bootSlot() ?? 0), 1 /* PENDING_VERIFY */);
  });

  it('times out (TASK_TIMEOUT) and aborts the flash; the device keeps its image', async () => {
    const big = testImage('1.2.0', 400 * 1024, 9);
    env = await gatewayEnv([device('dev-a', A)], { images: [big] });
    await env.agent.start();
    const old = runningSha(env);
    const task = installTask(A, big, { timeoutMs: 3000 });
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'failed');
    assert.equal(end.error?.code, 'TASK_TIMEOUT');
    assert.ok(env.of(task.taskId).some((s) => s.state === 'in-progress'), 'it had started');
    await env.sleep(2000);
    assert.equal(runningSha(env), old);
    assert.equal(env.devices[0].installs, 0);
  });

  it('one slot, three tasks: all queued at once, run one after the other in arrival order, all succeed', async () => {
    env = await gatewayEnv([device('dev-a', A), device('dev-b', B), device('dev-c', C)], { images: [image] });
    await env.agent.start();
    const tasks = [A, B, C].map((address) => installTask(address, image));
    for (const t of tasks) await env.send(t);
    await env.sleep(20);
    assert.deepEqual(tasks.map((t) => env!.of(t.taskId)[0]?.state), ['queued', 'queued', 'queued']);
    assert.equal(env.agent.status().queued + env.agent.status().running, 3);
    assert.equal(env.retained<GatewayPresence>(env.topics.presence(GATEWAY))?.slots.free, 0);
    for (const t of tasks) assert.equal((await env.end(t.taskId)).state, 'succeeded');
    const window = (id: string) => {
      const list = env!.of(id);
      return { from: (list.find((s) => s.state === 'in-progress') as ExecutionStatus).at, to: (list[list.length - 1] as ExecutionStatus).at };
    };
    const spans = tasks.map((t) => window(t.taskId));
    assert.ok(spans[0].to <= spans[1].from && spans[1].to <= spans[2].from, `sequential: ${JSON.stringify(spans)}`);
    assert.deepEqual(env.devices.map((d) => d.installs), [1, 1, 1]);
  });

  it('a queued task can be cancelled, and times out while it waits for the slot; neither touches its device', async () => {
    const big = testImage('1.2.0', 400 * 1024, 9);
    env = await gatewayEnv([device('dev-a', A), device('dev-b', B), device('dev-c', C)], { images: [big] });
    await env.agent.start();
    const first = installTask(A, big);
    const cancelled = installTask(B, big);
    const late = installTask(C, big, { timeoutMs: 2000 });
    for (const t of [first, cancelled, late]) await env.send(t);
    await env.sleep(20);
    await env.send({ v: 1, type: 'cancel', taskId: cancelled.taskId, campaign: CAMPAIGN, reason: 'not needed' });
    const c = await env.end(cancelled.taskId);
    assert.equal(c.state, 'cancelled');
    assert.equal(c.error?.code, 'TASK_CANCELLED');
    const t = await env.end(late.taskId);
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.code, 'TASK_TIMEOUT');
    for (const id of [cancelled.taskId, late.taskId]) assert.deepEqual(states(env.of(id)), ['queued', id === cancelled.taskId ? 'cancelled' : 'failed'], 'never in progress');
    assert.equal((await env.end(first.taskId)).state, 'succeeded');
    assert.deepEqual(env.devices.map((d) => d.installs), [1, 0, 0]);
    assert.equal(env.devices[1].flash.opCount + env.devices[2].flash.opCount, 0);
  });

  it('a device of another chip than the image (a selector that matched too much) fails WRONG_CHIP before anything is written', async () => {
    env = await gatewayEnv([device('dev-a', A, { chip: 'esp32c3' })], { images: [image] });
    await env.agent.start();
    const task = installTask(A, image);
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'failed');
    assert.equal(end.error?.code, 'WRONG_CHIP', JSON.stringify(end.error));
    assert.equal(env.devices[0].flash.opCount, 0, 'nothing erased or written');
    assert.equal(env.devices[0].installs, 0);
  });

  it('a task for a device this gateway cannot find fails DEVICE_NOT_FOUND', async () => {
    env = await gatewayEnv([device('dev-a', A)], { images: [image], agent: { findTimeoutMs: 3000 } });
    await env.agent.start();
    const task = installTask('a4:cf:12:00:00:99', image);
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'failed');
    assert.equal(end.error?.code, 'DEVICE_NOT_FOUND');
  });

  it('a repeated task id is ignored; a second task for a device with a task here fails DEVICE_BUSY_IN_PLANT and the first one completes', async () => {
    env = await gatewayEnv([device('dev-a', A)], { images: [image] });
    await env.agent.start();
    const task = installTask(A, image);
    await env.send(task);
    await env.send(task);
    const rival = installTask(A, image, { campaign: 'c2' });
    await env.send(rival);
    const busy = await env.end(rival.taskId);
    assert.equal(busy.state, 'failed');
    assert.equal(busy.error?.code, 'DEVICE_BUSY_IN_PLANT');
    // A rival of the same campaign shares the retained topic: after its refusal the topic shows the running task again.
    const sameCampaign = installTask(A, image);
    await env.send(sameCampaign);
    assert.equal((await env.end(sameCampaign.taskId)).error?.code, 'DEVICE_BUSY_IN_PLANT');
    await env.sleep(5);
    const onRecord = env.retained<ExecutionStatus>(env.topics.execution(CAMPAIGN, A));
    assert.equal(onRecord?.taskId, task.taskId);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'succeeded');
    assert.equal(env.retained<ExecutionStatus>(env.topics.execution(CAMPAIGN, A))?.state, 'succeeded');
    assert.equal(env.of(task.taskId).filter((s) => s.state === 'queued').length, 1, 'queued once');
    assert.equal(env.warnings.filter((w) => /arrived again/.test(w)).length, 1);
    assert.equal(env.devices[0].installs, 1);
  });

  it('a seed-firmware (legacy) device is flashed and reported succeeded without a verify (it has no Status)', async () => {
    env = await gatewayEnv([device('seed-1', A, { protocol: 'legacy', confirmPolicy: undefined })], { images: [image] });
    await env.agent.start();
    const task = installTask(A, image, { timeoutMs: 600000 }, { confirm: false });
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'succeeded', JSON.stringify(end.error));
    assert.equal(end.installed, true);
    assert.deepEqual(end.before, { version: null, sha256: null });
    assert.deepEqual(end.after, { version: '1.1.0', sha256: image.appSha256 });
    assert.equal(env.devices[0].installs, 1);
  });

  it('an image whose bytes do not match the task fails IMAGE_HASH_MISMATCH before anything is written', async () => {
    const other = testImage('1.1.0', 64 * 1024, 99);
    assert.equal(other.bytes.length, image.bytes.length);
    env = await gatewayEnv([device('dev-a', A)]);
    // A broken server answers every request for the image with the frames of another image of the same size.
    const rogue = env.broker.connect('rogue-server');
    let answered = 0;
    await rogue.subscribe(env.topics.imageRequest(image.sha256), () => {
      answered++;
      for (let i = 0; i < chunkCountOf(other.bytes.length); i++) void rogue.publish(env!.topics.imageChunks(image.sha256, GATEWAY), encodeImageChunk(other.bytes, i));
    });
    await env.agent.start();
    const task = installTask(A, image);
    await env.send(task);
    const end = await env.end(task.taskId);
    assert.equal(end.state, 'failed');
    assert.equal(end.error?.code, 'IMAGE_HASH_MISMATCH');
    assert.equal(answered, 2, 'the cache asks once more after a copy with another SHA-256');
    assert.equal(env.devices[0].flash.opCount, 0);
    assert.equal(env.fleet.radio.stats().devices[A]?.connections ?? 0, 0, 'the device was not even connected');
  });
});
