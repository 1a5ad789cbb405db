/**
 * flashDevice's delta side (encoding choice, base images, fallback, resume) against the scripted
 * FakeDevice of test/protocol behind a minimal BleCentral: the device part here is only what the host
 * logic needs (Status running_sha256, caps bit7, BASE_MISMATCH at BEGIN, the patch applied at END by an
 * independent reading of PROTOCOL.md §13); the device models are tested by the conformance suite.
 */
import { strict as assert } from 'assert';
import { EventEmitter } from 'events';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { BleCentral, BleConnection, DiscoveredDevice, ScanHandle } from '../../lib/ble/central';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { buildSyntheticPair } from '../../lib/bench/images';
import { ImageStore } from '../../lib/delta/image-store';
import { OtaError } from '../../lib/errors';
import { appHash, buildAppImage } from '../../lib/image';
import { flashDevice } from '../../lib/ota/flash';
import type { FlashOptions } from '../../lib/ota/types';
import { BeginCommand, decodeCommand } from '../../lib/protocol/codec';
import { prepareWholeImagePayload } from '../../lib/protocol/payload';
import { Caps, ErrorCode, OTA_SERVICE_UUID, Op } from '../../lib/protocol/constants';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { FakeDevice, type FakeDeviceOptions } from '../protocol/fake-device';

const NAME = 'fake-01';

/** One FakeDevice that advertises every 100 ms while scanned for; each connect is a new link to it. */
class FakeCentral extends EventEmitter implements BleCentral {
  readonly state = 'poweredOn' as const;

  constructor(
    readonly clock: VirtualClock,
    private readonly device: FakeDevice,
  ) {
    super();
  }

  async waitReady(): Promise<void> {}

  async startScan(_options: unknown, onDevice: (d: DiscoveredDevice) => void): Promise<ScanHandle> {
    let stopped = false;
    const advertise = () => {
      if (stopped) return;
      onDevice({ id: 'fake', address: '24:0a:c4:12:34:56', name: NAME, rssi: -50, advertisement: { localName: NAME, serviceUuids: [OTA_SERVICE_UUID] }, seenAt: this.clock.now() });
      this.clock.setTimer(advertise, 100);
    };
    this.clock.setTimer(advertise, 10);
    return { stop: async () => void (stopped = true) };
  }

  async connect(): Promise<BleConnection> {
    return this.device.connect(247);
  }

  async close(): Promise<void> {}
}

const pair = buildSyntheticPair({ size: 128 * 1024 });
const unrelated = buildAppImage({ chip: 'esp32c3', version: '1.9.0', projectName: 'other', size: 128 * 1024, seed: 77 });
const DELTA_DEVICE = Caps.DEFLATE | Caps.RESUME | Caps.DELTA;

