/**
 * The ATT server in front of the real device models (createSimDevice: our v2 firmware and the seed),
 * byte for byte: their GATT tables as NimBLE lays them out, reads, the MTU the device answers, the
 * notification a write triggers going out before that write's response, oversize Data writes, and the
 * seed's flash erase inside the write callback holding the write response and everything after it.
 */
import { strict as assert } from 'assert';
import { decodeNotification } from '../../../lib/protocol/codec';
import { LEGACY_SERVICE_UUIDS, OTA_SERVICE_UUID } from '../../../lib/protocol/constants';
import { createSimDevice, flashTiming, SECTOR_ERASE_MS } from '../../../lib/sim/device';
import { programTimeMs } from '../../../lib/sim/device/flash-timing';
import type { SimDevice } from '../../../lib/sim/device';
import { AttHost } from '../../../lib/sim/hci/att-host';
import type { SimDeviceConfig } from '../../../lib/sim/types';
import { Central, ManualClock, h, le } from './att-server-harness';

function connect(config: Partial<SimDeviceConfig> = {}) {
  const clock = new ManualClock();
  const device: SimDevice = createSimDevice({ name: 'ota-dev', chip: 'esp32c3', version: '1.0.0', ...config }, clock);
  const host = new AttHost(clock);
  let central: Central | null = null;
  device.attach({
    clock,
    notify: (service, characteristic, data) => central?.server.notify(service, characteristic, data),
    dropConnection: () => central?.server.close(),
    advertisingChanged: () => undefined,
  });
  central = new Central({ device, connectionId: 0, clock, host, notifyWithoutSubscription: config.protocol === 'legacy' });
  return { clock, device, central };
}

const text = (s: string) => Buffer.from(s, 'utf8').toString('hex');

function mtuHex(mtu: number): string {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(mtu, 0);
  return b.toString('hex');
}

describe('ATT server with the v2 device model', () => {
  // GAP 1-5, GATT 6-13, DIS 14-20 (values 16, 18, 20), OTA 21-29: Control 23 + CCCD 24, Data 26, Status 28 + CCCD 29.
  it('GATT table: GAP, GATT, DIS, then the OTA service ending at 0xFFFF', () => {
    const { central } = connect();
    assert.equal(central.ask('10 0100 ffff 0028'), h('11 06 0100 0500 0018 0600 0d00 0118 0e00 1400 0a18'));
    assert.equal(central.ask('10 1500 ffff 0028'), h(`11 14 1500 ffff ${le(OTA_SERVICE_UUID)}`));
    assert.equal(central.ask('0a 0300'), `0b${text('ota-dev')}`, 'GAP Device Name');
    assert.equal(central.ask('0a 1000'), `0b${text('Espressif')}`);
    assert.equal(central.ask('0a 1200'), `0b${text('esp32c3')}`);
    assert.equal(central.ask('0a 1400'), `0b${text('1.0.0')}`);
    assert.equal(central.ask('0a 1700'), h('01 0a 1700 02'), 'Control is not readable (the stack says so)');
  });

  it('MTU: answers its preferred 517; the link uses 256 with noble', () => {
    const { central, device } = connect();
    assert.equal(device.maxMtu, 517);
    assert.equal(central.ask('02 0001'), h('03 0502'));
    assert.equal(central.server.mtu, 256);
  });

  it('CHALLENGE: the response notification goes out before the write response', () => {
    const { central } = connect();
    assert.equal(central.ask('12 1800 0100'), '13');
    central.att('12 1700 01');
    const out = central.take();
    assert.equal(out.length, 2);
    assert.ok(out[0].startsWith('1b1700'), out[0]);
    assert.equal(decodeNotification(Buffer.from(out[0].slice(6), 'hex')).op, 0x81);
    assert.equal(out[1], '13');
  });

  it('without a Control subscription the notification is dropped and counted', () => {
    const { central } = connect();
    assert.equal(central.ask('12 1700 01'), '13');
    assert.equal(central.server.counters.notificationsDropped, 1);
  });

  it('Status read in parts with Read Blob equals the value the device serves', () => {
    const { central, device } = connect();
    const expected = device.onRead(OTA_SERVICE_UUID, '5c4e00046a8b4f0e9a3d32b1e07a0001') as Buffer;
    assert.ok(expected.length > 22, 'Status is longer than one MTU-23 response');
    let value = Buffer.from(central.ask('0a 1c00'), 'hex').subarray(1);
    while (value.length % 22 === 0) {
      const offset = Buffer.alloc(2);
      offset.writeUInt16LE(value.length, 0);
      const part = Buffer.from(central.ask(`0c 1c00 ${offset.toString('hex')}`), 'hex').subarray(1);
      value = Buffer.concat([value, part]);
      if (part.length === 0) break;
    }
    assert.deepEqual(value, expected);
  });

  it('a Data write command longer than the MTU never reaches the device', () => {
    const { central } = connect();
    central.ask('02 0001');
    central.att(`52 1a00 ${'00'.repeat(254)}`);
    assert.deepEqual(central.take(), []);
    assert.equal(central.server.counters.oversizeWritesDropped, 1);
    assert.equal(central.server.counters.valueBytesToPeripheral, 0);
  });
});

