/** V2Client logic against the scripted FakeDevice (window, go-back, probe, auth, stall, abort, resume). */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { V2Client, TransferProgress } from '../../lib/protocol/v2-client';
import { Caps, ErrorCode, Op } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';
import { FakeDevice, FakeDeviceOptions } from './fake-device';

/** Compressible but not trivial: repeated text with a counter. */
function compressibleImage(size: number): Buffer {
  const parts: string[] = [];
  for (let i = 0; parts.join('').length < size; i++) parts.push(`segment ${i} of an image with some structure;`);
  return Buffer.from(parts.join('')).subarray(0, size);
}

function setup(options: FakeDeviceOptions = {}, mtu = 247, fleetKey?: Buffer, signal?: AbortSignal, onProgress?: (p: TransferProgress) => void) {
  const clock = new VirtualClock();
  const device = new FakeDevice(clock, options);
  const conn = device.connect(mtu);
  const progress: TransferProgress[] = [];
  const client = new V2Client(conn, {
    clock,
    fleetKey,
    signal,
    onProgress: (p) => {
      progress.push(p);
      onProgress?.(p);
    },
  });
  return { clock, device, conn, client, progress };
}

async function rejects(p: Promise<unknown>, code: string): Promise<OtaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OtaError, `expected OtaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected rejection with ${code}`);
}

