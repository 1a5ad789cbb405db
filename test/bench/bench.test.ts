import { strict as assert } from 'assert';
import { formatBenchTable, runBenchmark, BENCH_PROTOCOLS } from '../../lib/bench';
import { flashSeconds } from '../../lib/bench/physics';
import { skipWithoutVectors } from '../helpers/paths';

describe('bench (smoke: one scenario, one image, every protocol)', function () {
  this.timeout(20000);

  it('rejects an unknown scenario before running anything; a failed row shows its reason in the table', async () => {
    await assert.rejects(runBenchmark({ scenarios: ['no-such-link'], skipHost: true }), /BAD_PARAMETER|unknown link scenario "no-such-link"/);
    const table = formatBenchTable({
      rows: [{ scenario: 'mtu-23', image: 'x.bin', bytes: 10, protocol: 'v2', modeledSeconds: null, ceilingSeconds: 1, setupSeconds: null, error: 'PROTOCOL_MALFORMED: too short' }],
      host: { throughputMBps: 0, peakRssMB: 0 },
    });
    assert.match(table, /\| mtu-23 \| x\.bin \| 10 \| v2 \| \| failed \|/);
    assert.match(table, /failed: mtu-23 v2: PROTOCOL_MALFORMED: too short/);
  });

  it('produces the JSON shape of the issue with sane relations between the rows', async function () {
    skipWithoutVectors(this);
    const report = await runBenchmark({ scenarios: ['reference'], images: ['esp32-hello_world.bin'], skipHost: true, security: 'session-key', plant: false });
    assert.deepEqual(Object.keys(report).sort(), ['host', 'rows']);
    assert.deepEqual(Object.keys(report.host).sort(), ['peakRssMB', 'throughputMBps']);
    assert.equal(report.rows.length, BENCH_PROTOCOLS.length);
    for (const row of report.rows) {
      assert.deepEqual(Object.keys(row).sort(), ['bytes', 'ceilingSeconds', 'image', 'modeledSeconds', 'protocol', 'scenario', 'setupSeconds']);
      assert.equal(row.scenario, 'reference');
      assert.equal(row.image, 'esp32-hello_world.bin');
      assert.equal(row.bytes, 175856);
      // Nothing beats physics; the ceiling is at least the flash time of the image.
      assert.equal(typeof row.modeledSeconds, 'number', 'every protocol works on the reference link');
      assert.ok((row.modeledSeconds as number) > row.ceilingSeconds, JSON.stringify(row));
      assert.ok(row.ceilingSeconds >= flashSeconds(row.bytes) - 1e-3);
      // Setup (advertising wait, connect, discovery, Status, CHALLENGE) is counted apart from the transfer.
      assert.ok((row.setupSeconds as number) > 0.015 && (row.setupSeconds as number) < 2, JSON.stringify(row));
    }
    const by = Object.fromEntries(report.rows.map((r) => [r.protocol, { ...r, modeledSeconds: r.modeledSeconds as number }]));
    assert.deepEqual(Object.keys(by).sort(), ['seed', 'v2', 'v2-deflate']);
    // Write-with-response per packet is slower than a windowed stream; compression sends less.
    assert.ok(by.seed.modeledSeconds > 3 * by.v2.modeledSeconds);
    assert.ok(by['v2-deflate'].modeledSeconds < by.v2.modeledSeconds);
    assert.ok(by['v2-deflate'].ceilingSeconds < by.v2.ceilingSeconds);
    const table = formatBenchTable(report);
    assert.match(table, /^\| scenario \| image \| bytes \| protocol \|.*\| setup s \|/);
    assert.equal(table.split('\n').filter((l) => l.startsWith('| reference |')).length, 3);
  });

  it('runs only the plant rows with plantOnly and prints only their table and target', async () => {
    const report = await runBenchmark({ plantOnly: true, plant: { devices: 4, imageBytes: 64 * 1024, gateways: [1, 2], canary: false } });
    assert.deepEqual(report.rows, []);
    assert.equal(report.fleet, undefined);
    assert.deepEqual(
      report.plant?.rows.map((r) => [r.gateways, r.succeeded, r.error]),
      [
        [1, 4, undefined],
        [2, 4, undefined],
      ],
    );
    const table = formatBenchTable(report);
    assert.match(table, /^\| plant \| gateways \| devices \|/);
    assert.match(table, /- plant: 4 gateways vs 1 not measured/);
    assert.doesNotMatch(table, /host:|\| scenario \|/);
  });

  it('measures host throughput and peak RSS with concurrent sessions', async function () {
    skipWithoutVectors(this);
    const report = await runBenchmark({ scenarios: [], images: ['esp32-hello_world.bin'], concurrentSessions: 2, throughputRuns: 3, security: 'session-key', plant: false });
    assert.equal(report.rows.length, 0);
    assert.ok(report.host.throughputMBps > 0);
    assert.equal(report.host.throughputRuns?.length, 3);
    assert.ok(report.host.peakRssMB > 10 && report.host.peakRssMB < 4096);
    const rss = report.host.rss;
    assert.ok(rss && !('error' in rss), JSON.stringify(rss));
    assert.equal(rss.sessions, 2);
    assert.equal(rss.image, 'esp32-hello_world.bin');
    assert.ok(rss.peakRssMB >= rss.baselineRssMB);
    // Each device keeps the image it received in its flash.
    assert.ok(rss.devicesRetainedMB >= (2 * 175856) / (1024 * 1024) - 0.1, JSON.stringify(rss));
  });
});
