/** Legacy (seed) client against a scripted seed device, and protocol detection from GATT tables. */
import { strict as assert } from 'assert';
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import type { BleConnection, GattServiceInfo } from '../../lib/ble/central';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { LegacyClient, legacyPacketSize } from '../../lib/protocol/legacy-client';
import { detectProtocol } from '../../lib/protocol/detect';
import { LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LEGACY_SERVICE_UUIDS, LegacyOp, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';

/** The seed's GATT behaviour (seed-protocol.md): 2-byte packet size on Data, 1-byte control values. */
class SeedConnection extends EventEmitter implements BleConnection {
  readonly deviceId = 'seed';
  connected = true;
  packetSize = 0;
  updating = false;
  received: Buffer[] = [];
  writes: Array<{ characteristic: string; length: number; withoutResponse: boolean }> = [];
  private notify: ((b: Buffer) => void) | null = null;

  constructor(
    readonly mtu: number,
    private readonly clock: VirtualClock,
    private readonly answers: { request: number; done: number } = { request: LegacyOp.REQUEST_ACK, done: LegacyOp.DONE_ACK },
  ) {
    super();
  }

  async discover(): Promise<GattServiceInfo[]> {
    return [];
  }

  async read(): Promise<Buffer> {
    return Buffer.from([0]);
  }

  async write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    assert.equal(service, LEGACY_SERVICE_UUIDS[0]);
    this.writes.push({ characteristic, length: data.length, withoutResponse });
    await new Promise<void>((r) => this.clock.setTimer(r, 2));
    if (characteristic === LEGACY_DATA_UUID) {
      if (!this.updating) this.packetSize = data.readUInt16LE(0);
      else {
        assert.ok(data.length <= this.packetSize && data.length <= 512);
        this.received.push(Buffer.from(data));
      }
    } else if (characteristic === LEGACY_CONTROL_UUID) {
      assert.equal(data.length, 1);
      if (data[0] === LegacyOp.REQUEST) {
        this.updating = this.answers.request === LegacyOp.REQUEST_ACK;
        this.clock.setTimer(() => this.notify?.(Buffer.from([this.answers.request])), 1);
      } else if (data[0] === LegacyOp.DONE) {
        this.clock.setTimer(() => this.notify?.(Buffer.from([this.answers.done])), 1);
      }
    }
  }

  async subscribe(_s: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void> {
    assert.equal(characteristic, LEGACY_CONTROL_UUID);
    this.notify = onValue;
  }

  async disconnect(): Promise<void> {
    this.connected = false;
  }
}

describe('LegacyClient (seed protocol)', () => {
  it('caps packet_size at 512 and never exceeds MTU - 3', () => {
    assert.equal(legacyPacketSize(23), 20);
    assert.equal(legacyPacketSize(256), 253);
    assert.equal(legacyPacketSize(517), 512);
  });

  it('sends packet size, REQUEST, the image with response, DONE, and the device gets the image', async () => {
    const clock = new VirtualClock();
    const conn = new SeedConnection(256, clock);
    const client = new LegacyClient(conn, { clock });
    const image = randomBytes(5000);
    await client.update(image);
    assert.equal(conn.packetSize, 253);
    assert.deepEqual(Buffer.concat(conn.received), image);
    assert.ok(conn.writes.every((w) => !w.withoutResponse), 'every seed write is with response');
    assert.equal(client.bytesOnAir, 2 + 1 + image.length + 1);
  });

  it('reports REQUEST_NAK and DONE_NAK as distinct errors', async () => {
    for (const [answers, code] of [
      [{ request: LegacyOp.REQUEST_NAK, done: LegacyOp.DONE_ACK }, 'LEGACY_REQUEST_NAK'],
      [{ request: LegacyOp.REQUEST_ACK, done: LegacyOp.DONE_NAK }, 'LEGACY_DONE_NAK'],
    ] as const) {
      const clock = new VirtualClock();
      const client = new LegacyClient(new SeedConnection(247, clock, answers), { clock });
      await assert.rejects(client.update(randomBytes(1000)), (e: unknown) => e instanceof OtaError && e.code === code);
    }
  });
});

describe('detectProtocol', () => {
  const char = (uuid: string) => ({ uuid, properties: ['write'] });
  it('prefers v2, then either seed service UUID, then the seed characteristics', () => {
    const seed144: GattServiceInfo = { uuid: LEGACY_SERVICE_UUIDS[0], characteristics: [] };
    const seed244: GattServiceInfo = { uuid: LEGACY_SERVICE_UUIDS[1], characteristics: [] };
    const v2: GattServiceInfo = { uuid: OTA_SERVICE_UUID, characteristics: [] };
    assert.deepEqual(detectProtocol([seed144, v2]), { protocol: 'v2', serviceUuid: OTA_SERVICE_UUID });
    assert.equal(detectProtocol([seed144]).protocol, 'legacy');
    assert.equal(detectProtocol([seed244]).serviceUuid, LEGACY_SERVICE_UUIDS[1]);
    const other = { uuid: '1234', characteristics: [char(LEGACY_CONTROL_UUID), char(LEGACY_DATA_UUID)] };
    assert.deepEqual(detectProtocol([other]), { protocol: 'legacy', serviceUuid: '1234' });
    assert.equal(detectProtocol([{ uuid: 'D6F1D96D-594C-4C53-B1C6-144A1DFDE6D8', characteristics: [] }]).protocol, 'legacy');
  });

  it('throws NOT_OTA_DEVICE otherwise', () => {
    assert.throws(() => detectProtocol([{ uuid: '180a', characteristics: [char('2a29')] }]), (e: unknown) => e instanceof OtaError && e.code === 'NOT_OTA_DEVICE');
  });
});
