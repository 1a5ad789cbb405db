/** RolloutCoordinator: pause / resume / cancel, conflicts between campaigns, garbage on its topics, progress. */
import { strict as assert } from 'assert';
import type { CampaignProgress, CampaignState, DeviceClaim } from '../../lib/plant/messages';
import { computeProgress } from '../../lib/plant/coordinator/progress';
import { codeOf } from '../helpers/errors';
import { CoordHarness, harnessPerTest, seeAll, succeedAfter } from './support/coord-harness';

describe('plant coordinator: control, conflicts, garbage, progress', () => {
  let h: CoordHarness;
  harnessPerTest((next) => (h = next));

  function control(id: string, action: 'pause' | 'resume' | 'cancel', reason?: string): Promise<void> {
    return h.broker.connect(`ctl-${action}-${h.clock.now()}`).publish(h.topics.campaignControl(id), JSON.stringify({ v: 1, action, ...(reason ? { reason } : {}) }));
  }

  it('pauses on a control message (in-flight tasks finish, nothing new starts) and resumes on another', async () => {
    const addresses = h.addDevices(6);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 6, script: succeedAfter(10_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxConcurrent: 2 }));
    await h.run(1000);
    await control(state.id, 'pause', 'shift change');
    await h.run(100);
    assert.equal(c.campaign(state.id)!.state, 'paused');
    assert.equal(c.campaign(state.id)!.reason, 'shift change');
    await h.run(60_000);
    const paused = c.campaign(state.id)!;
    assert.deepEqual(paused.devices.map((d) => d.state), ['succeeded', 'succeeded', 'pending', 'pending', 'pending', 'pending']);
    assert.equal(h.gateway('gw-a').tasks.length, 2);
    const retained = JSON.parse(h.broker.retained(h.topics.campaignState(state.id))!.toString()) as CampaignState;
    assert.equal(retained.state, 'paused');
    await control(state.id, 'resume');
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 1));
  });

  it('cancels on a control message: pending devices cancelled, in-flight tasks cancelled at the gateway, claims cleared', async () => {
    const addresses = h.addDevices(5);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 5, script: succeedAfter(30_000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxConcurrent: 2 }));
    await h.run(100);
    for (const a of addresses) assert.equal((JSON.parse(h.broker.retained(h.topics.deviceClaim(a))!.toString()) as DeviceClaim).campaign, state.id);
    const ended = h.ended(c, state.id);
    await control(state.id, 'cancel', 'wrong image');
    const end = await ended;
    assert.equal(end.state, 'cancelled');
    assert.equal(end.reason, 'wrong image');
    assert.deepEqual(end.devices.map((d) => d.state), ['cancelled', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
    assert.equal(h.gateway('gw-a').cancels.length, 2);
    assert.ok(end.devices.slice(0, 2).every((d) => d.assignments[0].ended === 'cancelled'));
    for (const a of addresses) assert.equal(h.broker.retained(h.topics.deviceClaim(a)), undefined);
    assert.ok(addresses.every((a) => h.plant.devices.get(a)!.installs === 0));
    assert.equal(await codeOf(c.control(state.id, 'resume')), 'CAMPAIGN_ENDED');
  });

  it('cancels a paused campaign by method; the campaign ends when its last task reports', async () => {
    const addresses = h.addDevices(3);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 3, script: () => ({ kind: 'ignore-cancel', afterMs: 20_000 }) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxConcurrent: 1 }));
    await c.control(state.id, 'pause');
    const afterCancel = await c.control(state.id, 'cancel');
    assert.equal(afterCancel.state, 'cancelled');
    assert.deepEqual(afterCancel.devices.map((d) => d.state), ['assigned', 'cancelled', 'cancelled']);
    let endedAt = -1;
    c.once('campaign', () => (endedAt = h.clock.now()));
    const end = await h.ended(c, state.id);
    assert.ok(endedAt >= state.createdAt + 20_000, 'the end waits for the task in flight');
    assert.equal(end.devices[0].state, 'succeeded', 'the gateway finished before it read the cancel');
  });

  it('refuses a second campaign on devices a running one holds (CAMPAIGN_CONFLICT), and takes it after the first ended', async () => {
    const addresses = h.addDevices(4);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 4, script: succeedAfter(10_000) });
    const c = await h.coordinator();
    await h.run(10);
    const first = await c.startCampaign(h.spec({ id: 'first', target: { nameRegex: '^line1-[01]$' } }));
    const err = await c.startCampaign(h.spec({ id: 'second', target: { nameRegex: '^line1-[12]$' } })).catch((e: Error & { code: string }) => e);
    assert.equal((err as { code?: string }).code, 'CAMPAIGN_CONFLICT');
    assert.match((err as Error).message, /aa:00:00:00:00:01 \(first\)/);
    assert.doesNotMatch((err as Error).message, /aa:00:00:00:00:02/);
    await h.ended(c, first.id);
    h.plant.devices.get(addresses[1])!.runningSha = null; // back to an old image, so it is selected again
    await h.run(5000);
    const second = await c.startCampaign(h.spec({ id: 'second', target: { nameRegex: '^line1-[12]$' } }));
    assert.equal(second.devices.length, 2);
  });

  it('sees conflicts through retained claims and states of another coordinator, and ignores claims of ended campaigns', async () => {
    const addresses = h.addDevices(3);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 4 });
    const other = h.broker.connect('other-coordinator');
    const claim = (address: string, campaign: string): Promise<void> => other.publish(h.topics.deviceClaim(address), JSON.stringify({ v: 1, campaign, address, at: 0 }), { retain: true });
    await claim(addresses[0], 'theirs-live');
    await claim(addresses[1], 'theirs-done');
    const doneState = { v: 1, id: 'theirs-done', name: 'x', coordinator: 'coord-9', createdAt: 0, updatedAt: 0, state: 'completed', reason: null, spec: h.spec({ id: 'theirs-done' }), image: { sha256: h.sha, size: 1, version: '2.0.0', chip: 'esp32c3' }, currentWave: 0, waves: [{ size: 1, state: 'done', failed: 0, succeeded: 1 }], devices: [] };
    await other.publish(h.topics.campaignState('theirs-done'), JSON.stringify(doneState), { retain: true });
    const c = await h.coordinator();
    await h.run(10);
    const err = await c.startCampaign(h.spec()).catch((e: Error) => e);
    assert.equal((err as { code?: string }).code, 'CAMPAIGN_CONFLICT');
    assert.match((err as Error).message, /aa:00:00:00:00:00 \(theirs-live\)/);
    assert.doesNotMatch((err as Error).message, /theirs-done/);
    await other.publish(h.topics.deviceClaim(addresses[0]), '', { retain: true });
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    assert.equal(state.devices.length, 3);
  });

  it('survives garbage on every topic it subscribes to, with warnings, and still finishes its campaign', async () => {
    const addresses = h.addDevices(3);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 3, script: succeedAfter(5000) });
    const c = await h.coordinator();
    await h.run(10);
    const state = await c.startCampaign(h.spec());
    const rogue = h.broker.connect('rogue');
    const garbage: Array<string | Buffer> = [
      'not json', '[]', 'null', '42', '{"v":2}', '{"v":1}', Buffer.from([0xff, 0x00, 0xfe]), Buffer.alloc(300 * 1024, 0x7b),
      JSON.stringify({ v: 1, gateway: 'gw-a', at: 1, devices: [null, 5, { address: 7 }], state: 'offline', slots: 'many' }),
      JSON.stringify({ v: 1, campaign: state.id, taskId: 'aa0000000000-1', gateway: 'gw-a', device: { address: addresses[0], name: '' }, state: 'exploded', at: 1 }),
      JSON.stringify({ v: 1, id: 'zzz', coordinator: 'coord-1', state: 'running', spec: { nonsense: true }, image: {}, waves: [], devices: [1] }),
      JSON.stringify({ v: 1, action: 'explode' }),
    ];
    const topics = [
      h.topics.presence('gw-z'), h.topics.sightings('gw-z'), h.topics.deviceClaim(addresses[2]), h.topics.campaignState('zzz'),
      h.topics.campaignControl(state.id), h.topics.campaignControl('nobody'), h.topics.execution(state.id, addresses[0]),
    ];
    for (const topic of topics) for (const payload of garbage) await rogue.publish(topic, payload);
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.ok(end.devices.every((d) => d.state === 'succeeded'));
    assert.ok(h.warnings.length >= topics.length * 6, `${h.warnings.length} warnings`);
    assert.ok(h.warnings.some((w) => /PAYLOAD_TOO_LARGE/.test(w)));
    // The plant schemas refuse these before the coordinator reads a field of them.
    assert.ok(h.warnings.some((w) => /execution message on .*PAYLOAD_INVALID: execution message: \$\.state must be one of/.test(w)), h.warnings.join('\n'));
    assert.ok(h.warnings.some((w) => /campaignState message on .*\/zzz\/state: PAYLOAD_INVALID/.test(w)), h.warnings.join('\n'));
  });

  it('publishes progress with counts by state, a finishing rate and an ETA, coalesced and periodic', async () => {
    const addresses = h.addDevices(6);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 1, script: succeedAfter(10_000) });
    const c = await h.coordinator({ progressEveryMs: 3000 });
    const emitted: CampaignProgress[] = [];
    c.on('progress', (p: CampaignProgress) => emitted.push(p));
    await h.run(10);
    const state = await c.startCampaign(h.spec({ maxConcurrent: 1 }));
    const published: Array<{ at: number; p: CampaignProgress }> = [];
    await h.broker.connect('dash').subscribe(h.topics.campaignProgress(state.id), (m) => published.push({ at: h.clock.now(), p: JSON.parse(m.payload.toString()) as CampaignProgress }));
    await h.run(25_500);
    const mid = emitted[emitted.length - 1];
    assert.deepEqual([mid.counts.succeeded, mid.counts['in-progress'] + mid.counts.assigned, mid.counts.pending, mid.total], [2, 1, 3, 6]);
    // 2 devices in 25.5 s: 4.7 per minute; 4 left: about 51 s.
    assert.ok(Math.abs(mid.devicesPerMinute - (2 * 60) / 25.5) < 0.1, String(mid.devicesPerMinute));
    assert.ok(mid.etaMs !== null && Math.abs(mid.etaMs - 4 / ((2 * 60) / 25.5) * 60_000) < 1000, String(mid.etaMs));
    assert.ok(emitted.filter((p) => p.counts.succeeded < 2).every((p) => p.etaMs === null), 'no ETA before two devices finished');
    await h.ended(c, state.id);
    await h.run(300);
    const last = published[published.length - 1].p;
    assert.equal(last.state, 'completed');
    assert.equal(last.counts.succeeded, 6);
    assert.equal(last.etaMs, 0);
    // An ended campaign keeps the rate it ran at, however long after it is asked (a status an hour later).
    assert.ok(last.devicesPerMinute > 0, String(last.devicesPerMinute));
    assert.equal(computeProgress(c.campaign(state.id) as CampaignState, h.clock.now() + 3_600_000).devicesPerMinute, last.devicesPerMinute);
    for (let i = 1; i < published.length; i++) assert.ok(published[i].at - published[i - 1].at >= 200 - 2, 'at most one progress per 200 ms');
    const gaps = published.slice(1).map((x, i) => x.at - published[i].at);
    assert.ok(Math.max(...gaps) <= 3000 + 1000 + 2, `periodic while running, largest gap ${Math.max(...gaps)} ms`);
    assert.ok(published.length >= 60_000 / 3000, `${published.length} progress messages`);
  });
});
