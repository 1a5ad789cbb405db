import { strict as assert } from 'assert';
import { LINK_SCENARIOS, LINK_SCENARIO_NAMES, bestPayloadRate, ceilingSeconds, exchangeUs, llFragments, pduAirtimeUs, resolveLinkProfile, type LinkProfile, payloadRateFor } from '../../lib/sim/link-model';
import { LinkLayer, type ExchangeTrace } from '../../lib/sim/radio/link-layer';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { isOtaError } from '../../lib/errors';

const close = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

describe('sim/link-model: PDU physics (DESIGN.md section 6)', () => {
  it('times PDUs on 1M and 2M PHY, with and without MIC', () => {
    assert.equal(pduAirtimeUs(251, '1M'), 2088); // (10 + 251) x 8
    assert.equal(pduAirtimeUs(0, '1M'), 80); // empty PDU
    assert.equal(pduAirtimeUs(251, '2M'), 1048); // (11 + 251) x 4
    assert.equal(pduAirtimeUs(0, '2M'), 44);
    assert.equal(pduAirtimeUs(27, '1M', true), (10 + 27 + 4) * 8);
    assert.equal(pduAirtimeUs(0, '1M', true), 80, 'an empty PDU carries no MIC');
  });

  it('a full-size write-without-response exchange takes 2468 us at 1M', () => {
    assert.equal(exchangeUs(251, 0, LINK_SCENARIOS.reference), 2088 + 150 + 80 + 150);
    assert.equal(exchangeUs(251, 0, LINK_SCENARIOS['2m-phy']), 1048 + 150 + 44 + 150);
  });

  it('fragments ATT PDUs (+4 B L2CAP) into LL PDUs of the data length', () => {
    assert.deepEqual(llFragments(247, 251), [251]); // MTU 247 write: 244 + 3 + 4
    assert.deepEqual(llFragments(256, 251), [251, 9]); // MTU 256 write: 253 + 3 + 4 = 260
    assert.deepEqual(llFragments(247, 27), [27, 27, 27, 27, 27, 27, 27, 27, 27, 8]);
    assert.deepEqual(llFragments(23, 27), [27]); // MTU 23 write: 20 + 3 + 4
    assert.deepEqual(llFragments(1, 251), [5]); // write response
  });

  it('best payload rates follow from exchanges per 15 ms event', () => {
    // reference: floor(15000 / 2468) = 6 writes of 244 B per event
    close(bestPayloadRate(LINK_SCENARIOS.reference), (6 * 244) / 0.015, 1, 'reference');
    // 2M: floor(15000 / 1392) = 10 per event (175 KB/s while streaming, 163 KB/s with event gaps)
    close(bestPayloadRate(LINK_SCENARIOS['2m-phy']), (10 * 244) / 0.015, 1, '2m-phy');
    // capped-4: 4 writes per event
    close(bestPayloadRate(LINK_SCENARIOS['capped-4']), (4 * 244) / 0.015, 1, 'capped-4');
    // seed-mac: 253 B value = 251 + 9 B PDUs: 2468 + (152 + 380) = 3000 us -> 5 writes per event
    close(payloadRateFor(LINK_SCENARIOS['seed-mac'], 253), (5 * 253) / 0.015, 1, 'seed-mac');
    // ... so the best writes at MTU 256 are not the largest: 244 B values fill one 251 B PDU each.
    close(bestPayloadRate(LINK_SCENARIOS['seed-mac']), payloadRateFor(LINK_SCENARIOS['seed-mac'], 244), 1, 'seed-mac best');
    assert.ok(bestPayloadRate(LINK_SCENARIOS['seed-mac']) > payloadRateFor(LINK_SCENARIOS['seed-mac'], 253));
    // mtu-23: 27 B PDUs of 676 us, 22 per event, 20 B each
    close(bestPayloadRate(LINK_SCENARIOS['mtu-23']), (22 * 20) / 0.015, 1, 'mtu-23');
    // no-dle: 27 B PDUs (676 us), 22 per event; a 244 B write takes 10 PDUs -> 2.2 writes per event
    close(payloadRateFor(LINK_SCENARIOS['no-dle'], 244), (2.2 * 244) / 0.015, 1, 'no-dle');
    // the best write there is 236 B: exactly 9 whole PDUs -> 22 / 9 writes per event
    close(bestPayloadRate(LINK_SCENARIOS['no-dle']), ((22 / 9) * 236) / 0.015, 1, 'no-dle best');
    assert.equal(bestPayloadRate(LINK_SCENARIOS.zero), Number.POSITIVE_INFINITY);
  });

  it('ceilingSeconds is value bytes over the best rate; zero link has no ceiling', () => {
    close(ceilingSeconds(1_500_000, LINK_SCENARIOS.reference), 1_500_000 / 97600, 1e-6, 'reference 1.5 MB');
    assert.equal(ceilingSeconds(1_500_000, LINK_SCENARIOS.zero), 0);
    // a device with a small MTU limits the link
    close(ceilingSeconds(20 * 22 * 1000, LINK_SCENARIOS.reference, 23), 15, 1e-6, 'device MTU 23');
  });

  it('knows every benchmark scenario and rejects unknown or impossible ones', () => {
    for (const name of LINK_SCENARIO_NAMES) assert.equal(resolveLinkProfile(name).name, name);
    assert.throws(() => resolveLinkProfile('fast'), (e: unknown) => isOtaError(e) && e.code === 'UNKNOWN_LINK_SCENARIO');
    const bad: LinkProfile = { ...LINK_SCENARIOS.reference, name: 'odd', connectionIntervalMs: 16 };
    assert.throws(() => resolveLinkProfile(bad), (e: unknown) => isOtaError(e) && e.code === 'LINK_PROFILE_INVALID' && /1.25 ms steps/.test(e.message));
    assert.throws(() => resolveLinkProfile({ ...bad, connectionIntervalMs: 15, dataLength: 300 }), /data length/);
  });
});

