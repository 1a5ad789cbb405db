/**
 * Several connections on one radio (LINK-MODEL.md section 3): every connection gets its events, the
 * sum never beats one link's ceiling, and control traffic (discovery, LL_TERMINATE) of one link gets
 * through while the others stream.
 */
import { strict as assert } from 'assert';
import { LINK_SCENARIOS, bestPayloadRate } from '../../lib/sim/link-model';
import { LinkLayer, type ExchangeTrace, type LinkConnection } from '../../lib/sim/radio/link-layer';
import { createSimRadio, HCI_REASON } from '../../lib/sim/radio';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { createNobleCentral } from '../../lib/ble/noble-central';
import type { BleConnection } from '../../lib/ble/central';
import { TinyPeripheral, TINY_SERVICE, CHAR_SINK } from './tiny-peripheral';
import { createHciNoble } from '../../lib/sim/hci/noble-hci-loader';


/** Keeps `depth` full-size writes queued on a connection until `total` have been delivered. */
function stream(link: LinkLayer, conn: LinkConnection, total: number, depth: number, onDone: () => void): void {
  let sent = 0;
  let delivered = 0;
  const pump = () => {
    while (sent < total && sent - delivered < depth) {
      sent++;
      link.send(conn, 'toPeripheral', 247, () => {
        delivered++;
        if (delivered === total) onDone();
        else pump();
      });
    }
  };
  pump();
}

describe('sim/radio: eight connections share one radio', () => {
  it('every connection gets its share of events; the sum stays under one link’s ceiling', async () => {
    const clock = new VirtualClock();
    const link = new LinkLayer(clock, LINK_SCENARIOS.reference);
    const trace: ExchangeTrace[] = [];
    link.onExchange = (e) => trace.push(e);
    const conns = Array.from({ length: 8 }, (_v, i) => link.open(`c${i}`, 0));
    const finishedAt: number[] = [];
    for (const c of conns) stream(link, c, 400, 16, () => finishedAt.push(clock.now()));
    await clock.idle();
    assert.equal(finishedAt.length, 8, 'every connection delivered all its writes');
    const sorted = [...trace].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].start >= sorted[i - 1].end - 1e-9, `overlap at ${sorted[i].start}`);
    // Anchors 1.875 ms apart, exchanges 2.468 ms: a link loses anchors to its neighbours, but a link that
    // missed more anchors in a row wins the next conflict, so no link waits more than three intervals.
    const end = Math.min(...finishedAt);
    for (const c of conns) {
      const starts = trace.filter((e) => e.connection === c.id && e.index === 0 && e.start <= end).map((e) => e.start);
      let worst = starts[0] - c.firstAnchor;
      for (let i = 1; i < starts.length; i++) worst = Math.max(worst, starts[i] - starts[i - 1]);
      assert.ok(worst <= 3 * 15 + 1e-6, `${c.id}: ${worst.toFixed(3)} ms between two events`);
      assert.ok(c.stats.connectionEvents > 0);
    }
    const span = (Math.max(...finishedAt) - Math.min(...conns.map((c) => c.firstAnchor))) / 1000;
    const aggregate = (8 * 400 * 244) / span;
    assert.ok(aggregate <= bestPayloadRate(LINK_SCENARIOS.reference) * 1.0001, `aggregate ${aggregate} B/s`);
    assert.ok(aggregate > 0.5 * bestPayloadRate(LINK_SCENARIOS.reference), `the radio is not left idle: ${aggregate} B/s`);
    const perLink = finishedAt.map((t, i) => t - conns[i].firstAnchor);
    assert.ok(Math.max(...perLink) < 1.5 * Math.min(...perLink), `fair shares: ${perLink.map((x) => x.toFixed(0)).join(', ')} ms`);
  });

  it('through noble: seven links stream while the eighth connects; its requests wait in noble\'s one ACL queue', async function () {
    this.timeout(15000);
    const clock = new VirtualClock();
    const radio = createSimRadio({ clock, link: 'reference' });
    const devices = Array.from({ length: 8 }, (_v, i) => new TinyPeripheral(`aa:bb:cc:00:01:0${i + 1}`, `tiny-${i + 1}`));
    for (const d of devices) radio.addDevice(d);
    const central = createNobleCentral(createHciNoble(radio.controller), { clock });
    await central.waitReady(1000);
    const seen = new Set<string>();
    await new Promise<void>((resolve, reject) => {
      central
        .startScan({}, (d) => {
          seen.add(d.address);
          if (seen.size === devices.length) resolve();
        })
        .then((scan) => clock.setTimer(() => void scan.stop(), 500), reject);
    });
    const links: BleConnection[] = [];
    for (const d of devices.slice(0, 7)) links.push(await central.connect(d.address, { timeoutMs: 5000 }));
    // noble reports a write without response written once the controller has it: 600 writes per link
    // are queued at once and leave at the link's pace (about 8 s of air time on a shared radio).
    const streams = links.map(async (c) => {
      await c.discover();
      for (let i = 0; i < 600; i++) await c.write(TINY_SERVICE, CHAR_SINK, Buffer.alloc(244, i), true);
    });
    await Promise.all(streams);
    const last = devices[7];
    const t0 = clock.now();
    const conn = await central.connect(last.address, { timeoutMs: 5000 });
    const services = await conn.discover();
    assert.ok(services.some((s) => s.uuid === TINY_SERVICE));
    const discoveredAfter = clock.now() - t0;
    const reason = new Promise<string>((resolve) => conn.once('disconnect', (r: unknown) => resolve(String(r))));
    const t1 = clock.now();
    await conn.disconnect();
    assert.equal(await reason, String(HCI_REASON.localHostTerminated));
    const disconnectedAfter = clock.now() - t1;
    const progress = devices.slice(0, 7).map((d) => d.writes.length);
    assert.equal(last.disconnects, 1, 'the device got the LL_TERMINATE');
    // noble keeps ONE ACL queue for all links and sends from it while the controller has buffers
    // (hci.js:713-735): the new link's MTU request and discovery wait behind the 4200 queued writes.
    for (const n of progress) assert.equal(n, 600, `the writes queued before went out first: ${progress.join(', ')}`);
    assert.ok(discoveredAfter > 5000 && discoveredAfter < 12000, `connect + discovery took ${discoveredAfter} ms behind the queued writes`);
    assert.ok(disconnectedAfter < 100, `the disconnect took ${disconnectedAfter} ms`);
    assert.equal(radio.controller.counters.flowControlViolations, 0, 'eight links never overran the controller\'s buffers');
    assert.ok(radio.controller.counters.maxOutstanding <= 8);
    const reconnect = await central.connect(last.address, { timeoutMs: 5000 });
    assert.ok(reconnect.connected, 'a new connection to the same device works');
    await central.close();
    clock.stop();
  });
});
