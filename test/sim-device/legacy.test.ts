/** The seed firmware model against every point of shared/seed/seed-protocol.md (docs/PROTOCOL.md §4.6). */
import { strict as assert } from 'assert';
import { sleep } from '../../lib/clock';
import { buildAppImage } from '../../lib/image/builder';
import { LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LegacyOp, OtaStateCode } from '../../lib/protocol/constants';
import { createSimDevice } from '../../lib/sim/device';
import type { LegacyFirmware } from '../../lib/sim/device/legacy-firmware';
import { AttError, type SimDeviceConfig } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { FakeHost, Rig, afterReboot, until } from './harness';

const SERVICE = 'd6f1d96d594c4c53b1c6144a1dfde6d8';

/** FakeHost that also records the links a device loses without LL_TERMINATE (PeripheralHost.loseConnection). */
class SeedHost extends FakeHost {
  readonly lost: Array<{ reason: string; at: number }> = [];

  loseConnection(reason: string): void {
    this.lost.push({ reason, at: this.clock.now() });
  }
}

interface SeedRig extends Rig {
  host: SeedHost;
}

function seedRig(config: Partial<SimDeviceConfig> = {}): SeedRig {
  const clock = new VirtualClock();
  const host = new SeedHost(clock);
  const device = createSimDevice({ protocol: 'legacy', name: 'line-3-seed', chip: 'esp32', version: '0.1.0', ...config }, clock);
  device.attach(host);
  return { clock, host, device };
}

function firmware(rig: Rig): LegacyFirmware {
  return rig.device.application as LegacyFirmware;
}

function controlNotifications(rig: Rig): number[] {
  return rig.host.sent.filter((s) => s.characteristic === LEGACY_CONTROL_UUID).map((s) => s.data[0]);
}

async function writeData(rig: Rig, value: Buffer): Promise<number> {
  const start = rig.clock.now();
  await rig.clock.runUntil(Promise.resolve(rig.device.onWrite(SERVICE, LEGACY_DATA_UUID, value, false)));
  return rig.clock.now() - start;
}

/** A Control write; resolves with whether the write was answered within `waitMs` of modeled time. */
async function writeControl(rig: Rig, value: number, waitMs = 2000): Promise<boolean> {
  let answered = false;
  void Promise.resolve(rig.device.onWrite(SERVICE, LEGACY_CONTROL_UUID, Buffer.from([value]), false)).then(
    () => (answered = true),
    () => (answered = true),
  );
  await until(rig.clock, () => answered, waitMs).catch(() => undefined);
  return answered;
}

/** The seed client's sequence up to (not including) DONE; returns the response time of every data write. */
async function seedTransfer(rig: Rig, image: Buffer, packetSize: number): Promise<number[]> {
  rig.device.onConnect(packetSize + 3);
  const size = Buffer.alloc(2);
  size.writeUInt16LE(packetSize);
  await writeData(rig, size);
  assert.equal(await writeControl(rig, LegacyOp.REQUEST), true);
  assert.equal(controlNotifications(rig).at(-1), LegacyOp.REQUEST_ACK);
  const times: number[] = [];
  for (let off = 0; off < image.length; off += packetSize) times.push(await writeData(rig, image.subarray(off, off + packetSize)));
  return times;
}