/** Runs a link layer with one or more connections and records every exchange. */
function harness(profile: LinkProfile) {
  const clock = new VirtualClock();
  const link = new LinkLayer(clock, profile);
  const trace: ExchangeTrace[] = [];
  link.onExchange = (e) => trace.push(e);
  return { clock, link, trace };
}

describe('sim/link-model: connection events on the clock', () => {
  it('streams 60 full writes at 6 per 15 ms event, each 2468 us after the previous', async () => {
    const { clock, link, trace } = harness(LINK_SCENARIOS.reference);
    const conn = link.open('a', 0);
    const delivered: number[] = [];
    for (let i = 0; i < 60; i++) link.send(conn, 'toPeripheral', 247, () => delivered.push(clock.now()));
    await clock.idle();
    assert.equal(delivered.length, 60);
    for (let i = 0; i < 60; i++) {
      const event = Math.floor(i / 6);
      close(delivered[i], conn.firstAnchor + event * 15 + ((i % 6) + 1) * 2.468 - 0.15, 1e-6, `write ${i}`);
    }
    assert.equal(conn.stats.connectionEvents, 10);
    assert.equal(conn.stats.toPeripheral.dataPdus, 60);
    assert.equal(conn.stats.toPeripheral.llPayloadBytes, 60 * 251);
    assert.equal(trace.length, 60);
  });

  it('a lossy link (real-gateway, 1 % per PDU) delivers everything once, in order, at about its lossy ceiling', async () => {
    const profile = LINK_SCENARIOS['real-gateway'];
    const { clock, link } = harness(profile);
    const conn = link.open('a', 0);
    const order: number[] = [];
    const n = 3000;
    for (let i = 0; i < n; i++) link.send(conn, 'toPeripheral', 256, () => order.push(i));
    await clock.idle();
    assert.deepEqual(order, Array.from({ length: n }, (_, i) => i));
    assert.ok(conn.stats.toPeripheral.lost > 0 && conn.stats.toPeripheral.retransmissions > 0);
    const rate = (n * 253) / ((clock.now() - conn.firstAnchor) / 1000);
    const ceiling = payloadRateFor(profile, 253);
    assert.ok(ceiling < payloadRateFor(LINK_SCENARIOS['seed-mac'], 253), 'loss lowers the ceiling');
    assert.ok(Math.abs(rate - ceiling) / ceiling < 0.05, `stream ${rate.toFixed(0)} B/s vs lossy ceiling ${ceiling.toFixed(0)} B/s`);
  });

  it('2M PHY fits 10 exchanges per event; no-dle sends 10 PDUs per 244 B write; capped-4 stops at 4', async () => {
    const cases: Array<[LinkProfile, number]> = [
      [LINK_SCENARIOS['2m-phy'], 10],
      [LINK_SCENARIOS['capped-4'], 4],
    ];
    for (const [profile, perEvent] of cases) {
      const { clock, link } = harness(profile);
      const conn = link.open('a', 0);
      for (let i = 0; i < 40; i++) link.send(conn, 'toPeripheral', 247, () => undefined);
      await clock.idle();
      assert.equal(conn.stats.connectionEvents, Math.ceil(40 / perEvent), profile.name);
    }
    const { clock, link, trace } = harness(LINK_SCENARIOS['no-dle']);
    const conn = link.open('a', 0);
    let at = 0;
    link.send(conn, 'toPeripheral', 247, () => (at = clock.now()));
    await clock.idle();
    assert.deepEqual(trace.map((e) => e.toPeripheral), [27, 27, 27, 27, 27, 27, 27, 27, 27, 8]);
    close(at - conn.firstAnchor, (9 * 676 + (144 + 380) - 150) / 1000, 1e-6, 'no-dle write');
  });

  it('answers a write with response in the next event; the next request follows in the event after', async () => {
    const { clock, link } = harness(LINK_SCENARIOS['seed-mac']);
    const conn = link.open('a', 0);
    const requestsAt: number[] = [];
    const responsesAt: number[] = [];
    const writeOnce = (n: number) => {
      link.send(conn, 'toPeripheral', 256, () => {
        requestsAt.push(clock.now());
        // the device answers at once; its response still waits for the next connection event
        link.send(conn, 'toCentral', 1, () => {
          responsesAt.push(clock.now());
          if (n > 1) writeOnce(n - 1);
        });
      });
    };
    writeOnce(3);
    await clock.idle();
    const a = conn.firstAnchor;
    // request: 251 B + 9 B PDUs = 2468 + 532 - 150 us (in when the peripheral's empty PDU ends);
    // response (5 B) after an empty central PDU: 80 + 150 + 120 us into the next event
    assert.deepEqual(
      requestsAt.map((t) => +(t - a).toFixed(6)),
      [2.85, 32.85, 62.85],
    );
    assert.deepEqual(
      responsesAt.map((t) => +(t - a).toFixed(6)),
      [15.35, 45.35, 75.35],
    );
  });

  it('several connections share the radio without overlapping events', async () => {
    const { clock, link, trace } = harness(LINK_SCENARIOS.reference);
    const conns = ['a', 'b', 'c'].map((id) => link.open(id, 0));
    const phases = conns.map((c) => c.firstAnchor % 15).sort((x, y) => x - y);
    assert.deepEqual(phases, [0, 3.75, 7.5], 'each new anchor in the middle of the largest gap');
    for (const c of conns) for (let i = 0; i < 120; i++) link.send(c, 'toPeripheral', 247, () => undefined);
    await clock.idle();
    const sorted = [...trace].sort((x, y) => x.start - y.start);
    for (let i = 1; i < sorted.length; i++) {
      assert.ok(sorted[i].start >= sorted[i - 1].end - 1e-9, `exchange at ${sorted[i].start} overlaps one ending ${sorted[i - 1].end}`);
    }
    for (const c of conns) assert.equal(c.stats.toPeripheral.dataPdus, 120);
    // One radio: at least the serialized air time of all 360 exchanges; every link still gets at least
    // one exchange per interval.
    const span = Math.max(...trace.map((e) => e.end)) - Math.min(...trace.map((e) => e.start));
    assert.ok(span >= 360 * 2.468 && span <= 120 * 15, `span ${span}`);
    assert.ok(span > 120 * 2.468 * 2, 'sharing costs each link throughput');
  });

  it('notifications from the peripheral take its slots inside the central’s event', async () => {
    const { clock, link, trace } = harness(LINK_SCENARIOS.reference);
    const conn = link.open('a', 0);
    for (let i = 0; i < 3; i++) link.send(conn, 'toPeripheral', 247, () => undefined);
    link.send(conn, 'toCentral', 3 + 8, () => undefined);
    await clock.idle();
    assert.deepEqual(
      trace.map((e) => [e.toPeripheral, e.toCentral]),
      [
        [251, 15],
        [251, 0],
        [251, 0],
      ],
    );
    close(trace[0].end - trace[0].start, (2088 + 150 + (10 + 15) * 8 + 150) / 1000, 1e-9, 'exchange with notification');
  });

  it('the zero link delivers without any delay', async () => {
    const { clock, link } = harness(LINK_SCENARIOS.zero);
    const conn = link.open('a', 5);
    let at = -1;
    for (let i = 0; i < 100; i++) link.send(conn, 'toPeripheral', 247, () => (at = clock.now()));
    await clock.idle();
    assert.equal(at, 0);
  });
});
