/** RolloutCoordinator: device selection, image loading and the refusals of startCampaign / control. */
import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { buildAppImage } from '../../lib/image';
import { realClock } from '../../lib/clock';
import { COORDINATOR_MAX_PAYLOAD_BYTES, RolloutCoordinator } from '../../lib/plant/coordinator/coordinator';
import { ImageCache } from '../../lib/plant/image-transfer';
import { connectMqttBus } from '../../lib/plant/mqtt-bus';
import { PlantTopics } from '../../lib/plant/topics';
import { codeOf } from '../helpers/errors';
import { startAedes } from './aedes-broker';
import { CoordHarness, harnessPerTest, IMAGE_FILE, seeAll } from './support/coord-harness';

describe('plant coordinator: selection and refusals', () => {
  let h: CoordHarness;
  harnessPerTest((next) => (h = next));

  async function plantWith(count: number): Promise<{ c: RolloutCoordinator; addresses: string[] }> {
    const addresses = h.addDevices(count);
    await h.addGateway('gw-a', seeAll(addresses), { slots: 4 });
    const c = await h.coordinator();
    await h.run(10);
    return { c, addresses };
  }

  it('selects by name prefix, skips devices already running the image, installs the rest once each', async () => {
    const { c, addresses } = await plantWith(5);
    h.plant.add('aa:00:00:00:09:01', 'line2-0');
    h.gateway('gw-a').see('aa:00:00:00:09:01', -50);
    h.plant.devices.get(addresses[4])!.runningSha = h.sha;
    await h.run(5000);
    const state = await c.startCampaign(h.spec());
    assert.match(state.id, /^c-20261201120\d{3}-[0-9a-f]{4}$/);
    assert.equal(state.devices.length, 5);
    assert.deepEqual(state.devices.filter((d) => d.state === 'skipped').map((d) => d.address), [addresses[4]]);
    assert.equal(state.image.chip, 'esp32c3');
    assert.equal(state.image.version, '2.0.0');
    assert.equal(state.image.project, 'line-sensor');
    const end = await h.ended(c, state.id);
    assert.equal(end.state, 'completed');
    assert.deepEqual(addresses.slice(0, 4).map((a) => h.plant.devices.get(a)!.installs), [1, 1, 1, 1]);
    assert.equal(h.plant.devices.get(addresses[4])!.installs, 0);
    assert.equal(h.plant.devices.get('aa:00:00:00:09:01')!.installs, 0, 'line2 is not selected');
    assert.equal(h.results.filter((r) => r.state === 'succeeded' && r.installed).length, 4);
    assert.equal(h.results.filter((r) => r.state === 'skipped').length, 1);
    assert.equal(h.gateway('gw-a').tasks.length, 4);
    // The retained record is the final one; claims are cleared.
    await h.run(300);
    const retained = JSON.parse(h.broker.retained(h.topics.campaignState(state.id))!.toString());
    assert.equal(retained.state, 'completed');
    for (const a of addresses) assert.equal(h.broker.retained(h.topics.deviceClaim(a)), undefined);
  });

  it('selects by regular expression, by version older than, and by an explicit list', async () => {
    const { c, addresses } = await plantWith(6);
    h.plant.devices.get(addresses[1])!.version = '2.1.0';
    h.plant.devices.get(addresses[2])!.version = null;
    await h.run(5000);
    const byRegex = await c.startCampaign(h.spec({ id: 'regex', target: { nameRegex: '^line1-[0-2]$' } }));
    assert.deepEqual(byRegex.devices.map((d) => d.name), ['line1-0', 'line1-1', 'line1-2']);
    await h.ended(c, 'regex');
    h.plant.devices.get(addresses[1])!.version = '2.1.0';
    for (const a of addresses.slice(3)) h.plant.devices.get(a)!.version = '1.0.0';
    await h.run(6000);
    const byVersion = await c.startCampaign(h.spec({ id: 'version', target: { namePrefix: 'line1-', versionOlderThan: '2.0.0' } }));
    assert.deepEqual(byVersion.devices.map((d) => d.name), ['line1-3', 'line1-4', 'line1-5']);
    await h.ended(c, 'version');
    await h.run(6000);
    await assert.rejects(c.startCampaign(h.spec({ id: 'list0', target: { devices: [addresses[0]] } })), { code: 'CAMPAIGN_NO_DEVICES' });
    h.plant.devices.get(addresses[0])!.runningSha = null;
    await h.run(6000);
    const byList = await c.startCampaign(h.spec({ id: 'list', target: { devices: [addresses[0].toUpperCase(), 'aa:00:00:00:07:07'] } }));
    assert.deepEqual(byList.devices.map((d) => [d.address, d.state]), [[addresses[0], 'assigned'], ['aa:00:00:00:07:07', 'failed']]);
    assert.equal(byList.devices[1].error?.code, 'DEVICE_NOT_SEEN');
    const end = await h.ended(c, 'list');
    assert.equal(end.state, 'completed', 'a listed device not seen fails alone; it does not count against the wave');
  });

  it('takes the image from base64 and the manifest from <file>.manifest', async () => {
    const { c } = await plantWith(2);
    fs.writeFileSync(path.join(h.dir, `${IMAGE_FILE}.manifest`), Buffer.from([1, 2, 3]));
    const fromFile = await c.startCampaign(h.spec({ id: 'file' }));
    assert.equal(fromFile.image.manifest, Buffer.from([1, 2, 3]).toString('base64'));
    await c.control('file', 'cancel');
    await h.ended(c, 'file');
    const fromBase64 = await c.startCampaign(h.spec({ id: 'b64', image: { sha256: h.sha.toUpperCase(), base64: h.image.toString('base64') } }));
    assert.equal(fromBase64.image.sha256, h.sha);
    assert.equal(fromBase64.image.manifest, undefined);
    assert.equal(fromBase64.image.size, h.image.length);
  });

  it('refuses a selector chip other than the image chip (CHIP_MISMATCH) and accepts the same chip', async () => {
    const { c } = await plantWith(2);
    assert.equal(await codeOf(c.startCampaign(h.spec({ target: { namePrefix: 'line1-', chip: 'esp32' } }))), 'CHIP_MISMATCH');
    const ok = await c.startCampaign(h.spec({ target: { namePrefix: 'line1-', chip: 'esp32c3' } }));
    assert.equal(ok.devices.length, 2);
  });

  it('refuses invalid specs with CAMPAIGN_INVALID naming the field', async () => {
    const { c } = await plantWith(2);
    const big = buildAppImage({ chip: 'esp32c3', version: '2.0.0', size: 3 * 1024 * 1024 + 512 * 1024 });
    const bigSha = createHash('sha256').update(big).digest('hex');
    const cases: Array<[string, object]> = [
      ['nameRegex', { target: { nameRegex: '(' } }],
      ['waves', { waves: [] }],
      ['exactly one', { waves: [{ count: 1, percent: 50 }] }],
      ['percent', { waves: [{ percent: 0 }] }],
      ['maxFailurePercent', { waves: [{ count: 1, maxFailurePercent: 120 }] }],
      ['versionOlderThan', { target: { versionOlderThan: 'latest' } }],
      ['campaign id', { id: 'a/b' }],
      ['target must name', { target: { chip: 'esp32c3' } }],
      ['sha256', { image: { sha256: 'abc', file: IMAGE_FILE } }],
      ['maxConcurrent', { maxConcurrent: 0 }],
      ['base64', { image: { sha256: h.sha, base64: 'not base64!' } }],
      ['base64 image is part of it', { image: { sha256: bigSha, base64: big.toString('base64') } }],
    ];
    for (const [field, override] of cases) {
      const err = await c.startCampaign(h.spec(override)).then(
        () => null,
        (e: { code: string; message: string }) => e,
      );
      assert.ok(err, `${field}: refused`);
      assert.equal(err.code, 'CAMPAIGN_INVALID', `${field}: ${err.message}`);
      assert.ok(err.message.includes(field), `${JSON.stringify(err.message)} names ${field}`);
    }
    await c.startCampaign(h.spec({ id: 'one' }));
    assert.equal(await codeOf(c.startCampaign(h.spec({ id: 'one' }))), 'CAMPAIGN_INVALID', 'an id in use');
  });

  it('refuses an image it cannot find or that is not the named one', async () => {
    const { c } = await plantWith(2);
    assert.equal(await codeOf(c.startCampaign(h.spec({ image: { sha256: h.sha, file: 'missing.bin' } }))), 'IMAGE_UNKNOWN');
    assert.equal(await codeOf(c.startCampaign(h.spec({ image: { sha256: h.sha, file: `../${path.basename(h.dir)}/${IMAGE_FILE}` } }))), 'IMAGE_UNKNOWN');
    assert.equal(await codeOf(c.startCampaign(h.spec({ image: { sha256: h.sha, file: '..' } }))), 'IMAGE_UNKNOWN');
    assert.equal(await codeOf(c.startCampaign(h.spec({ image: { sha256: h.sha } }))), 'IMAGE_UNKNOWN');
    assert.equal(await codeOf(c.startCampaign(h.spec({ image: { sha256: 'ab'.repeat(32), file: IMAGE_FILE } }))), 'IMAGE_HASH_MISMATCH');
    const noDir = await h.coordinator({ coordinatorId: 'coord-2', images: {} });
    assert.equal(await codeOf(noDir.startCampaign(h.spec())), 'IMAGE_UNKNOWN');
    assert.equal(h.gateway('gw-a').tasks.length, 0);
  });

  it('refuses a campaign with no device to update (CAMPAIGN_NO_DEVICES)', async () => {
    const { c, addresses } = await plantWith(2);
    assert.equal(await codeOf(c.startCampaign(h.spec({ target: { namePrefix: 'other-' } }))), 'CAMPAIGN_NO_DEVICES');
    for (const a of addresses) h.plant.devices.get(a)!.runningSha = h.sha;
    await h.run(5000);
    const err = await c.startCampaign(h.spec()).catch((e: Error) => e);
    assert.equal((err as { code?: string }).code, 'CAMPAIGN_NO_DEVICES');
    assert.match((err as Error).message, /2 matching ones already run the image/);
  });

  it('ignores sightings older than the freshness window', async () => {
    const { c } = await plantWith(2);
    h.gateway('gw-a').quiet();
    await h.run(61_000);
    assert.equal(await codeOf(c.startCampaign(h.spec())), 'CAMPAIGN_NO_DEVICES');
  });

  it('answers control of an unknown campaign with CAMPAIGN_UNKNOWN and of an ended one with CAMPAIGN_ENDED', async () => {
    const { c } = await plantWith(1);
    assert.equal(await codeOf(c.control('nope', 'pause')), 'CAMPAIGN_UNKNOWN');
    const state = await c.startCampaign(h.spec());
    await h.ended(c, state.id);
    assert.equal(await codeOf(c.control(state.id, 'resume')), 'CAMPAIGN_ENDED');
    assert.equal(c.campaign(state.id)?.state, 'completed');
    assert.equal(c.campaigns().length, 1);
  });

  it('refuses campaigns before start and after stop (COORDINATOR_NOT_RUNNING)', async () => {
    const c = new RolloutCoordinator({ bus: h.broker.connect('x'), topics: h.topics, clock: h.clock, coordinatorId: 'x', images: { firmwareDir: h.dir } });
    assert.equal(await codeOf(c.startCampaign(h.spec())), 'COORDINATOR_NOT_RUNNING');
    await c.start();
    await c.stop();
    assert.equal(await codeOf(c.startCampaign(h.spec())), 'COORDINATOR_NOT_RUNNING');
  });

  it('gives its image server a lookup that answers with the bytes of its campaigns\' images only', async () => {
    const addresses = h.addDevices(1);
    await h.addGateway('gw-a', seeAll(addresses));
    let lookup: ((sha: string) => Promise<Buffer | null>) | null = null;
    let stopped = false;
    const c = await h.coordinator({
      imageServer: (_bus, _topics, l) => {
        lookup = l;
        return { start: () => Promise.resolve(), stop: () => (stopped = true) };
      },
    });
    await h.run(10);
    assert.ok(lookup, 'the server was built on start');
    const find = lookup as (sha: string) => Promise<Buffer | null>;
    assert.equal(await find(h.sha), null, 'no campaign yet');
    await c.startCampaign(h.spec());
    assert.ok((await find(h.sha))?.equals(h.image));
    assert.equal(await find('00'.repeat(32)), null);
    await c.stop();
    assert.ok(stopped);
  });

  it('serves its campaigns\' images over the bus by default (the plant\'s ImageServer): a gateway\'s ImageCache gets the bytes', async () => {
    const { c } = await plantWith(1);
    await c.startCampaign(h.spec());
    const cache = new ImageCache(h.broker.connect('gw-fetch'), h.topics, 'gw-fetch', h.clock, { timeoutMs: 5000 });
    const image = await h.clock.runUntil(cache.get(h.sha, h.image.length), 60_000);
    assert.ok(image.equals(h.image));
    assert.equal(await codeOf(h.clock.runUntil(cache.get('00'.repeat(32), 100), 60_000)), 'IMAGE_UNAVAILABLE', 'an image of no campaign is not served');
  });

  it('takes an empty retained campaign state as a cleared record, not as a malformed message', async () => {
    const { c } = await plantWith(1);
    const other = h.broker.connect('other');
    await h.clock.runUntil(other.publish(h.topics.campaignState('gone'), '', { retain: true }));
    await h.clock.runUntil(other.publish(h.topics.campaignState('garbage'), 'x', { retain: false }));
    await h.run(100);
    assert.deepEqual(h.warnings.map((w) => w.split(':')[0]), ['dropped a campaignState message on ble-ota/plant/v1/campaigns/garbage/state'], h.warnings.join('\n'));
    assert.equal(c.campaigns().length, 0);
  });

  it('warns, naming the option, when its MQTT bus drops a campaign record for its size', async function () {
    this.timeout(20000);
    const broker = await startAedes();
    const topics = new PlantTopics();
    const buses = [await connectMqttBus({ url: broker.url, clientId: 'small' }), await connectMqttBus({ url: broker.url, clientId: 'big', maxPayloadBytes: COORDINATOR_MAX_PAYLOAD_BYTES }), await connectMqttBus({ url: broker.url, clientId: 'writer' })];
    const [small, big, writer] = buses;
    const warnings = { small: [] as string[], big: [] as string[] };
    const coordinators = [
      new RolloutCoordinator({ bus: small, topics, clock: realClock, coordinatorId: 'small', images: {} }).on('warning', (w: string) => warnings.small.push(w)),
      new RolloutCoordinator({ bus: big, topics, clock: realClock, coordinatorId: 'big', images: {} }).on('warning', (w: string) => warnings.big.push(w)),
    ];
    try {
      for (const c of coordinators) await c.start();
      // Larger than mqtt-bus.ts's 1 MiB default, within a campaign record's 4 MiB.
      await writer.publish(topics.campaignState('huge'), Buffer.alloc(2 * 1024 * 1024, 0x20), { retain: true });
      for (let i = 0; i < 100 && (warnings.small.length === 0 || warnings.big.length === 0); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(warnings.small.length, 1, warnings.small.join('\n'));
      assert.match(warnings.small[0], /PAYLOAD_TOO_LARGE.*campaigns\/huge\/state.*maxPayloadBytes 4194304/);
      assert.equal(warnings.big.length, 1, warnings.big.join('\n'));
      assert.match(warnings.big[0], /campaignState message on .*huge\/state: PAYLOAD_INVALID/, 'the larger bus reads it (and finds it is no record)');
    } finally {
      for (const c of coordinators) await c.stop();
      await writer.publish(topics.campaignState('huge'), '', { retain: true }).catch(() => undefined);
      for (const b of buses) await b.close();
      await broker.close();
    }
  });

  it('records the spec with its defaults and without unknown fields', async () => {
    const { c } = await plantWith(1);
    const spec = { ...h.spec({ id: 'clean', waves: [{ percent: 100, colour: 'red' } as never] }), extra: true, target: { namePrefix: 'line1-', other: 1 } as never };
    const state = await c.startCampaign(spec);
    assert.deepEqual(state.spec, {
      id: 'clean', name: 'clean', image: { file: IMAGE_FILE, sha256: h.sha }, target: { namePrefix: 'line1-' }, waves: [{ percent: 100 }],
      deviceTimeoutMs: 300_000, maxConcurrent: 20, encoding: 'auto', confirm: true, maxAttempts: 3, maxReassignments: 2,
    });
  });
});
