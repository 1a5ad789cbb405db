/**
 * The virtual HCI controller under noble's own hci-socket layer (hci.js, gap.js, gatt.js, acl-stream.js):
 * init burst, MTU, ACL flow control, cancel-connect, failing commands, 0x3E, unexpected events, PDU
 * loss with retransmission, and the device controller's RX buffers during a host stall.
 */
import { strict as assert } from 'assert';
import { createNobleCentral, type NobleBleCentral } from '../../../lib/ble/noble-central';
import type { BleConnection } from '../../../lib/ble/central';
import { createSimRadio, type SimRadio } from '../../../lib/sim/radio';
import { VirtualClock } from '../../../lib/sim/virtual-clock';
import { sleep } from '../../../lib/clock';
import { isOtaError } from '../../../lib/errors';
import { LINK_SCENARIOS, type LinkProfile } from '../../../lib/sim/link-model';
import { createHciNoble } from '../../../lib/sim/hci/noble-hci-loader';
import { OP } from '../../../lib/sim/hci/hci-codes';
import { TinyPeripheral, TINY_SERVICE, CHAR_SINK, CHAR_RW } from '../tiny-peripheral';
import type { DeviceRadioOptions } from '../../../lib/sim/radio';

const ADDRESS = 'aa:bb:cc:00:00:01';

interface Rig {
  clock: VirtualClock;
  radio: SimRadio;
  device: TinyPeripheral;
  central: NobleBleCentral;
}

async function rig(link: LinkProfile = LINK_SCENARIOS.reference, device = new TinyPeripheral(ADDRESS, 'tiny-1', 256), options: DeviceRadioOptions = {}): Promise<Rig> {
  const clock = new VirtualClock();
  const radio = createSimRadio({ clock, link: { ...link } });
  radio.addDevice(device, options);
  const central = createNobleCentral(createHciNoble(radio.controller), { clock });
  await central.waitReady(2000);
  const scan = await central.startScan({}, () => undefined);
  await sleep(clock, 300);
  await scan.stop();
  return { clock, radio, device, central };
}

const sinkWrites = (d: TinyPeripheral) => d.writes.filter((w) => w.characteristic === CHAR_SINK);

async function stream(conn: BleConnection, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await conn.write(TINY_SERVICE, CHAR_SINK, Buffer.alloc(240, i & 0xff), true);
}

async function until(clock: VirtualClock, cond: () => boolean, maxMs = 60000): Promise<void> {
  const t0 = clock.now();
  while (!cond()) {
    if (clock.now() - t0 > maxMs) throw new Error('condition not reached');
    await sleep(clock, 10);
  }
}

