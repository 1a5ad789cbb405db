/** RolloutCoordinator: gateway loss, task timeouts, re-assignment limits, late statuses and a coordinator restart. */
import { strict as assert } from 'assert';
import type { ExecutionStatus } from '../../lib/plant/messages';
import { CANCEL_ANSWER_MS, TASK_TIMEOUT_GRACE_MS } from '../../lib/plant/coordinator/coordinator';
import { CoordHarness, harnessPerTest, seeAll, succeedAfter } from './support/coord-harness';
import type { Behaviour } from './support/fake-gateway';

describe('plant coordinator: failover and restart', () => {
  let h: CoordHarness;
  harnessPerTest((next) => (h = next));

  it('hands the devices of a gateway that goes offline mid-task to another gateway, never both at once', async () => {
    const addresses = h.addDevices(4);
    await h.addGateway('gw-a', seeAll(addresses, -40), { slots: 4, script: succeedAfter(20_000) });
    await h.addGateway('gw-b', seeAll(addresses, -70), { slots: 4, script: succeedAfter(20_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    assert.ok(state.devices.every((d) => d.gateway === 'gw-a'));
    await h.run(5000);
    h.gateway('gw-a').kill();
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    for (const d of end.devices) {
      assert.deepEqual(d.assignments.map((a) => [a.gateway, a.ended]), [['gw-a', 'gateway-offline'], ['gw-b', 'succeeded']]);
      assert.equal(d.gateway, 'gw-b');
    }
    assert.deepEqual(h.plant.doubleRuns, []);
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 1));
  });

  it('on a task timeout, cancels at the gateway and re-assigns only after its cancelled report', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: succeedAfter(600_000) });
    await h.addGateway('gw-b', { [d0]: -70 }, { script: succeedAfter(10_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ deviceTimeoutMs: 60_000 }));
    const cancelledAt: number[] = [];
    h.broker.connect('watch').subscribe(h.topics.execution(state.id, d0), (m) => {
      const s = JSON.parse(m.payload.toString()) as ExecutionStatus;
      if (s.state === 'cancelled') cancelledAt.push(h.clock.now());
    });
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'succeeded');
    assert.deepEqual(end.devices[0].assignments.map((a) => [a.gateway, a.ended]), [['gw-a', 'cancelled'], ['gw-b', 'succeeded']]);
    assert.equal(h.gateway('gw-a').cancels.length, 1);
    assert.equal(h.gateway('gw-a').cancels[0].reason, 'timeout');
    const second = end.devices[0].assignments[1].at;
    assert.ok(second >= state.createdAt + 60_000 + TASK_TIMEOUT_GRACE_MS, 'not before the timeout');
    assert.ok(cancelledAt.length === 1 && second >= cancelledAt[0], 'gw-b gets it after gw-a reported the cancel');
    assert.deepEqual(h.plant.doubleRuns, []);
  });

  it('a gateway that answers neither the task nor the cancel: the device fails TASK_TIMEOUT and is not handed on', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: () => ({ kind: 'silent' }) });
    await h.addGateway('gw-b', { [d0]: -70 });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ deviceTimeoutMs: 10_000 }));
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'failed');
    assert.equal(end.devices[0].error?.code, 'TASK_TIMEOUT');
    // The task's clock starts when it goes out (after the campaign's record is retained, a broker round trip).
    assert.equal(end.devices[0].endedAt, end.devices[0].assignments[0].at + 10_000 + TASK_TIMEOUT_GRACE_MS + CANCEL_ANSWER_MS);
    assert.equal(h.gateway('gw-b').tasks.length, 0);
  });

  it('a succeeded answer after the timeout cancel counts (the install finished)', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: () => ({ kind: 'ignore-cancel', afterMs: 50_000 }) });
    await h.addGateway('gw-b', { [d0]: -70 });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ deviceTimeoutMs: 10_000 }));
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'succeeded');
    assert.equal(h.gateway('gw-b').tasks.length, 0);
    assert.equal(h.plant.devices.get(d0)!.installs, 1);
  });

  it('fails a device GATEWAY_LOST after maxReassignments', async () => {
    const [d0] = h.addDevices(1);
    const hang = (): Behaviour => ({ kind: 'silent' });
    await h.addGateway('gw-a', { [d0]: -40 }, { script: hang });
    await h.addGateway('gw-b', { [d0]: -50 }, { script: hang });
    await h.addGateway('gw-c', { [d0]: -60 }, { script: hang });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxReassignments: 1 }));
    await h.run(1000);
    h.gateway('gw-a').kill();
    await h.run(1000);
    assert.equal(c.campaign(state.id)!.devices[0].gateway, 'gw-b');
    h.gateway('gw-b').kill();
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'failed');
    assert.equal(end.devices[0].error?.code, 'GATEWAY_LOST');
    assert.equal(h.gateway('gw-c').tasks.length, 0);
    assert.equal(end.state, 'completed', 'no abort threshold set: a failed device does not abort');
  });

  it('records a late status of an earlier assignment without changing the device; the new gateway finds the image already there', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: () => ({ kind: 'silent' }) });
    await h.addGateway('gw-b', { [d0]: -70 }, { script: succeedAfter(10_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    await h.run(5000);
    // gw-a wrote the image but died before it could report.
    h.plant.devices.get(d0)!.runningSha = h.sha;
    h.gateway('gw-a').kill();
    await h.run(100);
    assert.equal(c.campaign(state.id)!.devices[0].gateway, 'gw-b');
    const late: ExecutionStatus = { v: 1, campaign: state.id, taskId: 'aa0000000000-1', gateway: 'gw-a', device: { address: d0, name: 'line1-0' }, state: 'succeeded', at: h.clock.now(), installed: true };
    await h.broker.connect('late').publish(h.topics.execution(state.id, d0), JSON.stringify(late));
    await h.run(100);
    const mid = c.campaign(state.id)!.devices[0];
    assert.equal(mid.assignments[0].ended, 'gateway-offline, then succeeded');
    assert.equal(mid.state, 'in-progress');
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'succeeded');
    const results = h.results.filter((r) => r.device.address === d0);
    assert.equal(results.length, 1, 'one result for the device');
    assert.equal(results[0].installed, false);
    assert.equal(results[0].gateway, 'gw-b');
  });

  it('ignores statuses of unknown tasks and from the wrong gateway, with a warning', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: succeedAfter(10_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    const bus = h.broker.connect('rogue');
    const base: ExecutionStatus = { v: 1, campaign: state.id, taskId: 'aa0000000000-1', gateway: 'gw-x', device: { address: d0, name: 'line1-0' }, state: 'failed', at: 0, error: { code: 'X', message: 'x' } };
    await bus.publish(h.topics.execution(state.id, d0), JSON.stringify(base));
    await bus.publish(h.topics.execution(state.id, d0), JSON.stringify({ ...base, gateway: 'gw-a', taskId: 'nope-1' }));
    await h.run(100);
    assert.equal(h.warnings.filter((w) => /ignored a failed status/.test(w)).length, 2);
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[0].state, 'succeeded');
  });

  it('a restarted coordinator resumes the campaign from its retained state and finishes it, no device installed twice', async () => {
    const addresses = h.addDevices(8);
    await h.addGateway('gw-a', seeAll(addresses, -40), { slots: 2, script: succeedAfter(10_000) });
    await h.addGateway('gw-b', seeAll(addresses, -60), { slots: 2, script: succeedAfter(10_000) });
    const first = await h.coordinator();
    await h.run(10);
    const state = await first.startCampaign(h.spec({ waves: [{ count: 2 }, { percent: 100 }], maxConcurrent: 3 }));
    await h.run(15_000);
    await first.stop();
    const before = JSON.parse(h.broker.retained(h.topics.campaignState(state.id))!.toString()) as typeof state;
    assert.ok(before.devices.some((d) => d.state === 'assigned' || d.state === 'in-progress'), 'stopped mid-campaign');
    assert.equal(before.state, 'running');
    assert.ok(before.devices.some((d) => d.state === 'pending'), 'devices left for the second coordinator');
    const inFlightAtStop = before.devices.filter((d) => d.state === 'assigned' || d.state === 'in-progress').map((d) => d.address);
    // While no coordinator runs, the in-flight installs finish and a gateway dies.
    await h.run(20_000);
    h.gateway('gw-b').kill();
    const resultsBefore = h.results.length;
    const second = await h.coordinator();
    const end = await h.ended(second, state.id);
    assert.equal(end.state, 'completed');
    assert.ok(end.devices.every((d) => d.state === 'succeeded'));
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 1), 'each device installed once');
    for (const d of end.devices) {
      const succeeded = d.assignments.filter((a) => a.ended === 'succeeded');
      assert.ok(succeeded.length === 1 && d.assignments.indexOf(succeeded[0]) === d.assignments.length - 1, `${d.address}: never assigned after its success`);
    }
    assert.equal(h.results.length - resultsBefore + before.devices.filter((d) => d.state === 'succeeded').length, 8, 'each device reported once across both coordinators');
    for (const address of inFlightAtStop) {
      const d = end.devices.find((x) => x.address === address)!;
      assert.equal(d.assignments.length, 1, `${address}: its finish while no coordinator ran was caught up from the retained status`);
    }
    assert.ok(end.devices.filter((d) => !inFlightAtStop.includes(d.address)).some((d) => d.assignments[0].gateway === 'gw-a' && d.assignments[0].at > before.updatedAt), 'the second coordinator assigned work');
    assert.deepEqual(h.plant.doubleRuns, []);
  });

  it('a resumed coordinator hands on the unfinished devices of a gateway that died while it was down', async () => {
    const addresses = h.addDevices(2);
    await h.addGateway('gw-a', seeAll(addresses, -40), { slots: 2, script: succeedAfter(60_000) });
    await h.addGateway('gw-b', seeAll(addresses, -70), { slots: 2, script: succeedAfter(10_000) });
    const first = await h.coordinator();
    await h.run(10);
    const state = await first.startCampaign(h.spec());
    await h.run(5000);
    await first.stop();
    await h.run(5000);
    h.gateway('gw-a').kill();
    await h.run(5000);
    const second = await h.coordinator();
    const end = await h.ended(second, state.id);
    assert.equal(end.state, 'completed');
    for (const d of end.devices) assert.deepEqual(d.assignments.map((a) => [a.gateway, a.ended]), [['gw-a', 'gateway-offline'], ['gw-b', 'succeeded']]);
    assert.deepEqual(h.plant.doubleRuns, []);
  });

  it('a resumed coordinator finishes a cancel that was under way: it cancels the tasks again and ends the campaign', async () => {
    const [d0] = h.addDevices(1);
    await h.addGateway('gw-a', { [d0]: -40 }, { script: succeedAfter(60_000) });
    const first = await h.coordinator();
    await h.run(10);
    const state = await first.startCampaign(h.spec());
    await h.run(1000);
    h.gateway('gw-a').kill(); // gone before the cancel
    await first.control(state.id, 'cancel', 'stop');
    await first.stop();
    await h.addGateway('gw-a2', { [d0]: -40 });
    const second = await h.coordinator();
    const end = await h.ended(second, state.id);
    assert.equal(end.state, 'cancelled');
    assert.equal(end.devices[0].state, 'cancelled');
    assert.equal(end.devices[0].error?.code, 'GATEWAY_LOST');
    assert.equal(h.gateway('gw-a2').tasks.length, 0);
  });

  it('fails a selected device DEVICE_NOT_SEEN when no gateway sees it for deviceTimeoutMs', async () => {
    const addresses = h.addDevices(2);
    const gw = await h.addGateway('gw-a', seeAll(addresses), { slots: 1, script: succeedAfter(5000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ waves: [{ count: 1 }, { percent: 100 }], deviceTimeoutMs: 20_000 }));
    gw.see(addresses[1], null);
    const end = await h.ended(c, state.id);
    assert.equal(end.devices[1].state, 'failed');
    assert.equal(end.devices[1].error?.code, 'DEVICE_NOT_SEEN');
    const waited = (end.devices[1].endedAt as number) - state.createdAt;
    assert.ok(waited >= 20_000 && waited <= 20_000 + 5000 + 2000, `failed after ${waited} ms`);
    assert.equal(gw.tasks.length, 1);
  });

  it('gives a device back to the gateway it was taken from when no other gateway sees it', async () => {
    const [d0] = h.addDevices(1);
    let calls = 0;
    await h.addGateway('gw-a', { [d0]: -40 }, { script: () => (++calls === 1 ? { kind: 'succeed', afterMs: 600_000 } : { kind: 'succeed', afterMs: 5000 }) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ deviceTimeoutMs: 10_000 }));
    const end = await h.ended(c, state.id);
    assert.deepEqual(end.devices[0].assignments.map((a) => [a.gateway, a.ended]), [['gw-a', 'cancelled'], ['gw-a', 'succeeded']]);
  });
});
