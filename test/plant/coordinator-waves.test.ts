/** RolloutCoordinator: waves, abort thresholds, plant-wide concurrency and the choice of gateway. */
import { strict as assert } from 'assert';
import type { InstallTask } from '../../lib/plant/messages';
import { CoordHarness, harnessPerTest, seeAll, succeedAfter } from './support/coord-harness';
import type { Behaviour } from './support/fake-gateway';

describe('plant coordinator: waves, thresholds, concurrency, gateway choice', () => {
  let h: CoordHarness;
  harnessPerTest((next) => (h = next));

  /** Fails the named devices after failMs, everything else succeeds after okMs. */
  function failing(names: string[], failMs: number, okMs: number, how: 'fail' | 'rollback' = 'fail'): (task: InstallTask) => Behaviour {
    return (task) => (names.includes(task.device.name) ? (how === 'fail' ? { kind: 'fail', code: 'DEVICE_FLASH_WRITE_FAILED', afterMs: failMs } : { kind: 'rollback', afterMs: failMs }) : { kind: 'succeed', afterMs: okMs });
  }

  it('runs a canary, then batches by percent, the last wave taking the rest; a wave starts when the one before is done', async () => {
    const addresses = h.addDevices(10);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 10 });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ waves: [{ count: 1 }, { percent: 30 }, { percent: 10 }], maxConcurrent: 10 }));
    assert.deepEqual(state.waves.map((w) => w.size), [1, 3, 6]);
    assert.deepEqual(state.devices.map((d) => d.wave), [0, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    assert.equal(state.devices.filter((d) => d.state === 'assigned').length, 1, 'only the canary starts');
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.deepEqual(end.waves.map((w) => [w.state, w.succeeded, w.failed]), [['done', 1, 0], ['done', 3, 0], ['done', 6, 0]]);
    for (let wave = 1; wave < 3; wave++) {
      const previousEnd = Math.max(...end.devices.filter((d) => d.wave === wave - 1).map((d) => d.endedAt as number));
      const firstStart = Math.min(...end.devices.filter((d) => d.wave === wave).map((d) => d.assignments[0].at));
      assert.ok(firstStart >= previousEnd, `wave ${wave} starts after wave ${wave - 1} ended`);
    }
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 1));
  });

  it('aborts on a failure count: in-flight tasks are cancelled, pending devices cancelled, later waves never start', async () => {
    const addresses = h.addDevices(8);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 8, script: failing(['line1-0', 'line1-1'], 2000, 20_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ waves: [{ count: 4, maxFailures: 2 }, { percent: 100 }], maxConcurrent: 4 }));
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'aborted');
    assert.match(end.reason ?? '', /wave 1: 2 of 4 devices failed, the limit is 2/);
    const byName = Object.fromEntries(end.devices.map((d) => [d.name, d.state]));
    assert.deepEqual(byName, {
      'line1-0': 'failed', 'line1-1': 'failed', 'line1-2': 'cancelled', 'line1-3': 'cancelled', 'line1-4': 'cancelled',
      'line1-5': 'cancelled', 'line1-6': 'cancelled', 'line1-7': 'cancelled',
    });
    assert.deepEqual(h.gateway('gw-a').cancels.map((x) => x.taskId).sort(), ['aa0000000002-1', 'aa0000000003-1']);
    assert.equal(h.gateway('gw-a').tasks.length, 4, 'the second wave was never sent');
    assert.deepEqual(end.waves.map((w) => w.state), ['aborted', 'waiting']);
    assert.equal(h.results.length, 8, 'one result per device');
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 0));
  });

  it('aborts on a failure percentage, counting rollbacks as failures', async () => {
    const addresses = h.addDevices(6);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 8, script: failing(['line1-1', 'line1-2'], 3000, 30_000, 'rollback') });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ waves: [{ count: 1 }, { percent: 100, maxFailurePercent: 20 }] }));
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'aborted');
    assert.match(end.reason ?? '', /wave 2: 2 of 5 devices failed \(40\.0 %\), more than the 20 % limit/);
    assert.deepEqual(end.devices.map((d) => d.state), ['succeeded', 'rolled-back', 'rolled-back', 'cancelled', 'cancelled', 'cancelled']);
    assert.equal(h.gateway('gw-a').cancels.length, 3);
  });

  it('a wave within its thresholds lets the next one start', async () => {
    const addresses = h.addDevices(6);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 8, script: failing(['line1-1'], 3000, 5000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ waves: [{ count: 3, maxFailures: 2, maxFailurePercent: 50 }, { percent: 100 }] }));
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.deepEqual(end.waves.map((w) => [w.succeeded, w.failed]), [[2, 1], [3, 0]]);
  });

  it('never has more than maxConcurrent devices installing plant-wide, nor more tasks at a gateway than its slots', async () => {
    const addresses = h.addDevices(24);
    const script = succeedAfter(7000);
    for (const id of ['gw-a', 'gw-b', 'gw-c']) await h.addGateway(id, seeAll(addresses), { slots: 3, script });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxConcurrent: 5 }));
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.equal(h.plant.maxActive, 5);
    for (const gw of h.gateways.values()) {
      assert.ok(gw.maxOutstanding <= 3, `${gw.id} had ${gw.maxOutstanding} tasks at once`);
      assert.ok(gw.tasks.length > 0, `${gw.id} got work`);
    }
    assert.deepEqual(h.plant.doubleRuns, []);
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 1));
  });

  it('gives a device to the online gateway with the best RSSI, then the most free slots, and only with a fresh sighting', async () => {
    const [d0, d1, d2] = h.addDevices(3);
    const slow = succeedAfter(5000);
    await h.addGateway('gw-a', { [d0]: -70, [d1]: -60, [d2]: -60 }, { slots: 4, script: slow });
    await h.addGateway('gw-b', { [d0]: -50, [d1]: -60 }, { slots: 1, script: slow });
    const stale = await h.addGateway('gw-c', { [d2]: -30 }, { slots: 4, script: slow });
    stale.quiet();
    const c = await h.coordinator();
    await h.run(31_000); // gw-c's one sighting is now older than 30 s
    const state = await c.startCampaign(h.spec({ waves: [{ count: 1 }, { percent: 100 }] }));
    assert.equal(state.devices[0].gateway, 'gw-b', 'best RSSI');
    await h.ended(c, state.id);
    const end = c.campaign(state.id)!;
    assert.equal(end.devices[1].gateway, 'gw-a', 'same RSSI: more free slots');
    assert.equal(end.devices[2].gateway, 'gw-a', 'gw-c has the best RSSI but a stale sighting');
    assert.equal(stale.tasks.length, 0);
  });

  it('does not give devices to an offline gateway', async () => {
    const addresses = h.addDevices(2);
    await h.addGateway('gw-a', seeAll(addresses, -40));
    await h.addGateway('gw-b', seeAll(addresses, -80));
    const c = await h.coordinator();
    await h.run(10);
    h.gateway('gw-a').kill();
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    assert.deepEqual(state.devices.map((d) => d.gateway), ['gw-b', 'gw-b']);
    await h.ended(c, state.id);
  });
});