describe('sim/hci: the virtual controller under noble\'s HCI layer', () => {
  it('answers noble\'s init burst on the raw channel (no Reset) and the adapter reaches poweredOn', async () => {
    const r = await rig();
    const log = r.radio.controller.commandLog;
    const burst = [OP.setEventMask, OP.leSetEventMask, OP.readLocalVersion, OP.writeLeHostSupported, OP.readLeHostSupported, OP.leReadBufferSize, OP.readBdAddr];
    assert.deepEqual(log.slice(0, burst.length), burst, 'hci.js:185-191 order');
    assert.ok(!log.includes(OP.reset), 'raw channel: no HCI Reset');
    assert.ok(log.includes(OP.leSetScanParameters), 'poweredOn follows the scan parameters (hci.js:971-977)');
    assert.equal(r.central.state, 'poweredOn');
  });

  it('MTU as noble negotiates it: asks 256, stores the answer; the connection uses min(256, answer)', async () => {
    const r = await rig(LINK_SCENARIOS.reference, new TinyPeripheral(ADDRESS, 'tiny-1', 517));
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    assert.equal(r.radio.attServer(ADDRESS)?.mtu, 256, 'the server agreed min(256, 517)');
    assert.equal(conn.mtu, 256, 'noble reports 517; the effective MTU is 256');
  });

  it('ACL flow control: never more packets outstanding than the controller\'s buffers; NOCP returns them', async () => {
    const r = await rig();
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    await stream(conn, 300);
    await until(r.clock, () => sinkWrites(r.device).length === 300);
    const c = r.radio.controller.counters;
    assert.equal(c.flowControlViolations, 0);
    assert.equal(c.maxOutstanding, 8, 'the host fills all 8 buffers and no more');
    await sleep(r.clock, 50);
    assert.equal(r.radio.controller.aclOutstanding, 0, 'every buffer came back');
    assert.deepEqual(sinkWrites(r.device).map((w) => w.data[0]), Array.from({ length: 300 }, (_, i) => i & 0xff), 'in order');
  });

  it('cancel-connect completes (Command Complete, then LE Connection Complete 0x02) and a later connect works', async () => {
    const r = await rig();
    r.device.advertising = false;
    await assert.rejects(r.central.connect(ADDRESS, { timeoutMs: 500 }), (e: unknown) => isOtaError(e) && e.code === 'CONNECT_TIMEOUT');
    await sleep(r.clock, 10);
    assert.ok(r.radio.controller.commandLog.includes(OP.leCreateConnectionCancel));
    assert.equal(r.radio.controller.initiating, null);
    r.device.advertising = true;
    r.device.host?.advertisingChanged();
    const conn = await r.central.connect(ADDRESS, { timeoutMs: 2000 });
    assert.equal(conn.connected, true, 'not DEVICE_BUSY: noble\'s peripheral left "connecting"');
  });

  it('a cancel that crosses the completion (CONNECT_IND already sent): the link comes up and is disconnected', async () => {
    class Watched extends TinyPeripheral {
      adverts: number[] = [];
      override advertisement() {
        if (this.host) this.adverts.push(this.host.clock.now());
        return super.advertisement();
      }
    }
    // A first run finds when CONNECT_IND goes out (the simulation is deterministic).
    const probe = new Watched(ADDRESS, 'tiny-1', 256);
    const r1 = await rig(LINK_SCENARIOS.reference, probe);
    const t1 = r1.clock.now();
    probe.adverts.length = 0;
    await r1.central.connect(ADDRESS);
    const connectIndAfter = probe.adverts[0] - t1;
    // The second run gives up half a millisecond after CONNECT_IND, before the first anchor.
    const device = new Watched(ADDRESS, 'tiny-1', 256);
    const r = await rig(LINK_SCENARIOS.reference, device);
    await assert.rejects(r.central.connect(ADDRESS, { timeoutMs: connectIndAfter + 0.5 }), (e: unknown) => isOtaError(e) && e.code === 'CONNECT_TIMEOUT');
    await sleep(r.clock, 100);
    const log = r.radio.controller.commandLog;
    assert.ok(log.includes(OP.leCreateConnectionCancel) && log.includes(OP.disconnect), 'cancel refused, the unwanted link disconnected');
    assert.deepEqual(r.radio.connectedDevices(), []);
    assert.equal((await r.central.connect(ADDRESS, { timeoutMs: 2000 })).connected, true);
  });

  it('a command answered with an error status ends in a typed OtaError, never a hang', async () => {
    const r = await rig();
    r.radio.controller.failCommand(OP.leCreateConnection, 0x07);
    await assert.rejects(r.central.connect(ADDRESS, { timeoutMs: 5000 }), (e: unknown) => isOtaError(e) && e.code === 'CONNECT_FAILED' && /0x7/.test(e.message));
    r.radio.controller.failCommand(OP.leSetScanEnable, 0x0c, 2);
    await assert.rejects(r.central.startScan({}, () => undefined), (e: unknown) => isOtaError(e) && e.code === 'SCAN_FAILED');
    const conn = await r.central.connect(ADDRESS, { timeoutMs: 5000 });
    assert.equal(conn.connected, true, 'the controller works again');
  });

  it('a link that dies before its first anchor: LE Connection Complete 0x3E, CONNECT_FAILED', async () => {
    class Fading extends TinyPeripheral {
      armed = false;
      radio: SimRadio | null = null;
      override advertisement() {
        if (this.armed && this.host) {
          this.armed = false;
          // CONNECT_IND goes out at this advertising event; the device is gone before the first anchor.
          this.host.clock.setTimer(() => this.radio?.injectFault(ADDRESS, { kind: 'vanish', forMs: 1000 }), 0);
        }
        return super.advertisement();
      }
    }
    const device = new Fading(ADDRESS, 'tiny-1', 256);
    const r = await rig(LINK_SCENARIOS.reference, device);
    device.radio = r.radio;
    device.armed = true;
    await assert.rejects(r.central.connect(ADDRESS, { timeoutMs: 5000 }), (e: unknown) => isOtaError(e) && e.code === 'CONNECT_FAILED' && /0x3e/.test(e.message));
    await sleep(r.clock, 1200);
    assert.equal((await r.central.connect(ADDRESS, { timeoutMs: 5000 })).connected, true);
  });

  it('survives HCI events noble does not expect', async () => {
    const r = await rig();
    const ctrl = r.radio.controller;
    ctrl.injectToHost(Buffer.from([0x04, 0x10, 0x01, 0x00])); // Hardware Error
    ctrl.injectToHost(Buffer.from([0x04, 0x3e, 0x02, 0x14, 0x00])); // an LE subevent noble masked
    ctrl.injectToHost(Buffer.from([0x04, 0x13, 0x05, 0x01, 0x99, 0x00, 0x01, 0x00])); // NOCP for an unknown handle
    ctrl.injectToHost(Buffer.from([0x04, 0x0e, 0x04, 0x01, 0x34, 0x12, 0x00])); // Command Complete nobody asked for
    await sleep(r.clock, 10);
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    assert.equal((await conn.read(TINY_SERVICE, CHAR_RW)).toString(), 'hello');
  });

  it('PDU loss: the link layer retransmits and every write arrives once, in order', async () => {
    const r = await rig({ ...LINK_SCENARIOS.reference, name: 'lossy', pduLossRate: 0.05 });
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    await stream(conn, 400);
    await until(r.clock, () => sinkWrites(r.device).length >= 400);
    await sleep(r.clock, 100);
    assert.deepEqual(sinkWrites(r.device).map((w) => w.data[0]), Array.from({ length: 400 }, (_, i) => i & 0xff));
    const link = r.radio.stats().devices[ADDRESS].link;
    assert.ok(link.toPeripheral.lost > 0 && link.toCentral.lost > 0, 'losses both ways');
    assert.ok(link.toPeripheral.retransmissions >= link.toPeripheral.lost, 'each lost data PDU was sent again');
    assert.equal(r.radio.controller.counters.flowControlViolations, 0);
  });

  it('host stall: PDUs wait in the device controller\'s RX buffers, beyond them it NAKs and the central retransmits', async () => {
    const r = await rig(LINK_SCENARIOS.reference, undefined, { rxBuffers: 4 });
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    const before = sinkWrites(r.device).length;
    r.device.host?.hostStall?.(100);
    r.device.host?.hostStall?.(50); // back to back: 150 ms in all
    const t0 = r.clock.now();
    await stream(conn, 40);
    await until(r.clock, () => sinkWrites(r.device).length - before === 40);
    const firstAt = sinkWrites(r.device)[before].at;
    assert.ok(firstAt - t0 >= 150 - 1e-6, `nothing reached the device during the stall (first at +${firstAt - t0} ms)`);
    const stats = r.radio.stats().devices[ADDRESS];
    assert.ok(stats.link.toPeripheral.naks > 0, 'the full RX buffers NAKed');
    assert.equal(stats.maxRxInUse, 4);
    assert.equal(stats.stalledMs, 150);
    assert.deepEqual(sinkWrites(r.device).slice(before).map((w) => w.data[0]), Array.from({ length: 40 }, (_, i) => i));
  });

  it('host stall: a notification the device sends meanwhile waits in its host until the stall ends', async () => {
    const r = await rig();
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    const got: number[] = [];
    await conn.subscribe(TINY_SERVICE, CHAR_RW, () => got.push(r.clock.now()));
    const t0 = r.clock.now();
    r.device.host?.hostStall?.(120);
    r.device.notify(Buffer.from('late'));
    await sleep(r.clock, 200);
    assert.equal(got.length, 1);
    assert.ok(got[0] - t0 >= 120, `delivered ${got[0] - t0} ms after the stall began`);
  });

  it('without DLE (27-byte PDUs) frames cross as several ACL packets both ways (PB first/continuing) and arrive whole', async () => {
    const r = await rig(LINK_SCENARIOS['no-dle']);
    const conn = await r.central.connect(ADDRESS);
    await conn.discover();
    const value = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 3) & 0xff));
    await conn.write(TINY_SERVICE, CHAR_RW, value, false);
    assert.deepEqual(r.device.writes.filter((w) => w.characteristic === CHAR_RW).map((w) => w.data), [value]);
    assert.deepEqual(await conn.read(TINY_SERVICE, CHAR_RW), value, 'a 201-byte response comes up in 27-byte packets');
    assert.ok(r.radio.controller.counters.aclToHost > 10);
    assert.equal(r.radio.controller.counters.flowControlViolations, 0);
  });
});
