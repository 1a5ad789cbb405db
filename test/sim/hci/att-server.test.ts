/**
 * The ATT server byte for byte against a small VirtualPeripheral: every request NimBLE's
 * ble_att_svr.c answers, its error responses, the MTU rules, the prepare queue, notifications, the
 * LE signaling and SMP channels, and the host task that answers only when an access callback returns.
 *
 * Handle table of StubPeripheral (NimBLE layout, GAP and GATT services first):
 *  1-5 GAP (name 3, appearance 5), 6-13 GATT (service changed 8 + CCCD 9, 11, 13),
 *  14 SVC: RW decl 15 / value 16 / CCCD 17, SINK 18/19, LONG 20/21, STRICT 22/23; 24 DIS: 25/26 (2a29).
 */
import { strict as assert } from 'assert';
import { AttHost } from '../../../lib/sim/hci/att-host';
import { Central, CHAR_LONG, CHAR_RW, CHAR_SINK, CHAR_STRICT, ManualClock, StubPeripheral, SVC, deferred, h, le, settle } from './att-server-harness';

function setup(maxMtu = 517, extra: Partial<ConstructorParameters<typeof Central>[0]> = {}) {
  const clock = new ManualClock();
  const device = new StubPeripheral(maxMtu);
  const central = new Central({ device, connectionId: 7, clock, ...extra });
  return { clock, device, central };
}

const RW = le(CHAR_RW);
const SINK = le(CHAR_SINK);
const LONG = le(CHAR_LONG);
const STRICT = le(CHAR_STRICT);