describe('ATT server with the seed (legacy) device model', () => {
  const legacy = { protocol: 'legacy' as const, name: 'esp32', chip: 'esp32' as const };
  // GAP 1-5, GATT 6-13, DIS 14-18 (values 16, 18), OTA 19-24: Control 21 + CCCD 22, Data 24.

  it('GATT table: DIS with two characteristics, the seed service (…144a…) last', () => {
    const { central } = connect(legacy);
    assert.equal(central.ask('10 0100 ffff 0028'), h('11 06 0100 0500 0018 0600 0d00 0118 0e00 1200 0a18'));
    assert.equal(central.ask('10 1300 ffff 0028'), h(`11 14 1300 ffff ${le(LEGACY_SERVICE_UUIDS[0])}`));
    assert.equal(central.ask('08 1300 ffff 0328').slice(0, 14), h('09 15 1400 1a 1500'), 'Control: read, write, notify');
    assert.equal(central.ask('08 1700 ffff 0328').slice(0, 14), h('09 15 1700 08 1800'), 'Data: write');
  });

  it('errors: Data is not readable (stack), a 2-byte Control write is refused (device)', () => {
    const { central } = connect(legacy);
    assert.equal(central.ask('0a 1800'), h('01 0a 1800 02'));
    assert.equal(central.ask('12 1500 0102'), h('01 12 1500 0d'));
  });

  it('REQUEST: REQUEST_ACK is notified before the write response', () => {
    const { central, device } = connect(legacy);
    assert.equal(central.ask('02 0001'), `03${mtuHex(device.maxMtu)}`, 'the seed answers its preferred MTU');
    assert.equal(central.server.mtu, Math.min(256, device.maxMtu));
    assert.equal(central.ask('12 1600 0100'), '13');
    assert.equal(central.ask('12 1800 fd00'), '13', 'packet size 253');
    central.att('12 1500 01');
    assert.deepEqual(central.take(), [h('1b 1500 02'), '13']);
    assert.equal(central.ask('0a 1500'), h('0b 02'));
  });

  it('the first Data write erases a sector inside the callback: its response, and the next request, wait for it', async () => {
    const { central, clock } = connect(legacy);
    central.ask('02 0001');
    central.ask('12 1800 fd00');
    central.att('12 1500 01');
    central.take();
    const packet = Buffer.alloc(253, 0x11);
    packet[0] = 0xe9;
    central.att(`12 1800 ${packet.toString('hex')}`);
    central.att('0a 1500');
    assert.deepEqual(central.take(), []);
    assert.equal(central.server.queuedFrames, 1);
    const busyMs = SECTOR_ERASE_MS + programTimeMs(flashTiming(1), 0, 253);
    await clock.advance(busyMs - 0.01);
    assert.deepEqual(central.take(), []);
    await clock.advance(0.01);
    assert.deepEqual(central.take(), ['13', h('0b 02')]);
  });
});
