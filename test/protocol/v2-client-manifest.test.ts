/**
 * V2Client's MANIFEST (PROTOCOL.md §2.4, revision 2.2) against the scripted FakeDevice: sent only when the
 * caps read before say bit11 and it fits one Write Request; the BEGIN after it is the plain 93 bytes; a
 * device that cannot take it that way gets the manifest with BEGIN (flags bit1), as every 2.1 device does.
 * Revision 2.3 (caps bit12): a MANIFEST too long for one Write Request is staged on Data and committed.
 */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { V2Client, stagingChunkSize } from '../../lib/protocol/v2-client';
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
const WITH_STAGING = WITH_COMMAND | Caps.MANIFEST_STAGING;

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

describe('V2Client MANIFEST staging on Data (revision 2.3) against a scripted device', () => {
  it('stages a manifest too long for one Write Request in 16-byte Write Commands at MTU 23, commits it, then sends a plain BEGIN', async () => {
    const { device, client } = setup({ caps: WITH_STAGING }, 23);
    await client.open();
    await client.readStatus();
    const manifest = manifestOf(0);
    assert.equal(await client.sendManifest(manifest), true);
    assert.deepEqual(
      device.stagingWrites,
      Array.from({ length: 14 }, (_, i) => ({ manifestOffset: 16 * i, length: 16 })),
      '224 bytes in 14 writes of MTU - 7 = 16 bytes, in order',
    );
    assert.equal(device.manifestCommands.length, 1);
    assert.ok(device.manifestCommands[0].equals(manifest), 'the commit carried exactly the staged manifest');
    const image = randomBytes(3000);
    await client.update({ image, encoding: 'raw', manifest });
    assert.equal(device.lastBegin?.flags, 0, 'flags bit1 clear: the device has the manifest');
    assert.equal(device.lastBegin?.manifest, undefined);
    assert.ok(device.completedImage?.equals(image));
  });

  it('falls back to BEGIN + manifest when the commit is refused, whatever the code (a staging problem never fails the update)', async () => {
    for (const err of [ErrorCode.BAD_LENGTH, ErrorCode.MANIFEST_INVALID, ErrorCode.BUSY]) {
      const { device, client } = setup({ caps: WITH_STAGING, commitError: err }, 23);
      await client.open();
      await client.readStatus();
      const manifest = manifestOf(2);
      assert.equal(await client.sendManifest(manifest), false, `commit answered ${err}`);
      assert.equal(device.stagingWrites.length, Math.ceil(236 / 16));
      await client.update({ image: randomBytes(3000), encoding: 'raw', manifest });
      assert.equal((device.lastBegin?.flags ?? 0) & 0x02, 0x02, 'flags bit1');
      assert.ok(device.lastBegin?.manifest?.equals(manifest));
    }
  });

  it('stages nothing when MANIFEST fits one Write Request, or without caps bit12', async () => {
    const fits = setup({ caps: WITH_STAGING }, 247);
    await fits.client.open();
    await fits.client.readStatus();
    assert.equal(await fits.client.sendManifest(manifestOf(0)), true);
    assert.equal(fits.device.stagingWrites.length, 0);
    const old = setup({ caps: WITH_COMMAND }, 23);
    await old.client.open();
    await old.client.readStatus();
    assert.equal(await old.client.sendManifest(manifestOf(0)), false);
    assert.equal(old.device.stagingWrites.length + old.device.manifestCommands.length, 0, 'a revision-2.2 device gets nothing');
  });

  it('sizes staging writes so each fills whole 27-byte LL PDUs (the Data chunk rule at the smallest data length)', () => {
    assert.equal(stagingChunkSize(23), 16); // 4 + 3 + 4 + 16 = 27: one PDU
    assert.equal(stagingChunkSize(100), 70); // 81 = 3 PDUs; 93 would leave a 23-byte fourth
    assert.equal(stagingChunkSize(185), 178); // 189 = 7 PDUs exactly
    for (let mtu = 23; mtu < 228; mtu++) {
      const size = stagingChunkSize(mtu);
      assert.ok(size >= 16 && size <= mtu - 7, `MTU ${mtu}: ${size}`);
      assert.ok(size === mtu - 7 || (size + 11) % 27 === 0, `MTU ${mtu}: ${size} fills whole PDUs`);
    }
  });
});
