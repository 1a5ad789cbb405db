/**
 * noble's own ATT client (lib/hci-socket/gatt.js, unchanged) against the ATT server: discovery,
 * reads, writes, long writes, subscriptions and notifications as noble does them, with the device
 * models behind the server. Frames go both ways on setImmediate, as an ACL link delivers them later.
 */
import { strict as assert } from 'assert';
import { EventEmitter, once } from 'events';
import { CONTROL_CHAR_UUID, DIS_SERVICE_UUID, MANUFACTURER_NAME_UUID, OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../../../lib/protocol/constants';
import { createSimDevice } from '../../../lib/sim/device';
import { AttServer } from '../../../lib/sim/hci/att-server';
import { l2capFrame, parseL2capFrame } from '../../../lib/sim/hci/l2cap-frames';
import type { VirtualPeripheral } from '../../../lib/sim/types';
import { CHAR_RW, ManualClock, StubPeripheral, SVC } from './att-server-harness';

interface NobleGatt extends EventEmitter {
  exchangeMtu(): void;
  discoverServices(uuids: string[]): void;
  discoverCharacteristics(serviceUuid: string, uuids: string[]): void;
  read(serviceUuid: string, characteristicUuid: string): void;
  write(serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean): void;
  notify(serviceUuid: string, characteristicUuid: string, notify: boolean): void;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Gatt = require('@abandonware/noble/lib/hci-socket/gatt') as new (address: string, aclStream: EventEmitter) => NobleGatt;

/** noble's Gatt on an ACL stream whose other end is an AttServer for device. */
function link(device: VirtualPeripheral, clock = new ManualClock()) {
  const acl = new EventEmitter() as EventEmitter & { write(cid: number, data: Buffer): void; encrypt(): void };
  const server: AttServer = new AttServer({
    device,
    connectionId: 0,
    clock,
    sendFrame: (frame) => {
      const f = parseL2capFrame(frame);
      if (f) setImmediate(() => acl.emit('data', f.cid, f.payload));
    },
  });
  acl.write = (cid, data) => setImmediate(() => server.receiveFrame(l2capFrame(cid, data)));
  acl.encrypt = () => assert.fail('noble asked for encryption');
  device.attach({
    clock,
    notify: (service, characteristic, data) => server.notify(service, characteristic, data),
    dropConnection: () => server.close(),
    advertisingChanged: () => undefined,
  });
  const gatt = new Gatt('aa:bb:cc:dd:ee:ff', acl);
  return { gatt, server, clock };
}

async function discover(gatt: NobleGatt, service: string): Promise<Array<{ uuid: string; properties: string[] }>> {
  gatt.discoverServices([]);
  await once(gatt, 'servicesDiscover');
  gatt.discoverCharacteristics(service, []);
  const [, , characteristics] = await once(gatt, 'characteristicsDiscover');
  return characteristics as Array<{ uuid: string; properties: string[] }>;
}

describe('ATT server under noble’s gatt.js', () => {
  it('v2 device: MTU (noble keeps the 517 it is told), discovery, read, subscribe, command and its notification', async () => {
    const clock = new ManualClock();
    const device = createSimDevice({ name: 'ota-dev', chip: 'esp32c3', version: '1.0.0' }, clock);
    const { gatt, server } = link(device, clock);
    gatt.exchangeMtu();
    const [, mtu] = await once(gatt, 'mtu');
    assert.equal(mtu, 517, 'noble stores the server’s value verbatim');
    assert.equal(server.mtu, 256, 'NimBLE uses min(256, 517)');

    gatt.discoverServices([]);
    const [, services] = await once(gatt, 'servicesDiscover');
    assert.deepEqual(services, ['1800', '1801', DIS_SERVICE_UUID, OTA_SERVICE_UUID]);
    gatt.discoverCharacteristics(OTA_SERVICE_UUID, []);
    const [, , characteristics] = await once(gatt, 'characteristicsDiscover');
    assert.deepEqual(
      (characteristics as Array<{ uuid: string; properties: string[] }>).map((c) => [c.uuid.slice(0, 8), c.properties]),
      [
        ['5c4e0002', ['write', 'notify']],
        ['5c4e0003', ['writeWithoutResponse']],
        ['5c4e0004', ['read', 'notify']],
      ],
    );
    gatt.discoverCharacteristics(DIS_SERVICE_UUID, []);
    await once(gatt, 'characteristicsDiscover');

    gatt.read(DIS_SERVICE_UUID, MANUFACTURER_NAME_UUID);
    const [, , , manufacturer] = await once(gatt, 'read');
    assert.equal((manufacturer as Buffer).toString(), 'Espressif');
    gatt.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID);
    const [, , , status] = await once(gatt, 'read');
    assert.deepEqual(status, device.onRead(OTA_SERVICE_UUID, STATUS_CHAR_UUID));

    gatt.notify(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, true);
    const [, , , enabled] = await once(gatt, 'notify');
    assert.equal(enabled, true);
    const notification = once(gatt, 'notification');
    const written = once(gatt, 'write');
    gatt.write(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, Buffer.from([0x01]), false);
    const [, , characteristic, data] = await notification;
    assert.equal(characteristic, CONTROL_CHAR_UUID);
    assert.equal((data as Buffer)[0], 0x81, 'CHALLENGE response');
    await written;
    assert.equal(server.counters.attErrors, 0);
  });

  it('a long write (noble: Prepare Write of MTU-5, then Execute) reaches the device as one write', async () => {
    const device = new StubPeripheral(23);
    const { gatt } = link(device);
    await discover(gatt, SVC);
    const value = Buffer.from(Array.from({ length: 40 }, (_, i) => i));
    gatt.write(SVC, CHAR_RW, value, false);
    await once(gatt, 'write');
    assert.deepEqual(device.writes, [{ characteristic: CHAR_RW, data: value.toString('hex'), withoutResponse: false, connectionId: 0 }]);
  });

  it('a long read continues with Read Blob while a response fills the MTU', async () => {
    const device = new StubPeripheral(23);
    const { gatt } = link(device);
    await discover(gatt, SVC);
    gatt.read(SVC, 'c0030000000010008000000000000003');
    const [, , , data] = await once(gatt, 'read');
    assert.deepEqual(data, device.longValue);
  });

  it('seed device: its service is found by discovery', async () => {
    const clock = new ManualClock();
    const device = createSimDevice({ name: 'esp32', chip: 'esp32', version: '1.0.0', protocol: 'legacy' }, clock);
    const { gatt } = link(device, clock);
    gatt.discoverServices([]);
    const [, services] = await once(gatt, 'servicesDiscover');
    assert.ok((services as string[]).includes('d6f1d96d594c4c53b1c6144a1dfde6d8'));
  });
});
