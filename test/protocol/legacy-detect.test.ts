/** Legacy (seed) client against a scripted seed device, and protocol detection from GATT tables. */
import { strict as assert } from 'assert';
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import type { BleConnection, GattServiceInfo } from '../../lib/ble/central';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { LegacyClient, checkLegacyImageSize, legacyPacketPlan, legacyPacketSize } from '../../lib/protocol/legacy-client';
import { detectProtocol } from '../../lib/protocol/detect';
import { LEGACY_CONTROL_UUID, LEGACY_DATA_UUID, LEGACY_SERVICE_UUIDS, LegacyOp, OTA_SERVICE_UUID } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';
import { codeOf } from '../helpers/errors';

/**
 * The seed's GATT behaviour (seed-protocol.md): 2-byte packet size on Data, 1-byte control values, ACK/NAK
 * notified inside the write callback, and after DONE_ACK the write is never answered: the link drops
 * `dropAfterAckMs` later (null: it never drops).
 */
class SeedConnection extends EventEmitter implements BleConnection {
  readonly deviceId = 'seed';
  connected = true;
  packetSize = 0;
  updating = false;
  received: Buffer[] = [];
  writes: Array<{ characteristic: string; length: number; withoutResponse: boolean; first: number }> = [];
  /** DONE reached the device but its ACK/NAK is never delivered (the link dies first). */
  loseDoneAnswer = false;
  /** REQUEST_NAKs before the configured answer (a seed on ESP-IDF >= 6.1 after an interrupted transfer). */
  naksBeforeAck = 0;
  private notify: ((b: Buffer) => void) | null = null;

  constructor(
    readonly mtu: number,
    private readonly clock: VirtualClock,
    private readonly answers: { request: number; done: number } = { request: LegacyOp.REQUEST_ACK, done: LegacyOp.DONE_ACK },
    private readonly dropAfterAckMs: number | null = 500,
  ) {
    super();
  }

  private drop(): void {
    if (!this.connected) return;
    this.connected = false;
    this.emit('disconnect', 'connection timeout');
  }

  async discover(): Promise<GattServiceInfo[]> {
    return [];
  }

  async read(): Promise<Buffer> {
    return Buffer.from([0]);
  }

  async write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    assert.equal(service, LEGACY_SERVICE_UUIDS[0]);
    if (!this.connected) throw new OtaError('DISCONNECTED', 'not connected');
    this.writes.push({ characteristic, length: data.length, withoutResponse, first: data[0] });
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
        const answer = this.naksBeforeAck > 0 ? (this.naksBeforeAck--, LegacyOp.REQUEST_NAK) : this.answers.request;
        this.updating = answer === LegacyOp.REQUEST_ACK;
        this.clock.setTimer(() => this.notify?.(Buffer.from([answer])), 1);
      } else if (data[0] === LegacyOp.DONE) {
        if (this.loseDoneAnswer) {
          this.drop();
          return new Promise<void>(() => undefined);
        }
        this.notify?.(Buffer.from([this.answers.done]));
        if (this.answers.done === LegacyOp.DONE_ACK) {
          // Restart inside the callback: no Write Response, the link drops later.
          if (this.dropAfterAckMs !== null) this.clock.setTimer(() => this.drop(), this.dropAfterAckMs);
          return new Promise<void>((_resolve, reject) => this.once('disconnect', () => reject(new OtaError('DISCONNECTED', 'link lost'))));
        }
      }
    }
  }

  async subscribe(_s: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void> {
    assert.equal(characteristic, LEGACY_CONTROL_UUID);
    this.notify = onValue;
  }

  async disconnect(): Promise<void> {
    this.drop();
  }
}

describe('LegacyClient (seed protocol)', () => {
  it('caps packet_size at 512 and never exceeds MTU - 3', () => {
    assert.equal(legacyPacketSize(23), 20);
    assert.equal(legacyPacketSize(256), 253);
    assert.equal(legacyPacketSize(517), 512);
  });

  it('picks a packet size whose padded last packet stays inside the partition', () => {
    assert.equal(legacyPacketPlan(256, 100000), 253, 'far below the partition end: the MTU decides');
    const len = 0x100000 - 16;
    const size = legacyPacketPlan(256, len);
    assert.ok(size < 253 && Math.ceil(len / size) * size <= 0x100000, `packet size ${size}`);
    assert.ok(Math.ceil(len / (size + 1)) * (size + 1) > 0x100000 || size + 1 > 253, 'the largest such size');
    assert.equal(legacyPacketPlan(256, 0x100000), 128, 'an image exactly the partition size needs a packet size dividing it');
  });

  it('refuses an image larger than the seed partition before writing anything', async () => {
    const clock = new VirtualClock();
    const conn = new SeedConnection(256, clock);
    const client = new LegacyClient(conn, { clock });
    assert.equal(await codeOf(client.update(randomBytes(0x100000 + 1))), 'LEGACY_IMAGE_TOO_LARGE');
    assert.equal(conn.writes.length, 0);
    assert.throws(() => checkLegacyImageSize(0x100001), (e: unknown) => e instanceof OtaError && /legacyPartitionSize/.test(e.message));
    assert.doesNotThrow(() => checkLegacyImageSize(0x100001, 0x180000));
  });

  it('never awaits the DONE write: DONE_ACK then the link drop is success', async () => {
    const clock = new VirtualClock();
    const conn = new SeedConnection(256, clock, undefined, 0);
    const client = new LegacyClient(conn, { clock });
    await clock.runUntil(client.update(randomBytes(3000)));
    assert.equal(client.doneSent, true);
    assert.equal(conn.writes.at(-1)?.length, 1, 'DONE was the last write');
  });

  it('DONE_ACK with a link that stays up (the write unanswered) is success too', async () => {
    const clock = new VirtualClock();
    const conn = new SeedConnection(256, clock, undefined, null);
    const client = new LegacyClient(conn, { clock, doneTimeoutMs: 1000 });
    assert.equal(await codeOf(clock.runUntil(client.update(randomBytes(3000)))), 'RESOLVED');
  });

  it('a link lost after DONE was sent, before DONE_ACK / DONE_NAK, is DISCONNECTED marked doneSent', async () => {
    const clock = new VirtualClock();
    const conn = new SeedConnection(256, clock);
    conn.loseDoneAnswer = true;
    const client = new LegacyClient(conn, { clock });
    await assert.rejects(clock.runUntil(client.update(randomBytes(3000))), (e: unknown) => e instanceof OtaError && e.code === 'DISCONNECTED' && e.details?.doneSent === true);
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

  it('sends REQUEST once more after a REQUEST_NAK (the NAK freed the leaked handle), not a third time', async () => {
    for (const [naks, expected] of [
      [1, 'RESOLVED'],
      [2, 'LEGACY_REQUEST_NAK'],
    ] as const) {
      const clock = new VirtualClock();
      const conn = new SeedConnection(256, clock);
      conn.naksBeforeAck = naks;
      const client = new LegacyClient(conn, { clock });
      assert.equal(await codeOf(client.update(randomBytes(1000))), expected);
      const requests = conn.writes.filter((w) => w.characteristic === LEGACY_CONTROL_UUID && w.first === LegacyOp.REQUEST);
      assert.equal(requests.length, 2, 'two REQUESTs, never a third');
    }
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