describe('ATT server: handle table and discovery', () => {
  it('Read By Group Type walks the services: one UUID size per response, the last group ends at 0xFFFF', () => {
    const { central } = setup();
    assert.equal(central.ask('10 0100 ffff 0028'), h('11 06 0100 0500 0018 0600 0d00 0118'));
    assert.equal(central.ask('10 0e00 ffff 0028'), h(`11 14 0e00 1700 ${le(SVC)}`));
    assert.equal(central.ask('10 1800 ffff 0028'), h('11 06 1800 ffff 0a18'));
    assert.equal(central.ask('10 1b00 ffff 0028'), h('01 10 1b00 0a'));
    assert.equal(central.server.counters.attErrors, 0, 'the end of a discovery is not an error');
  });

  it('Read By Group Type: a range that ends inside the table gives the group its real end; bad requests', () => {
    const { central } = setup();
    assert.equal(central.ask('10 1800 1900 0028'), h('11 06 1800 1900 0a18'));
    assert.equal(central.ask('10 0000 ffff 0028'), h('01 10 0000 01'), 'start handle 0');
    assert.equal(central.ask('10 0500 0400 0028'), h('01 10 0500 01'), 'start > end');
    assert.equal(central.ask('10 0100 ffff 0328'), h('01 10 0100 10'), 'not a grouping type');
    central.att('10 0100 ffff 00'); // malformed length: NimBLE does not answer
    assert.deepEqual(central.take(), []);
  });

  it('Read By Type 0x2803 lists characteristic declarations (properties, value handle, UUID)', () => {
    const { central } = setup();
    assert.equal(central.ask('08 0e00 1700 0328'), h(`09 15 0f00 1a 1000 ${RW}`), 'at MTU 23 one 128-bit declaration fills the response');
    central.ask('02 0001');
    assert.equal(
      central.ask('08 0e00 1700 0328'),
      h(`09 15 0f00 1a1000${RW} 1200 041300${SINK} 1400 021500${LONG} 1600 081700${STRICT}`),
    );
    assert.equal(central.ask('08 1800 1a00 0328'), h('09 07 1900 021a00 292a'));
    assert.equal(central.ask('08 1b00 ffff 0328'), h('01 08 1b00 0a'));
  });

  it('Read By Type 0x2902 finds the CCCD the way noble looks for it; none: Attribute Not Found', () => {
    const { central } = setup();
    assert.equal(central.ask('08 0f00 1100 0229'), h('09 04 1100 0000'));
    assert.equal(central.ask('08 1200 1300 0229'), h('01 08 1200 0a'));
  });

  it('Read By Type on a characteristic value reads it through the device (and its permission)', () => {
    const { central, device } = setup();
    assert.equal(central.ask('08 1800 1a00 292a'), h(`09 0c 1a00 ${Buffer.from('Company 42').toString('hex')}`));
    assert.deepEqual(device.reads, ['2a29']);
    assert.equal(central.ask(`08 1200 1300 ${SINK}`), h('01 08 1300 02'), 'write-only value: Read Not Permitted');
    assert.equal(central.ask(`08 1400 1500 ${LONG}`), h('01 08 1500 0e'), 'a value over 19 bytes: Unlikely Error');
  });

  it('Find Information: one UUID format per response, the MTU limits it', () => {
    const { central } = setup();
    assert.equal(central.ask('04 1000 1100'), h(`05 02 1000 ${RW}`));
    assert.equal(central.ask('04 1100 1100'), h('05 01 1100 0229'));
    assert.equal(central.ask('04 1800 1a00'), h('05 01 1800 0028 1900 0328 1a00 292a'));
    assert.equal(central.ask('04 0100 ffff'), h('05 01 0100 0028 0200 0328 0300 002a 0400 0328 0500 012a'));
    assert.equal(central.ask('04 0000 0500'), h('01 04 0000 01'));
    assert.equal(central.ask('04 0600 0500'), h('01 04 0600 01'));
    assert.equal(central.ask('04 1b00 ffff'), h('01 04 1b00 0a'));
  });

  it('Find By Type Value finds a service by UUID; the group ends at its last handle', () => {
    const { central } = setup();
    assert.equal(central.ask('06 0100 ffff 0028 0a18'), h('07 1800 1a00'));
    assert.equal(central.ask(`06 0100 ffff 0028 ${le(SVC)}`), h('07 0e00 1700'));
    assert.equal(central.ask('06 0100 ffff 0028 ffff'), h('01 06 0100 0a'));
    assert.equal(central.ask('06 0000 ffff 0028 0a18'), h('01 06 0000 01'));
  });

  it('the GAP service serves the device name and appearance, the GATT service its features', () => {
    const { central } = setup();
    assert.equal(central.ask('0a 0300'), h(`0b ${Buffer.from('tiny-1').toString('hex')}`));
    assert.equal(central.ask('0a 0500'), h('0b 0000'));
    assert.equal(central.ask('0a 0800'), h('01 0a 0800 02'), 'Service Changed only indicates');
    assert.equal(central.ask('0a 0b00'), h('0b 00'));
    assert.equal(central.ask('12 0d00 07'), h('13'));
    assert.equal(central.ask('12 0d00 01'), h('01 12 0d00 13'), 'client features cannot be disabled again');
    assert.equal(central.ask('0a 0d00'), h('0b 07'));
    assert.equal(central.ask('12 0300 41'), h('01 12 0300 03'), 'device name not writable');
  });

  it('characteristicAt maps a value handle to its characteristic', () => {
    const { central } = setup();
    assert.deepEqual(central.server.characteristicAt(0x10), { serviceUuid: SVC, characteristicUuid: CHAR_RW });
    assert.deepEqual(central.server.characteristicAt(0x1a), { serviceUuid: '180a', characteristicUuid: '2a29' });
    assert.equal(central.server.characteristicAt(0x0f), undefined, 'a declaration');
    assert.equal(central.server.characteristicAt(0x99), undefined);
  });
});

describe('ATT server: MTU exchange', () => {
  it('answers the device preferred MTU, then uses min(client, device); onConnect at link-up with 23, onMtu after', () => {
    const { central, device } = setup(517);
    assert.deepEqual(device.connects, [[23, 7]]);
    assert.equal(central.server.mtu, 23);
    assert.equal(central.ask('02 0001'), h('03 0502'));
    assert.equal(central.server.mtu, 256);
    assert.deepEqual(device.mtus, [[256, 7]]);
  });

  it('a device with a smaller MTU wins; a client below 23 counts as 23', () => {
    const a = setup(247);
    assert.equal(a.central.ask('02 0502'), h('03 f700'));
    assert.equal(a.central.server.mtu, 247);
    const b = setup(517);
    assert.equal(b.central.ask('02 1400'), h('03 0502'));
    assert.equal(b.central.server.mtu, 23);
  });

  it('a request without its MTU field is not answered', () => {
    const { central } = setup();
    central.att('02 00');
    assert.deepEqual(central.take(), []);
    assert.equal(central.server.mtu, 23);
  });
});