describe('V2Client against a scripted device', () => {
  it('transfers a raw image within the window and the device gets it byte for byte', async () => {
    const { device, conn, client, progress } = setup({ window: 2048, ackInterval: 512 });
    const image = randomBytes(20000);
    const info = await client.update({ image, encoding: 'auto' });
    assert.equal(info.encoding, 'raw', 'random data does not compress: auto stays raw');
    assert.equal(info.chunkSize, 240);
    assert.ok(device.completedImage?.equals(image));
    assert.ok(device.maxInFlight <= 2048, `in flight ${device.maxInFlight} > window`);
    assert.equal(client.bytesOnAir, conn.bytesWritten);
    const last = progress[progress.length - 1];
    assert.equal(last.bytesDone, image.length);
    assert.equal(last.percent, 100);
    assert.ok(progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1].bytesDone));
  });

  it('deflates when asked (auto) and reports progress in image bytes', async () => {
    const { device, client, progress } = setup();
    const image = compressibleImage(30000);
    const info = await client.update({ image, encoding: 'auto', reboot: false });
    assert.equal(info.encoding, 'deflate');
    assert.ok(info.transferSize < image.length * 0.95);
    assert.ok(device.completedImage?.equals(image));
    assert.equal(progress[progress.length - 1].bytesDone, image.length);
    assert.equal(progress[progress.length - 1].transferBytesAcked, info.transferSize);
  });

  it('stays raw on auto when the device does not deflate', async () => {
    const { client } = setup({ caps: Caps.RESUME });
    const info = await client.update({ image: compressibleImage(5000), encoding: 'auto' });
    assert.equal(info.encoding, 'raw');
  });

  it('goes back after a GAP NAK and resends from the expected offset', async () => {
    const { device, client } = setup({ loseOnce: [240 * 5, 240 * 30] });
    const image = randomBytes(15000);
    await client.update({ image, encoding: 'raw' });
    assert.ok(device.completedImage?.equals(image));
    assert.ok(device.log.includes('lost 1200') && device.log.includes('lost 7200'));
    assert.ok(client.retransmittedChunks > 0);
  });

  it('recovers a lost last chunk (no NAK can follow) by probing after the retransmit timeout', async () => {
    const image = randomBytes(240 * 10 + 17);
    const { device, client } = setup({ loseOnce: [240 * 10] });
    await client.update({ image, encoding: 'raw' });
    assert.ok(device.completedImage?.equals(image));
  });

  it('waits for a slow writer without resending what the device said it has (its DUPLICATE NAK comes once)', async () => {
    // Everything is on the device long before its writer acknowledges it (a flash-bound delta): the first
    // retransmit timeout probes, the DUPLICATE NAK says every byte arrived, and later timeouts and ACKs send nothing.
    const image = randomBytes(240 * 20);
    const { device, client } = setup({ window: 240 * 40, ackInterval: 240 * 20, ackDelayMs: 5000 });
    await client.update({ image, encoding: 'raw' });
    assert.ok(device.completedImage?.equals(image));
    assert.equal(device.dataWrites, 21, 'the 20 chunks and one probe');
  });

  it('fails with TIMEOUT when the device stops acknowledging', async () => {
    const { client, clock } = setup({ silentFrom: 4800 });
    const err = await rejects(client.update({ image: randomBytes(20000), encoding: 'raw' }), 'TIMEOUT');
    assert.ok(clock.now() >= 15000, 'waited the stall timeout in clock time');
    assert.match(err.message, /acknowledged nothing/);
  });

  it('tags BEGIN with the fleet key and the device accepts it', async () => {
    const key = randomBytes(32);
    const { device, client } = setup({ fleetKey: key }, 247, key);
    const image = randomBytes(3000);
    await client.update({ image, encoding: 'raw' });
    assert.ok(device.completedImage?.equals(image));
  });

  it('reports DEVICE_AUTH_FAILED with the device sentence for a wrong key', async () => {
    const { client } = setup({ fleetKey: randomBytes(32) }, 247, randomBytes(32));
    const err = await rejects(client.update({ image: randomBytes(3000), encoding: 'raw' }), 'DEVICE_AUTH_FAILED');
    assert.match(err.message, /^BEGIN: .*fleet key/);
    assert.equal(err.details?.deviceCode, ErrorCode.AUTH_FAILED);
  });

  it('refuses before BEGIN when the device needs a key and none is configured', async () => {
    const { device, client } = setup({ fleetKey: randomBytes(32) });
    await rejects(client.update({ image: randomBytes(3000), encoding: 'raw' }), 'FLEET_KEY_REQUIRED');
    assert.ok(!device.log.includes(`cmd ${Op.BEGIN}`));
  });

  it('maps a BEGIN error to DEVICE_<NAME>', async () => {
    const { client } = setup({ beginError: ErrorCode.IMAGE_TOO_LARGE });
    await rejects(client.update({ image: randomBytes(3000), encoding: 'raw' }), 'DEVICE_IMAGE_TOO_LARGE');
  });

  it('turns SESSION_ABORTED into DEVICE_<NAME> during the transfer', async () => {
    const { client } = setup({ abortWith: ErrorCode.WRONG_CHIP });
    const err = await rejects(client.update({ image: randomBytes(9000), encoding: 'raw' }), 'DEVICE_WRONG_CHIP');
    assert.match(err.message, /different chip/);
  });

  it('refuses an MTU that leaves less than 16 payload bytes per chunk', async () => {
    const { device, client } = setup({}, 22);
    await rejects(client.update({ image: randomBytes(100), encoding: 'raw' }), 'MTU_TOO_SMALL');
    assert.ok(!device.log.includes(`cmd ${Op.BEGIN}`));
  });

  it('sends ABORT (tagged) when cancelled mid-transfer and rejects with CANCELLED', async () => {
    const key = randomBytes(32);
    const controller = new AbortController();
    const cancelAfter = (p: TransferProgress) => {
      if (p.bytesDone > 10000) controller.abort();
    };
    const { device, client } = setup({ fleetKey: key }, 247, key, controller.signal, cancelAfter);
    await rejects(client.update({ image: randomBytes(50000), encoding: 'raw' }), 'CANCELLED');
    assert.ok(device.log.includes(`cmd ${Op.ABORT}`), 'ABORT was sent');
    assert.equal(device.session, null, 'the device dropped the session (the ABORT tag was accepted)');
  });

  it('lets END finish when the cancel comes after END was written: the device commits the image', async () => {
    const controller = new AbortController();
    const { device, client } = setup({ onEndReceived: () => controller.abort() }, 247, undefined, controller.signal);
    const image = randomBytes(8000);
    await client.update({ image, encoding: 'raw' });
    assert.ok(device.completedImage?.equals(image), 'the device installed the image');
    assert.ok(!device.log.includes(`cmd ${Op.ABORT}`), 'no ABORT after END');
  });

  it('reports DISCONNECTED and resumes on a new connection from the device offset', async () => {
    const { device, clock, client } = setup({ ackInterval: 1024, dropLinkAtAck: 10240 });
    const image = randomBytes(30000);
    await client.open();
    await client.begin({ image, encoding: 'raw', resume: true });
    await rejects(client.transfer(), 'DISCONNECTED');
    const kept = device.session?.lastAck ?? 0;
    assert.ok(kept >= 10240);
    const second = new V2Client(device.connect(185), { clock });
    const info = await second.begin({ image, payload: client.transferPayload ?? undefined, resume: true });
    assert.equal(info.resumeOffset, kept);
    assert.equal(info.chunkSize, 185 - 7);
    await second.transfer();
    await second.end();
    assert.ok(device.completedImage?.equals(image));
    assert.ok(device.log.includes(`resume ${kept}`));
  });

  it('sends CONFIRM, ROLLBACK and REBOOT with fresh nonces under a fleet key', async () => {
    const key = randomBytes(32);
    const { device, client } = setup({ fleetKey: key }, 247, key);
    await client.confirm();
    await client.rollback();
    await client.reboot();
    const challenges = device.log.filter((l) => l === `cmd ${Op.CHALLENGE}`).length;
    assert.equal(challenges, 3);
  });

  it('reads and decodes Status', async () => {
    const { client } = setup();
    const status = await client.readStatus();
    assert.equal(status.chip, 'esp32c3');
    assert.equal(status.otaStateName, 'valid');
  });

  it('reads Status for the protocol version (CHALLENGE no longer carries it) and refuses another one before BEGIN', async () => {
    const { device, client } = setup();
    assert.equal((await client.readStatus()).protoVersion, 2);
    const v2Status = device.statusValue.bind(device);
    device.statusValue = () => {
      const buf = v2Status();
      buf[1] = 3; // proto_version
      return buf;
    };
    assert.equal((await client.readStatus()).protoVersion, 3);
    await rejects(client.update({ image: randomBytes(4000), encoding: 'raw' }), 'PROTOCOL_VERSION_UNSUPPORTED');
    assert.ok(!device.log.includes(`cmd ${Op.BEGIN}`), 'no BEGIN was sent');
  });
});