describe('flashDevice with delta updates (host side)', function () {
  this.timeout(30000);
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  function storeWith(...images: Buffer[]): ImageStore {
    const dir = mkdtempSync(join(tmpdir(), 'ble-ota-delta-'));
    dirs.push(dir);
    const store = new ImageStore(dir);
    for (const i of images) store.add(i);
    return store;
  }

  /** Runs one flash; returns the result (or the error) and every BEGIN the device received. */
  async function flash(device: Partial<FakeDeviceOptions>, options: Partial<FlashOptions>, beforeControl?: (fake: FakeDevice, data: Buffer) => void) {
    const clock = new VirtualClock();
    const fake = new FakeDevice(clock, { caps: DELTA_DEVICE, runningImage: pair.base, ...device });
    const begins: BeginCommand[] = [];
    const onControl = fake.onControl.bind(fake);
    fake.onControl = (data: Buffer) => {
      if (data[0] === Op.BEGIN) begins.push(decodeCommand(data) as BeginCommand);
      beforeControl?.(fake, data);
      onControl(data);
    };
    const scheduler = new AdapterScheduler(new FakeCentral(clock, fake), { readyTimeoutMs: 1000 });
    try {
      const result = await flashDevice(scheduler, { device: NAME, image: pair.image, preventDowngrade: false, reboot: false, maxAttempts: 3, ...options });
      return { result, error: null, begins, fake };
    } catch (err) {
      assert.ok(err instanceof OtaError, String(err));
      return { result: null, error: err, begins, fake };
    } finally {
      await scheduler.close();
    }
  }

  it("'auto' sends a patch against the running image when the store holds it, and the device ends with the new image", async () => {
    const store = storeWith(pair.base);
    const { result, begins, fake } = await flash({}, { baseImages: store });
    assert.ok(result);
    assert.equal(result.encoding, 'delta');
    assert.equal(result.base, appHash(pair.base).toString('hex'));
    assert.equal(begins.length, 1);
    assert.equal(begins[0].encoding, 2);
    assert.ok(begins[0].baseSha256?.equals(appHash(pair.base)));
    assert.equal(begins[0].transferSize, result.patchBytes);
    assert.ok(fake.completedImage?.equals(pair.image), 'the device decoded exactly the new image');
    const deflated = (await prepareWholeImagePayload(pair.image, 'deflate', Caps.DEFLATE)).transfer.length;
    assert.ok(result.bytesOnAir < deflated / 5, `bytes on air ${result.bytesOnAir} vs deflated image ${deflated}`);
    assert.equal(result.deltaFallback, null);
    assert.ok(store.find(appHash(pair.image)), 'the flashed image became a base for the next update');
  });

  it('takes a directory path as baseImages and sends the whole image when no base matches', async () => {
    const store = storeWith(unrelated);
    const { result, begins } = await flash({}, { baseImages: store.dir });
    assert.ok(result);
    assert.equal(result.encoding, 'deflate');
    assert.equal(result.base, null);
    assert.equal(result.patchBytes, null);
    assert.equal(begins[0].encoding, 1);
    assert.ok(begins[0].baseSha256?.equals(Buffer.alloc(32)));
    assert.ok(readdirSync(store.dir).includes(`${appHash(pair.image).toString('hex')}.bin`));
  });

  it("'auto' keeps the whole image when the patch is not below 0.9 x the deflated image (unrelated base)", async () => {
    const store = storeWith(unrelated);
    const { result, begins } = await flash({ runningImage: unrelated }, { baseImages: store });
    assert.ok(result);
    assert.equal(result.encoding, 'deflate');
    assert.equal(result.base, null);
    const deflated = (await prepareWholeImagePayload(pair.image, 'deflate', Caps.DEFLATE)).transfer.length;
    assert.ok(result.patchBytes !== null && result.patchBytes >= 0.9 * deflated, `patch ${result.patchBytes} vs the deflated image the flash would send ${deflated}`);
    assert.equal(begins[0].encoding, 1);
  });

  it("'delta' without a base fails with BASE_UNKNOWN before BEGIN; on a device without caps bit7 with DELTA_UNSUPPORTED", async () => {
    const none = await flash({}, { encoding: 'delta' });
    assert.equal(none.error?.code, 'BASE_UNKNOWN');
    assert.match(none.error?.message ?? '', /no base images directory/);
    const missing = await flash({}, { encoding: 'delta', baseImages: storeWith(unrelated) });
    assert.equal(missing.error?.code, 'BASE_UNKNOWN');
    assert.match(missing.error?.message ?? '', new RegExp(appHash(pair.base).toString('hex')));
    const old = await flash({ caps: Caps.DEFLATE | Caps.RESUME }, { encoding: 'delta', baseImages: storeWith(pair.base) });
    assert.equal(old.error?.code, 'DELTA_UNSUPPORTED');
    for (const run of [none, missing, old]) assert.equal(run.begins.length, 0, 'nothing sent');
  });

  it('sends the whole image once when the device answers BASE_MISMATCH, and says so in the result', async () => {
    let swapped = false;
    const { result, begins, fake } = await flash({}, { encoding: 'delta', baseImages: storeWith(pair.base) }, (device, data) => {
      // The device runs another image by the time BEGIN arrives (updated meanwhile by someone else).
      if (data[0] === Op.BEGIN && !swapped) {
        swapped = true;
        device.opts.runningImage = unrelated;
      }
    });
    assert.ok(result, 'not a failure');
    assert.equal(result.encoding, 'deflate');
    assert.equal(result.attempts, 1);
    assert.deepEqual({ ...result.deltaFallback, message: undefined }, { from: 'delta', to: 'deflate', code: 'DEVICE_BASE_MISMATCH', message: undefined });
    assert.deepEqual(begins.map((b) => [b.encoding, b.flags & 1]), [[2, 0], [1, 0]]);
    assert.ok(fake.completedImage?.equals(pair.image));
  });

  it('sends the whole image once when the device aborts the session with PATCH_INVALID', async () => {
    const { result, begins, fake } = await flash({ abortWith: ErrorCode.PATCH_INVALID }, { baseImages: storeWith(pair.base) });
    assert.ok(result);
    assert.equal(result.encoding, 'deflate');
    assert.equal(result.deltaFallback?.code, 'DEVICE_PATCH_INVALID');
    assert.deepEqual(begins.map((b) => [b.encoding, b.flags & 1]), [[2, 0], [1, 0]], 'the whole image starts fresh, it does not resume the patch');
    assert.ok(fake.completedImage?.equals(pair.image));
  });

  it('a second refusal of the whole image is the error itself (one fallback only)', async () => {
    const { error } = await flash({ beginError: ErrorCode.BASE_MISMATCH }, { baseImages: storeWith(pair.base) });
    assert.equal(error?.code, 'DEVICE_BASE_MISMATCH');
  });

  it('resumes a delta session after a lost link with the same BEGIN and the same transfer bytes', async () => {
    const store = storeWith(pair.base);
    const { result, begins, fake } = await flash({ dropLinkAtAck: 200, maxChunk: 100, ackInterval: 100, window: 200 }, { baseImages: store });
    assert.ok(result);
    assert.equal(result.encoding, 'delta');
    assert.ok(begins[0].transferSize > 300, `a patch of ${begins[0].transferSize} bytes is too short to be cut at 200`);
    assert.equal(result.attempts, 2);
    assert.equal(begins.length, 2);
    const [first, second] = begins;
    assert.equal(second.flags & 1, 1, 'resume flag');
    for (const field of ['encoding', 'imageSize', 'transferSize'] as const) assert.equal(second[field], first[field], field);
    assert.ok(second.sha256.equals(first.sha256) && second.baseSha256?.equals(first.baseSha256 as Buffer));
    assert.ok(fake.log.some((l) => /^resume [1-9]/.test(l)), fake.log.join(','));
    assert.ok(fake.completedImage?.equals(pair.image));
  });

  it('refuses a baseImages that is neither a store nor a path before the radio is touched', async () => {
    const { error, begins } = await flash({}, { baseImages: 42 as never });
    assert.equal(error?.code, 'BAD_OPTION');
    assert.equal(begins.length, 0);
  });
});