describe('ATT server: reads', () => {
  it('Read answers the value cut to MTU-1; Read Blob calls the device again and applies the offset', () => {
    const { central, device } = setup();
    assert.equal(central.ask('0a 1000'), h(`0b ${Buffer.from('hello').toString('hex')}`));
    const long = device.longValue;
    assert.equal(central.ask('0a 1500'), `0b${long.subarray(0, 22).toString('hex')}`);
    assert.equal(central.ask('0c 1500 1600'), `0d${long.subarray(22, 44).toString('hex')}`);
    assert.equal(central.ask('0c 1500 5802'), '0d', 'offset = length: empty part');
    assert.equal(central.ask('0c 1500 5902'), h('01 0c 1500 07'), 'offset past the end');
    assert.deepEqual(device.reads, [CHAR_RW, CHAR_LONG, CHAR_LONG, CHAR_LONG, CHAR_LONG]);
    assert.equal(central.server.counters.valueBytesToCentral, 5 + 22 + 22);
  });

  it('a declaration ignores the blob offset (NimBLE appends the whole declaration)', () => {
    const { central } = setup();
    assert.equal(central.ask('0c 0f00 0500'), h(`0d 1a 1000 ${RW}`));
  });

  it('errors: invalid handle, not readable (the device is not asked)', () => {
    const { central, device } = setup();
    assert.equal(central.ask('0a ff00'), h('01 0a ff00 01'));
    assert.equal(central.ask('0a 1300'), h('01 0a 1300 02'));
    assert.deepEqual(device.reads, []);
    assert.equal(central.server.counters.attErrors, 2);
  });

  it('Read Multiple concatenates values; an unreadable one fails the whole request', () => {
    const { central } = setup();
    assert.equal(central.ask('0e 1000 1a00'), `0f${Buffer.from('helloCompany 42').toString('hex')}`);
    assert.equal(central.ask('0e 1000 1300'), h('01 0e 1300 02'));
    assert.equal(central.ask('20 1000 1a00'), `210500${Buffer.from('hello').toString('hex')}0a00${Buffer.from('Company 42').toString('hex')}`);
  });
});

describe('ATT server: writes', () => {
  it('Write Request: the device gets the value, then the response; device errors become error responses', () => {
    const { central, device } = setup();
    assert.equal(central.ask('12 1000 414243'), '13');
    assert.deepEqual(device.writes, [{ characteristic: CHAR_RW, data: '414243', withoutResponse: false, connectionId: 7 }]);
    assert.equal(central.ask(`12 1700 ${'00'.repeat(11)}`), h('01 12 1700 0d'));
    assert.equal(central.server.counters.lastAttError?.code, 0x0d);
    assert.match(central.server.counters.lastAttError?.message ?? '', /longer than 10 bytes/);
    assert.equal(central.ask('12 0f00 00'), h('01 12 0f00 03'), 'a declaration is not writable');
    assert.equal(central.ask('12 1500 00'), h('01 12 1500 03'), 'a read-only value');
    assert.equal(central.ask('12 ff00 00'), h('01 12 ff00 01'));
    assert.equal(central.ask('12 1300 01'), '13', 'NimBLE lets a Write Request reach a write-without-response characteristic');
    assert.equal(central.server.counters.valueBytesToPeripheral, 3 + 11 + 1);
  });

  it('Write Command: no response, errors silent; longer than the MTU: dropped before the device, counted', () => {
    const { central, device } = setup();
    central.att(`52 1300 ${'aa'.repeat(20)}`);
    central.att(`52 1300 ${'bb'.repeat(21)}`);
    central.att('52 1500 00');
    central.att(`52 1700 ${'00'.repeat(11)}`);
    assert.deepEqual(central.take(), []);
    assert.deepEqual(
      device.writes.map((w) => [w.characteristic, w.data.length / 2, w.withoutResponse]),
      [
        [CHAR_SINK, 20, true],
        [CHAR_STRICT, 11, true],
      ],
    );
    assert.equal(central.server.counters.oversizeWritesDropped, 1);
    assert.equal(central.server.counters.attErrors, 0);
  });

  it('fault verdicts: drop answers without delivering; loseLink stops without an answer', () => {
    let verdict: 'deliver' | 'drop' | 'loseLink' = 'drop';
    let lost = 0;
    const { central, device } = setup(517, {
      filterWrite: (data) => (verdict === 'deliver' ? { action: 'deliver', data } : { action: verdict }),
      onLinkLost: () => lost++,
    });
    assert.equal(central.ask('12 1000 01'), '13');
    assert.deepEqual(device.writes, []);
    verdict = 'loseLink';
    central.att('12 1000 02');
    assert.deepEqual(central.take(), []);
    assert.equal(lost, 1);
  });
});

