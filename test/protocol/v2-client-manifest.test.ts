/**
 * V2Client's MANIFEST (PROTOCOL.md §2.4, revision 2.2) against the scripted FakeDevice: sent only when the
 * caps read before say bit11 and it fits one Write Request; the BEGIN after it is the plain 93 bytes; a
 * device that cannot take it that way gets the manifest with BEGIN (flags bit1), as every 2.1 device does.
 */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { V2Client } from '../../lib/protocol/v2-client';
import { Caps, ErrorCode, Op } from '../../lib/protocol/constants';
import { OtaError } from '../../lib/errors';
import { FakeDevice, FakeDeviceOptions } from './fake-device';

function setup(options: FakeDeviceOptions = {}, mtu = 247) {
  const clock = new VirtualClock();
  const device = new FakeDevice(clock, options);
  const client = new V2Client(device.connect(mtu), { clock });
  return { device, client };
}

function manifestOf(devices: number): Buffer {
  const m = randomBytes(224 + 6 * devices);
  m.write('BOM1', 0, 'ascii');
  m.writeUInt16LE(m.length, 6);
  return m;
}

const WITH_COMMAND = Caps.RESUME | Caps.MANIFEST_REQUIRED | Caps.MANIFEST_COMMAND;

describe('V2Client MANIFEST (revision 2.2) against a scripted device', () => {
  it('sends MANIFEST after the Status read when caps bit11 is set, then a plain 93-byte BEGIN', async () => {
    const { device, client } = setup({ caps: WITH_COMMAND });
    await client.open();
    await client.readStatus();
    const manifest = manifestOf(0);
    assert.equal(await client.sendManifest(manifest), true);
    assert.equal(device.manifestCommands.length, 1);
    assert.ok(device.manifestCommands[0].equals(manifest));
    assert.ok(!device.log.includes(`cmd ${Op.CHALLENGE}`), 'MANIFEST went before CHALLENGE');
    const image = randomBytes(4000);
    await client.update({ image, encoding: 'raw', manifest });
    assert.equal(device.lastBegin?.flags, 0, 'flags bit1 clear');
    assert.equal(device.lastBegin?.manifest, undefined);
    assert.ok(device.completedImage?.equals(image));
  });

  it('sends nothing and returns false without caps bit11 or before any caps are known; BEGIN then carries the manifest', async () => {
    const { device, client } = setup({ caps: Caps.RESUME | Caps.MANIFEST_REQUIRED });
    await client.open();
    const manifest = manifestOf(1);
    assert.equal(await client.sendManifest(manifest), false, 'no caps read yet: no guess');
    await client.readStatus();
    assert.equal(await client.sendManifest(manifest), false);
    assert.equal(device.manifestCommands.length, 0);
    await client.update({ image: randomBytes(3000), encoding: 'raw', manifest });
    assert.equal((device.lastBegin?.flags ?? 0) & 0x02, 0x02);
    assert.ok(device.lastBegin?.manifest?.equals(manifest));
  });

  it('returns false when MANIFEST does not fit one Write Request at the MTU (BEGIN + manifest, a long write, instead)', async () => {
    const { device, client } = setup({ caps: WITH_COMMAND }, 185);
    await client.open();
    await client.readStatus();
    const manifest = manifestOf(0); // 1 + 224 > 185 - 3
    assert.equal(await client.sendManifest(manifest), false);
    assert.equal(device.manifestCommands.length, 0);
    await client.update({ image: randomBytes(3000), encoding: 'raw', manifest });
    assert.ok(device.lastBegin?.manifest?.equals(manifest));
  });

  it('falls back to BEGIN + manifest when the device answers BUSY (its slot holds another link\'s manifest)', async () => {
    const { device, client } = setup({ caps: WITH_COMMAND, manifestError: ErrorCode.BUSY });
    await client.open();
    await client.readStatus();
    const manifest = manifestOf(0);
    assert.equal(await client.sendManifest(manifest), false);
    await client.update({ image: randomBytes(3000), encoding: 'raw', manifest });
    assert.ok(device.lastBegin?.manifest?.equals(manifest));
  });

  it("reports the device's refusal of the manifest as BEGIN would (DEVICE_MANIFEST_INVALID)", async () => {
    const { client } = setup({ caps: WITH_COMMAND, manifestError: ErrorCode.MANIFEST_INVALID });
    await client.open();
    await client.readStatus();
    await assert.rejects(client.sendManifest(manifestOf(0)), (e: OtaError) => e.code === 'DEVICE_MANIFEST_INVALID' && /MANIFEST/.test(e.message));
  });

  it('sends the manifest with BEGIN when begin() is given another manifest than the one stored', async () => {
    const { device, client } = setup({ caps: WITH_COMMAND });
    await client.open();
    await client.readStatus();
    assert.equal(await client.sendManifest(manifestOf(0)), true);
    const other = manifestOf(0);
    await client.update({ image: randomBytes(3000), encoding: 'raw', manifest: other });
    assert.ok(device.lastBegin?.manifest?.equals(other));
  });
});
