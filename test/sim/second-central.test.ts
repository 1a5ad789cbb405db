/**
 * A second central on the same air (radio.addCentral / fleet.addCentral): both centrals see a device,
 * both connect to it at once, the device tells the links apart by connectionId, and a notification
 * addressed to one link reaches that central only.
 */
import { strict as assert } from 'assert';
import type { BleCentral, BleConnection, DiscoveredDevice } from '../../lib/ble/central';
import { createNobleCentral } from '../../lib/ble/noble-central';
import { sleep } from '../../lib/clock';
import { STATUS_CHAR_UUID, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { createSimFleet } from '../../lib/sim/fleet';
import { createSimRadio, type SimRadio } from '../../lib/sim/radio';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { CHAR_RW, TINY_SERVICE, TinyPeripheral } from './tiny-peripheral';
import { createHciNoble } from '../../lib/sim/hci/noble-hci-loader';


/** TinyPeripheral that records the connectionId of every radio call. */
class LinkAwarePeripheral extends TinyPeripheral {
  readonly connectIds: number[] = [];
  readonly disconnectIds: number[] = [];
  readonly writeIds: Array<{ id: number | undefined; data: string }> = [];

  override onConnect(mtu: number, connectionId?: number): void {
    super.onConnect(mtu);
    this.connectIds.push(connectionId ?? -1);
  }

  override onDisconnect(connectionId?: number): void {
    super.onDisconnect();
    this.disconnectIds.push(connectionId ?? -1);
  }

  override onWrite(service: string, characteristic: string, data: Buffer, withoutResponse: boolean, connectionId?: number): void | Promise<void> {
    this.writeIds.push({ id: connectionId, data: data.toString() });
    return super.onWrite(service, characteristic, data, withoutResponse);
  }

  notifyLink(data: Buffer, connectionId?: number): void {
    this.host?.notify(TINY_SERVICE, CHAR_RW, data, connectionId);
  }
}

async function scanFor(central: BleCentral, name: string, clock: VirtualClock, ms = 1000): Promise<DiscoveredDevice | null> {
  let found: DiscoveredDevice | null = null;
  const scan = await central.startScan({}, (d) => {
    if (d.name === name) found = d;
  });
  const deadline = clock.now() + ms;
  while (!found && clock.now() < deadline) await sleep(clock, 20);
  await scan.stop();
  return found;
}

async function settle(clock: VirtualClock, ms = 200): Promise<void> {
  await sleep(clock, ms);
}

describe('sim/radio: a second central on the same air', () => {
  let clock: VirtualClock;
  let radio: SimRadio;
  let device: LinkAwarePeripheral;
  let a: BleCentral;
  let b: BleCentral;

  beforeEach(async () => {
    clock = new VirtualClock();
    radio = createSimRadio({ clock, link: 'reference' });
    device = new LinkAwarePeripheral();
    radio.addDevice(device);
    a = createNobleCentral(createHciNoble(radio.controller), { clock });
    b = createNobleCentral(createHciNoble(radio.addCentral()), { clock });
    await Promise.all([a.waitReady(1000), b.waitReady(1000)]);
  });

  afterEach(async () => {
    await a.close();
    await b.close();
    clock.stop();
  });

  it('both centrals see the device, also while the other is connected to it', async () => {
    const seenByA = await scanFor(a, 'tiny-1', clock);
    const seenByB = await scanFor(b, 'tiny-1', clock);
    assert.ok(seenByA && seenByB, 'both centrals saw the device');
    assert.equal(seenByB.address, seenByA.address);
    const connA = await a.connect(seenByA.id);
    assert.ok(await scanFor(b, 'tiny-1', clock), 'B still sees the device A is connected to');
    assert.equal(await scanFor(a, 'tiny-1', clock, 500), null, 'A sees no advertisement of a device it is connected to');
    await connA.disconnect();
  });

  it('both connect; the device tells the links apart; notifications go to the addressed link only', async () => {
    const connA = await a.connect((await scanFor(a, 'tiny-1', clock))!.id);
    const connB = await b.connect((await scanFor(b, 'tiny-1', clock))!.id);
    await Promise.all([connA.discover(), connB.discover()]);
    assert.equal(device.connectIds.length, 2);
    assert.notEqual(device.connectIds[0], device.connectIds[1], 'distinct connectionIds');
    const [idA, idB] = device.connectIds;
    assert.deepEqual(radio.connectedDevices(0), ['aa:bb:cc:00:00:01']);
    assert.deepEqual(radio.connectedDevices(1), ['aa:bb:cc:00:00:01']);
    assert.equal(radio.stats().devices['aa:bb:cc:00:00:01'].connections, 2);

    await connA.write(TINY_SERVICE, CHAR_RW, Buffer.from('from-a'), false);
    await connB.write(TINY_SERVICE, CHAR_RW, Buffer.from('from-b'), false);
    assert.deepEqual(device.writeIds, [
      { id: idA, data: 'from-a' },
      { id: idB, data: 'from-b' },
    ]);

    const gotA: string[] = [];
    const gotB: string[] = [];
    await connA.subscribe(TINY_SERVICE, CHAR_RW, (d) => gotA.push(d.toString()));
    await connB.subscribe(TINY_SERVICE, CHAR_RW, (d) => gotB.push(d.toString()));
    device.notifyLink(Buffer.from('only-b'), idB);
    device.notifyLink(Buffer.from('only-a'), idA);
    device.notifyLink(Buffer.from('everyone'));
    await settle(clock);
    assert.deepEqual(gotA, ['only-a', 'everyone']);
    assert.deepEqual(gotB, ['only-b', 'everyone']);

    // B leaves: the device hears B's id; A's link keeps working.
    await connB.disconnect();
    await settle(clock);
    assert.deepEqual(device.disconnectIds, [idB]);
    assert.ok(connA.connected);
    device.notifyLink(Buffer.from('still-a'), idA);
    device.notifyLink(Buffer.from('gone-b'), idB);
    await settle(clock);
    assert.deepEqual(gotA, ['only-a', 'everyone', 'still-a']);
    assert.deepEqual(gotB, ['only-b', 'everyone']);
    assert.deepEqual(radio.connectedDevices(1), []);
  });

  it('a device dropping one link ends that central’s connection only', async () => {
    const connA = await a.connect((await scanFor(a, 'tiny-1', clock))!.id);
    const connB = await b.connect((await scanFor(b, 'tiny-1', clock))!.id);
    await Promise.all([connA.discover(), connB.discover()]);
    const idB = device.connectIds[1];
    assert.equal(typeof idB, 'number');
    const dropped = new Promise<void>((resolve) => connB.once('disconnect', () => resolve()));
    device.host?.dropConnection('test', idB);
    await dropped;
    await settle(clock);
    assert.ok(connA.connected, 'A stays connected');
    assert.equal(await connA.read(TINY_SERVICE, CHAR_RW).then((v) => v.toString()), 'hello');
  });
});

describe('sim/fleet: addCentral', () => {
  it('gives a ready second central that connects to a device the first holds and reads Status through it', async () => {
    const fleet = await createSimFleet({ devices: [{ name: 'dev-1', chip: 'esp32c3', version: '1.0.0' }], clock: 'virtual' });
    try {
      await fleet.central.waitReady(1000);
      const second = await fleet.addCentral();
      assert.equal(second.state, 'poweredOn');
      const clock = fleet.clock as VirtualClock;
      const connect = async (central: BleCentral): Promise<BleConnection> => {
        const seen = await scanFor(central, 'dev-1', clock);
        assert.ok(seen, 'the device advertises');
        const conn = await central.connect(seen.id);
        await conn.discover();
        return conn;
      };
      const first = await connect(fleet.central);
      const other = await connect(second);
      const [statusA, statusB] = await Promise.all([first.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID), other.read(OTA_SERVICE_UUID, STATUS_CHAR_UUID)]);
      assert.ok(statusA.length > 20 && statusA.equals(statusB), 'both links read the same Status');
      assert.deepEqual(fleet.radio.connectedDevices(0), fleet.radio.connectedDevices(1));
    } finally {
      await fleet.close();
    }
  });
});