describe('ATT server: prepared writes', () => {
  it('prepares are echoed, Execute writes the value once in offset order', () => {
    const { central, device } = setup();
    const part1 = 'a1'.repeat(18);
    const part2 = 'b2'.repeat(5);
    assert.equal(central.ask(`16 1000 1200 ${part2}`), h(`17 1000 1200 ${part2}`));
    assert.equal(central.ask(`16 1000 0000 ${part1}`), h(`17 1000 0000 ${part1}`));
    assert.deepEqual(device.writes, []);
    assert.equal(central.ask('18 01'), '19');
    assert.deepEqual(device.writes, [{ characteristic: CHAR_RW, data: part1 + part2, withoutResponse: false, connectionId: 7 }]);
  });

  it('cancel (flags 0) drops the queue; gaps and values over 512 bytes fail at Execute', () => {
    const { central, device } = setup();
    central.ask('16 1000 0000 aa');
    assert.equal(central.ask('18 00'), '19');
    central.ask('16 1000 0100 aa');
    assert.equal(central.ask('18 01'), h('01 18 1000 07'), 'does not start at 0');
    central.ask('16 1000 0000 aa');
    central.ask('16 1000 0200 aa');
    assert.equal(central.ask('18 01'), h('01 18 1000 07'), 'gap');
    central.ask('02 0502');
    central.ask(`16 1000 0000 ${'00'.repeat(512)}`);
    central.ask('16 1000 0002 00');
    assert.equal(central.ask('18 01'), h('01 18 1000 0d'));
    assert.equal(central.ask('18 01'), '19', 'the failed queue is gone');
    assert.deepEqual(device.writes, []);
  });

  it('errors at Prepare: invalid handle, not writable, queue full after 64 entries', () => {
    const { central } = setup();
    assert.equal(central.ask('16 ff00 0000 00'), h('01 16 ff00 01'));
    assert.equal(central.ask('16 1500 0000 00'), h('01 16 1500 03'));
    for (let i = 0; i < 64; i++) central.ask(`16 1000 ${Buffer.from([i, 0]).toString('hex')} 00`);
    assert.equal(central.ask('16 1000 4000 00'), h('01 16 1000 09'));
    assert.equal(central.ask('18 00'), '19');
    assert.equal(central.ask('16 1000 0000 00'), h('17 1000 0000 00'), 'entries back in the pool');
  });

  it('a device error during Execute names the attribute', () => {
    const { central } = setup();
    central.ask(`16 1700 0000 ${'00'.repeat(11)}`);
    assert.equal(central.ask('18 01'), h('01 18 1700 0d'));
  });

  it('prepared writes left 30 s end the link (Remote User Terminated)', async () => {
    const reasons: number[] = [];
    const { central, clock } = setup(517, { terminate: (r) => reasons.push(r) });
    central.ask('16 1000 0000 aa');
    await clock.advance(29999);
    assert.deepEqual(reasons, []);
    await clock.advance(1);
    assert.deepEqual(reasons, [0x13]);
  });
});

