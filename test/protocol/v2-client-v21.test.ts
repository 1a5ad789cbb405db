/** V2Client revision 2.1 against the scripted FakeDevice: BEGIN with manifest and delta base, PROVISION, Status formats, caps. */
import { strict as assert } from 'assert';
import { createHash, randomBytes } from 'crypto';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { V2Client } from '../../lib/protocol/v2-client';
import { prepareDeltaPayload } from '../../lib/protocol/payload';
import { Caps, ErrorCode, Op } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';
import { FakeDevice, FakeDeviceOptions } from './fake-device';

function setup(options: FakeDeviceOptions = {}, fleetKey?: Buffer) {
  const clock = new VirtualClock();
  const device = new FakeDevice(clock, options);
  const client = new V2Client(device.connect(247), { clock, fleetKey });
  return { device, client };
}

async function rejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<OtaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OtaError, `expected OtaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected rejection with ${code}`);
}

function manifestOf(devices: number): Buffer {
  const m = randomBytes(224 + 6 * devices);
  m.write('BOM1', 0, 'ascii');
  m.writeUInt16LE(m.length, 6);
  return m;
}

function beginsSent(device: FakeDevice): number {
  return device.log.filter((l) => l === `cmd ${Op.BEGIN}`).length;
}

describe('V2Client revision 2.1 against a scripted device', () => {
  it('sends the manifest after BEGIN with flags bit1, tagged with the session key, and completes the update', async () => {
    const key = randomBytes(32);
    const { device, client } = setup({ caps: Caps.RESUME | Caps.MANIFEST_REQUIRED }, key);
    const image = randomBytes(5000);
    const manifest = manifestOf(2);
    await client.update({ image, encoding: 'raw', manifest });
    const begin = device.lastBegin;
    assert.ok(begin);
    assert.equal(begin.flags & 0x02, 0x02);
    assert.ok(begin.manifest?.equals(manifest));
    assert.ok(begin.baseSha256?.equals(Buffer.alloc(32)));
    assert.ok(device.completedImage?.equals(image), 'the device verified the tag over bytes 1..76 and took the image');
  });

  it('sends base_sha256 and encoding 2 for a delta payload', async () => {
    const { device, client } = setup({ caps: Caps.RESUME | Caps.DELTA });
    await client.open();
    const baseSha = randomBytes(32);
    const image = randomBytes(3000);
    const payload = prepareDeltaPayload(image, randomBytes(400), baseSha, Caps.DELTA);
    const info = await client.begin({ image, payload });
    assert.equal(info.encoding, 'delta');
    assert.equal(info.transferSize, payload.transfer.length);
    assert.equal(device.lastBegin?.encoding, 2);
    assert.ok(device.lastBegin?.baseSha256?.equals(baseSha));
    assert.ok(device.lastBegin?.sha256.equals(createHash('sha256').update(image).digest()));
  });

  it('refuses a base_sha256 that does not fit the payload before sending BEGIN', async () => {
    const { device, client } = setup({ caps: Caps.RESUME | Caps.DELTA });
    const image = randomBytes(3000);
    const payload = prepareDeltaPayload(image, randomBytes(400), randomBytes(32), Caps.DELTA);
    await rejects(client.begin({ image, payload, baseSha256: randomBytes(32) }), 'BAD_PARAMETER', /differs from the base/);
    await rejects(client.begin({ image, encoding: 'raw', baseSha256: randomBytes(32) }), 'BAD_PARAMETER', /only for a delta/);
    await rejects(client.begin({ image, payload, baseSha256: randomBytes(5) }), 'BAD_PARAMETER', /32 bytes/);
    assert.equal(beginsSent(device), 0);
  });

  it('maps the new device refusals to DEVICE_* codes', async () => {
    const cases: Array<[number, string]> = [
      [ErrorCode.NOT_PROVISIONED, 'DEVICE_NOT_PROVISIONED'],
      [ErrorCode.MANIFEST_REQUIRED, 'DEVICE_MANIFEST_REQUIRED'],
      [ErrorCode.MANIFEST_INVALID, 'DEVICE_MANIFEST_INVALID'],
      [ErrorCode.MANIFEST_MISMATCH, 'DEVICE_MANIFEST_MISMATCH'],
      [ErrorCode.RELEASE_TOO_OLD, 'DEVICE_RELEASE_TOO_OLD'],
      [ErrorCode.BASE_MISMATCH, 'DEVICE_BASE_MISMATCH'],
    ];
    for (const [err, code] of cases) {
      const { client } = setup({ beginError: err });
      const e = await rejects(client.begin({ image: randomBytes(100) }), code);
      assert.equal(e.details?.deviceCode, err);
    }
  });

  it('provisions a key while the window is open', async () => {
    const { device, client } = setup({ provisioningWindow: true });
    assert.equal(client.deviceCapabilities, null);
    const challenge = await client.challenge();
    assert.equal(challenge.capabilities.provisioningWindow, true);
    assert.deepEqual(client.deviceCapabilities, challenge.capabilities);
    assert.equal(challenge.capabilities.sessionKeyRequired, false);
    const key = randomBytes(32);
    await client.provision(key);
    assert.ok(device.provisionedKey?.equals(key));
  });

  it('says the provisioning window is closed when the device answers INVALID_STATE, and checks the key length first', async () => {
    const { device, client } = setup();
    await rejects(client.provision(randomBytes(32)), 'DEVICE_INVALID_STATE', /provisioning window is not open/);
    assert.equal(device.provisionedKey, null);
    const before = device.log.length;
    await rejects(client.provision(randomBytes(16)), 'BAD_FLEET_KEY');
    assert.equal(device.log.length, before, 'nothing sent');
  });

  it('reads Status format 2 with the new fields and format 1 without them', async () => {
    const v2 = await setup().client.readStatus();
    assert.equal(v2.format, 2);
    assert.equal(v2.updatePartitionSize, 0x1e0000);
    assert.equal(v2.releaseFloor, 3);
    assert.equal(v2.deviceId, '24:0a:c4:12:34:56');
    assert.deepEqual(v2.releaseKeys, [0, 2]);
    const v1 = await setup({ statusFormat: 1 }).client.readStatus();
    assert.equal(v1.format, 1);
    assert.equal(v1.deviceId, undefined);
    assert.equal(v1.updatePartitionSize, undefined);
  });
});