describe('sim-device legacy (seed firmware model)', () => {
  it('GATT table and Device Information as gatt_svr.c registers them', async () => {
    const rig = seedRig();
    assert.deepEqual(
      rig.device.gatt().map((s) => [s.uuid, s.characteristics.map((c) => [c.uuid, c.properties])]),
      [
        ['180a', [['2a29', ['read']], ['2a24', ['read']]]],
        [SERVICE, [[LEGACY_CONTROL_UUID, ['read', 'write', 'notify']], [LEGACY_DATA_UUID, ['write']]]],
      ],
    );
    assert.equal((await rig.device.onRead('180a', '2a29')).toString(), 'Company 42');
    assert.equal((await rig.device.onRead('180a', '2a24')).toString(), 'ESP32');
  });

  it('advertises Flags 0x06, TX power and the name "esp32" and no service UUID, whatever its fleet name; not while connected', () => {
    const rig = seedRig({ name: 'line-3-seed' });
    assert.equal(rig.device.name, 'line-3-seed', 'the fleet name stays the lookup key');
    assert.deepEqual(rig.device.advertisement(), { flags: 0x06, txPowerLevel: 3, localName: 'esp32', serviceUuids: [] });
    rig.device.onConnect(256);
    assert.equal(rig.device.advertisement(), null, 'advertising stops on connect (gap.c)');
    rig.device.onDisconnect();
    assert.equal(rig.device.advertisement()?.localName, 'esp32', 'and resumes on disconnect');
  });

  it('takes ESP-IDF defaults: ATT MTU 256 and 1 MiB OTA partitions', () => {
    const rig = seedRig();
    assert.equal(rig.device.maxMtu, 256);
    assert.equal(rig.device.flash.partitionSize, 0x100000);
  });

  it('Control takes exactly 1 byte; Data 1 to 512 bytes (packet_size 514 at MTU 517 fails every write)', async () => {
    const rig = seedRig();
    const attError = (e: unknown) => e instanceof AttError && e.attCode === 0x0d;
    await assert.rejects(Promise.resolve().then(() => rig.device.onWrite(SERVICE, LEGACY_DATA_UUID, Buffer.alloc(514, 0xe9), false)), attError);
    await assert.rejects(Promise.resolve().then(() => rig.device.onWrite(SERVICE, LEGACY_DATA_UUID, Buffer.alloc(0), false)), attError);
    await assert.rejects(Promise.resolve().then(() => rig.device.onWrite(SERVICE, LEGACY_CONTROL_UUID, Buffer.from([1, 0]), false)), attError);
    assert.deepEqual(controlNotifications(rig), [], 'a refused Control value starts nothing');
  });

  it('notifies REQUEST_ACK inside the REQUEST write, before its response', async () => {
    const rig = seedRig();
    rig.device.onConnect(256);
    await writeData(rig, Buffer.from([253, 0]));
    const before = controlNotifications(rig).length;
    const pending = rig.device.onWrite(SERVICE, LEGACY_CONTROL_UUID, Buffer.from([LegacyOp.REQUEST]), false);
    assert.deepEqual(controlNotifications(rig).slice(before), [LegacyOp.REQUEST_ACK], 'notified while the write is being handled');
    await pending;
    assert.deepEqual([...(await rig.device.onRead(SERVICE, LEGACY_CONTROL_UUID))], [LegacyOp.REQUEST_ACK]);
  });

  it('DONE with a good image: DONE_ACK, the write is never answered, restart after 500 ms without LL_TERMINATE; new image marked valid at boot', async () => {
    const rig = seedRig();
    const image = buildAppImage({ chip: 'esp32', version: '0.2.0', size: 100 * 1024 + 48 });
    await seedTransfer(rig, image, 253);
    const doneAt = rig.clock.now();
    const answered = writeControl(rig, LegacyOp.DONE, 5000);
    await afterReboot(rig);
    assert.equal(await answered, false, 'the DONE write is never answered');
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_ACK);
    assert.deepEqual(rig.host.lost.map((l) => l.at - doneAt), [500], 'the restart cuts the link 500 ms after DONE');
    assert.deepEqual(rig.host.drops, [], 'no LL_TERMINATE');
    assert.equal(rig.device.machine.restarts.length, 1);
    assert.equal(rig.device.flash.otadata.state(1), OtaStateCode.VALID, 'confirmed at boot, unchecked');
    assert.ok(rig.device.flash.imageBytes(1).subarray(0, image.length).equals(image));
    assert.deepEqual([...(await rig.device.onRead(SERVICE, LEGACY_CONTROL_UUID))], [LegacyOp.NOP], 'Control is NOP again after the restart');
  });

  it('DONE with a bad image: DONE_NAK, the write is answered, no restart, the old image keeps running', async () => {
    const rig = seedRig();
    const image = Buffer.from(buildAppImage({ chip: 'esp32', version: '0.2.0', size: 40 * 1024 }));
    image[30000] ^= 0x01;
    await seedTransfer(rig, image, 244);
    assert.equal(await writeControl(rig, LegacyOp.DONE), true, 'the DONE write is answered');
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_NAK);
    await sleep(rig.clock, 3000);
    assert.equal(rig.device.machine.restarts.length, 0);
    assert.equal(rig.device.machine.state, 'running');
    assert.deepEqual([...(await rig.device.onRead(SERVICE, LEGACY_CONTROL_UUID))], [LegacyOp.DONE_NAK], 'Control keeps DONE_NAK');
    assert.equal(rig.device.flash.otadata.selectionOrder()[0], 0);
  });

  it('pads a short last packet with stale bytes of the previous one; the write entering a new sector waits for its erase', async () => {
    const rig = seedRig();
    const image = buildAppImage({ chip: 'esp32', version: '0.2.0', size: 100 * 1024 + 48 });
    const packet = 253;
    const times = await seedTransfer(rig, image, packet);
    const flashed = rig.device.flash.imageBytes(1);
    const lastStart = Math.floor((image.length - 1) / packet) * packet;
    const tail = flashed.subarray(image.length, lastStart + packet);
    const stale = image.subarray(lastStart - packet + (image.length - lastStart), lastStart);
    assert.ok(tail.length > 0 && tail.equals(stale));
    const slow = times.filter((t) => t >= 45);
    assert.equal(slow.length, Math.ceil(flashed.length / 4096));
    assert.ok(times.filter((t) => t < 45).every((t) => t <= 0.8 + 1e-9));
  });

  it('a Data write it cannot copy still writes the previous packet again while updating', async () => {
    const rig = seedRig();
    const image = buildAppImage({ chip: 'esp32', version: '0.2.0', size: 8 * 1024 });
    rig.device.onConnect(256);
    await writeData(rig, Buffer.from([16, 0]));
    await writeControl(rig, LegacyOp.REQUEST);
    await writeData(rig, image.subarray(0, 16));
    await assert.rejects(Promise.resolve(rig.device.onWrite(SERVICE, LEGACY_DATA_UUID, Buffer.alloc(0), false)), (e: unknown) => e instanceof AttError);
    assert.ok(rig.device.flash.imageBytes(1).subarray(16, 32).equals(image.subarray(0, 16)), 'bytes 16..32 repeat the first packet');
  });

  it('only logs esp_ota_write errors: a wrong first byte is accepted write by write, then DONE_NAK', async () => {
    const rig = seedRig();
    const image = Buffer.from(buildAppImage({ chip: 'esp32', version: '0.2.0', size: 8 * 1024 }));
    image[0] = 0x00;
    await seedTransfer(rig, image, 253);
    assert.ok(firmware(rig).log.some((l) => /ESP_ERR_OTA_VALIDATE_FAILED/.test(l)));
    await writeControl(rig, LegacyOp.DONE);
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_NAK);
  });

  it('an image larger than the partition is received whole, the writes past the end fail in the log, then DONE_NAK', async () => {
    const rig = seedRig({ otaPartitionSize: 0x30000 });
    const image = buildAppImage({ chip: 'esp32', version: '0.2.0', size: 0x30000 + 8 * 1024 });
    await seedTransfer(rig, image, 253);
    assert.ok(firmware(rig).log.some((l) => /ESP_ERR_INVALID_SIZE/.test(l)));
    await writeControl(rig, LegacyOp.DONE);
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_NAK);
  });

  it('the padded last packet overshoots the partition end for an image a few bytes under it: DONE_NAK', async () => {
    const rig = seedRig({ otaPartitionSize: 0x40000 });
    const image = buildAppImage({ chip: 'esp32', version: '0.2.0', size: 0x40000 - 16 });
    assert.ok(image.length <= 0x40000 && Math.ceil(image.length / 253) * 253 > 0x40000);
    await seedTransfer(rig, image, 253);
    await writeControl(rig, LegacyOp.DONE);
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_NAK);
    // The same image in packets whose padded end stays inside the partition is taken.
    const again = seedRig({ otaPartitionSize: 0x40000 });
    await seedTransfer(again, image, 16);
    void writeControl(again, LegacyOp.DONE);
    await afterReboot(again);
    assert.equal(controlNotifications(again).at(-1), LegacyOp.DONE_ACK);
  });

  it('has no resume: after a disconnect a new REQUEST starts over at 0 and still succeeds', async () => {
    const rig = seedRig();
    const image = buildAppImage({ chip: 'esp32', version: '0.3.0', size: 30 * 1024 });
    rig.device.onConnect(247);
    await writeData(rig, Buffer.from([244, 0]));
    await writeControl(rig, LegacyOp.REQUEST);
    for (let off = 0; off < 10000; off += 244) await writeData(rig, image.subarray(off, off + 244));
    rig.device.onDisconnect();
    await seedTransfer(rig, image, 244);
    void writeControl(rig, LegacyOp.DONE);
    await until(rig.clock, () => rig.device.machine.restarts.length === 1, 2000);
    assert.equal(controlNotifications(rig).at(-1), LegacyOp.DONE_ACK);
  });
});