describe('ATT server: notifications', () => {
  it('only after the CCCD was written, at most MTU-3 bytes; dropped ones are counted', () => {
    const { central } = setup();
    assert.equal(central.server.notify(SVC, CHAR_RW, Buffer.from('a')), false);
    assert.equal(central.server.counters.notificationsDropped, 1);
    assert.deepEqual(central.take(), []);
    assert.equal(central.ask('12 1100 0100'), '13');
    assert.equal(central.ask('0a 1100'), h('0b 0100'));
    assert.equal(central.server.notify(SVC, CHAR_RW, Buffer.alloc(25, 0x55)), true);
    assert.deepEqual(central.take(), [`1b1000${'55'.repeat(20)}`]);
    assert.equal(central.ask('12 1100 0000'), '13');
    assert.equal(central.server.notify(SVC, CHAR_RW, Buffer.from('a')), false);
    assert.equal(central.server.notify(SVC, CHAR_LONG, Buffer.from('a')), false, 'no CCCD at all');
    assert.equal(central.server.counters.notificationsDropped, 3);
    assert.equal(central.server.counters.valueBytesToCentral, 20 + 2);
  });

  it('CCCD writes: indications on a notify-only characteristic and wrong lengths are refused', () => {
    const { central } = setup();
    assert.equal(central.ask('12 1100 0200'), h('01 12 1100 06'));
    assert.equal(central.ask('12 1100 01'), h('01 12 1100 0d'));
  });

  it('indications wait for the confirmation; a device that notifies regardless of the CCCD', () => {
    const { central } = setup();
    assert.equal(central.ask('12 0900 0200'), '13');
    assert.equal(central.server.notify('1801', '2a05', Buffer.from('01000500', 'hex')), true);
    assert.deepEqual(central.take(), [h('1d 0800 01000500')]);
    assert.equal(central.server.unconfirmedIndications, 1);
    central.att('1e');
    assert.equal(central.server.unconfirmedIndications, 0);
    const seed = setup(517, { notifyWithoutSubscription: true });
    assert.equal(seed.central.server.notify(SVC, CHAR_RW, Buffer.from('02', 'hex')), true);
    assert.deepEqual(seed.central.take(), [h('1b 1000 02')]);
  });
});

describe('ATT server: the response waits for the access callback (one host task)', () => {
  it('a pending write holds its response and every later frame of the link', async () => {
    const { central, device } = setup();
    const gate = deferred();
    device.hold = gate.promise;
    central.att('12 1000 01');
    central.att('0a 1a00');
    await settle();
    assert.deepEqual(central.take(), []);
    assert.equal(central.server.queuedFrames, 1);
    assert.deepEqual(device.reads, [], 'the read has not reached the device');
    assert.equal(central.server.notify(SVC, CHAR_RW, Buffer.from('x')), false, 'not subscribed');
    gate.resolve();
    await settle();
    assert.deepEqual(central.take(), ['13', `0b${Buffer.from('Company 42').toString('hex')}`]);
  });

  it('notifications the device sends meanwhile go out at once (another task)', async () => {
    const { central, device } = setup();
    central.ask('12 1100 0100');
    const gate = deferred();
    device.hold = gate.promise;
    central.att('12 1000 01');
    central.server.notify(SVC, CHAR_RW, Buffer.from('02', 'hex'));
    assert.deepEqual(central.take(), [h('1b 1000 02')]);
    gate.resolve();
    await settle();
    assert.deepEqual(central.take(), ['13']);
  });

  it('a callback that never returns never answers; close() drops what waits and tells the device', async () => {
    const { central, device } = setup();
    device.hold = new Promise<void>(() => undefined);
    central.att('12 1000 01');
    central.att('0a 1000');
    await settle();
    assert.deepEqual(central.take(), []);
    central.server.close();
    assert.deepEqual(device.disconnects, [7]);
    assert.equal(central.server.notify(SVC, CHAR_RW, Buffer.from('x')), false);
    central.att('0a 1000');
    await settle();
    assert.deepEqual(central.take(), []);
  });

  it('onFrameConsumed fires when the host takes a frame, not while it waits; close without telling the device', async () => {
    const consumed: string[] = [];
    const { central, device } = setup(517, { onFrameConsumed: (f) => consumed.push(f.toString('hex')) });
    const gate = deferred();
    device.hold = gate.promise;
    central.att('12 1000 01');
    central.att('0a 1000');
    assert.deepEqual(consumed, [h('0400 0400 12 1000 01')]);
    gate.resolve();
    await settle();
    assert.deepEqual(consumed, [h('0400 0400 12 1000 01'), h('0300 0400 0a 1000')]);
    central.server.close({ notifyDevice: false });
    assert.deepEqual(device.disconnects, []);
  });

  it('a rejected callback becomes Unlikely Error (or its AttError code)', async () => {
    const { central, device } = setup();
    const gate = deferred();
    device.hold = gate.promise;
    central.att('12 1000 01');
    gate.reject(new Error('flash write failed'));
    await settle();
    assert.deepEqual(central.take(), [h('01 12 1000 0e')]);
    assert.match(central.server.counters.lastAttError?.message ?? '', /flash write failed/);
  });

  it('links of one device share the host: one link waiting blocks the other', async () => {
    const clock = new ManualClock();
    const device = new StubPeripheral();
    const host = new AttHost(clock);
    const a = new Central({ device, connectionId: 1, clock, host });
    const b = new Central({ device, connectionId: 2, clock, host });
    const gate = deferred();
    device.hold = gate.promise;
    a.att('12 1000 01');
    b.att('0a 1a00');
    await settle();
    assert.deepEqual([a.take(), b.take()], [[], []]);
    gate.resolve();
    await settle();
    assert.deepEqual([a.take(), b.take()], [['13'], [`0b${Buffer.from('Company 42').toString('hex')}`]]);
  });

  it('a frame submitted while the host runs a frame (re-entrant delivery) waits its turn', () => {
    const clock = new ManualClock();
    const device = new StubPeripheral();
    const host = new AttHost(clock);
    const order: string[] = [];
    let central: Central | null = null;
    central = new Central({
      device,
      connectionId: 1,
      clock,
      host,
      onFrameConsumed: (f) => {
        order.push(`take ${f.toString('hex').slice(8, 10)}`);
        if (order.length === 1) central?.att('0a 1a00');
      },
    });
    central.att('0a 1000');
    assert.deepEqual(order, ['take 0a', 'take 0a']);
    assert.deepEqual(central.take(), [`0b${Buffer.from('hello').toString('hex')}`, `0b${Buffer.from('Company 42').toString('hex')}`]);
  });

  it('a host stall delays processing by its duration (stalls add up)', async () => {
    const clock = new ManualClock();
    const device = new StubPeripheral();
    const host = new AttHost(clock);
    const central = new Central({ device, connectionId: 1, clock, host });
    host.stall(30);
    host.stall(20);
    central.att('0a 1a00');
    await clock.advance(49);
    assert.deepEqual(central.take(), []);
    await clock.advance(1);
    assert.equal(central.take().length, 1);
  });

  it('reset() (device restart) frees a host stuck in a callback that never returns', async () => {
    const clock = new ManualClock();
    const device = new StubPeripheral();
    const host = new AttHost(clock);
    const a = new Central({ device, connectionId: 1, clock, host });
    device.hold = new Promise<void>(() => undefined);
    a.att('12 1000 01');
    a.server.close();
    host.reset();
    const b = new Central({ device, connectionId: 2, clock, host });
    assert.equal(b.ask('0a 1a00'), `0b${Buffer.from('Company 42').toString('hex')}`);
  });
});

