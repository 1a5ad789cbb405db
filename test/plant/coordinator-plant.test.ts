/**
 * RolloutCoordinator over a larger plant: 120 devices, four gateways with overlapping reach, a canary, a
 * wave with rollbacks under its threshold, a gateway killed mid-wave and a coordinator restart. The
 * invariants of the issue hold at the end: every device ended once, none installed twice, never on two
 * gateways at once, never more than maxConcurrent at once, and the retained record is the final one.
 */
import { strict as assert } from 'assert';
import type { CampaignState, DeviceResult } from '../../lib/plant/messages';
import { CoordHarness, harnessPerTest } from './support/coord-harness';
import type { Behaviour } from './support/fake-gateway';

describe('plant coordinator: a 120-device plant with a gateway loss and a restart', () => {
  let h: CoordHarness;
  harnessPerTest((next) => (h = next));

  it('ends with every device once, no double install, concurrency kept, record consistent', async () => {
    const addresses = h.addDevices(120);
    const failing = new Set(addresses.filter((_, i) => i % 17 === 5));
    // Each gateway reaches two neighbouring quarters of the plant; installs take 20..39 s.
    const script = (task: { device: { address: string } }): Behaviour => {
      const i = addresses.indexOf(task.device.address);
      return failing.has(task.device.address) ? { kind: 'rollback', afterMs: 15_000 } : { kind: 'succeed', afterMs: 20_000 + (i % 20) * 1000 };
    };
    for (let g = 0; g < 4; g++) {
      const sees: Record<string, number> = {};
      addresses.forEach((a, i) => {
        const quarter = Math.floor(i / 30);
        if (quarter === g || quarter === (g + 1) % 4) sees[a] = quarter === g ? -50 - (i % 7) : -75 - (i % 5);
      });
      await h.addGateway(`gw-${g}`, sees, { slots: 4, script });
    }
    const first = await h.coordinator();
    await h.run(10);
    const state = await first.startCampaign(h.spec({ waves: [{ count: 1 }, { percent: 10, maxFailures: 3 }, { percent: 100, maxFailurePercent: 20 }], maxConcurrent: 12, maxReassignments: 3 }));
    assert.deepEqual(state.waves.map((w) => w.size), [1, 12, 107]);
    await h.run(200_000);
    h.gateway('gw-1').kill();
    await h.run(60_000);
    await first.stop();
    await h.run(30_000);
    const second = await h.coordinator();
    const end = await h.ended(second, state.id, 7_200_000);
    await h.run(300);

    assert.equal(end.state, 'completed', end.reason ?? '');
    const byState = (s: string) => end.devices.filter((d) => d.state === s).length;
    assert.equal(byState('rolled-back'), failing.size);
    assert.equal(byState('succeeded'), 120 - failing.size);
    for (const d of end.devices) {
      const device = h.plant.devices.get(d.address)!;
      assert.ok(device.installs <= 1, `${d.address} installed ${device.installs} times`);
      if (d.state === 'succeeded') assert.equal(device.runningSha, h.sha);
      const successes = d.assignments.filter((a) => a.ended === 'succeeded');
      assert.ok(successes.length <= 1 && (successes.length === 0 || d.assignments[d.assignments.length - 1] === successes[0]), `${d.address}: nothing after its success`);
    }
    assert.deepEqual(h.plant.doubleRuns, []);
    assert.ok(h.plant.maxActive <= 12, `max ${h.plant.maxActive} at once`);
    assert.ok(end.devices.some((d) => d.assignments.some((a) => a.ended === 'gateway-offline')), 'the killed gateway had devices to hand on');
    const ends = new Map<string, DeviceResult[]>();
    for (const r of h.results) ends.set(r.device.address, [...(ends.get(r.device.address) ?? []), r]);
    assert.ok(addresses.every((a) => ends.get(a)?.length === 1), 'one result per device over both coordinators');
    const retained = JSON.parse(h.broker.retained(h.topics.campaignState(state.id))!.toString()) as CampaignState;
    assert.deepEqual(retained, end);
    assert.deepEqual(end.waves.map((w) => [w.size, w.succeeded + w.failed]), [[1, 1], [12, 12], [107, 107]]);
  });
});