describe('ATT server: other opcodes, LE signaling, SMP', () => {
  it('unknown requests: Request Not Supported; unknown commands and stray responses: nothing', () => {
    const { central } = setup();
    assert.equal(central.ask('30'), h('01 30 0000 06'));
    central.att('70 0100');
    central.att('13');
    central.att('0b 00');
    central.att('d2 1000 00');
    assert.deepEqual(central.take(), []);
    assert.equal(central.ask('1d 1000 aa'), '1e', 'an indication from the central is confirmed');
  });

  it('LE signaling: Connection Parameter Update Request to a peripheral is rejected, unknown CIDs too', () => {
    const { central } = setup();
    central.frame(5, '12 07 0800 0600 0c00 0000 c800');
    assert.deepEqual(central.take(), ['5:01070200' + '0000']);
    central.frame(5, '13 07 0200 0000');
    central.frame(5, '01 07 0200 0000');
    assert.deepEqual(central.take(), [], 'a response or reject nobody waits for passes silently');
    central.frame(5, '08 09 0000');
    assert.deepEqual(central.take(), ['5:010902000000']);
    central.frame(0x40, '00');
    assert.deepEqual(central.take(), ['5:010006000200' + '4000' + '0000']);
    central.frame(0xffff, '00');
    assert.deepEqual(central.take(), []);
  });

  it('SMP: Pairing Failed, Pairing Not Supported', () => {
    const { central } = setup();
    central.frame(6, '01 03 00 01 10 07 07');
    assert.deepEqual(central.take(), ['6:0505']);
  });
});
