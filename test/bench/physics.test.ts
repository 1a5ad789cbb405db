import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import { deflateSync } from 'zlib';
import { baseReadSeconds, ceilingSeconds, endVerifySeconds, flashSeconds, linkSeconds, pipelineSeconds, stallLossSeconds, valueBytesPerPdu } from '../../lib/bench/physics';
import { resolveLinkProfile } from '../../lib/sim/link-model';
import { buildSyntheticPair } from '../../lib/bench/images';
import { makeDeltaTransfer } from '../../lib/delta';

describe('bench physics (the ceiling)', () => {
  it('counts what one PDU carries when the RX buffers fill: 20 value bytes at MTU 23, 244 at MTU 247 with DLE', () => {
    assert.equal(valueBytesPerPdu(resolveLinkProfile('mtu-23')), 20);
    assert.equal(valueBytesPerPdu(resolveLinkProfile('reference')), 244);
    // MTU 256: the 244-byte write in one PDU packs more per PDU than 253 bytes in two.
    assert.equal(valueBytesPerPdu(resolveLinkProfile('seed-mac')), 244);
    // At MTU 23 the 24 buffers hold 480 bytes (16 ms of air): a block erase (150 ms) loses most of its time.
    const blocks = 3;
    assert.ok(stallLossSeconds(blocks * 65536, 'mtu-23') > blocks * 0.13, String(stallLossSeconds(blocks * 65536, 'mtu-23')));
  });

  it("END's floor: the whole-image read(s) and the otadata sector rewrite (erase 45 ms + 32-byte entry)", () => {
    // A size that is a multiple of 16 (every esptool image): esp_ota_abort closes the handle, set_boot validates once.
    const once = 196608 / 6536 / 1000;
    assert.ok(Math.abs(endVerifySeconds(196608) - (once + 0.045 + 0.00005)) < 1e-6);
    // Otherwise esp_ota_end flushes a tail and validates too: two reads.
    const twice = (2 * 196609) / 6536 / 1000;
    assert.ok(Math.abs(endVerifySeconds(196609) - (twice + 0.045 + 0.00005)) < 1e-6);
  });

  it('pipeline bound: a transfer whose last bytes decode to much is bounded by programming them after they arrive', () => {
    // 64 KiB of incompressible bytes, then 64 KiB of zeros that deflate to a few hundred bytes.
    const noise = Buffer.concat(Array.from({ length: 2048 }, (_, i) => createHash('sha256').update(String(i)).digest()));
    const image = Buffer.concat([noise, Buffer.alloc(65536)]);
    const transfer = deflateSync(image, { level: 9 });
    const air = transfer.length + 4 * Math.ceil(transfer.length / 240);
    const twoEnds = Math.max(linkSeconds(air, 'reference') + stallLossSeconds(image.length, 'reference'), flashSeconds(image.length));
    const pipeline = pipelineSeconds({ transfer, deflate: true }, image.length, 'reference');
    // The zeros (256 pages, 0.4 ms each) can only be programmed after the stream's last bytes arrived.
    assert.ok(pipeline > twoEnds + 0.09, `${pipeline} vs ${twoEnds}`);
    assert.ok(Math.abs(ceilingSeconds(air, image.length, 'reference', { transfer, deflate: true }) - (pipeline + endVerifySeconds(image.length))) < 1e-9);
    // Raw: the last chunk decodes to itself, so the bound adds nothing to max(link, flash).
    const rawAir = image.length + 4 * Math.ceil(image.length / 240);
    const raw = ceilingSeconds(rawAir, image.length, 'reference', { transfer: image, deflate: false });
    assert.ok(Math.abs(raw - ceilingSeconds(rawAir, image.length, 'reference')) < 0.001);
  });

  it('a delta row: the patch on air, yet the whole new image erased and programmed, and the base read besides', () => {
    const pair = buildSyntheticPair({ size: 256 * 1024 });
    const delta = makeDeltaTransfer(pair.base, pair.image);
    const stream = { transfer: delta.transfer, deflate: false, delta: { base: pair.base, imageSize: pair.image.length } };
    const air = delta.transfer.length + 4 * Math.ceil(delta.transfer.length / 240);
    const reads = baseReadSeconds(stream);
    // A small change: nearly every byte comes from the base (diff parts), read at the whole-image rate.
    assert.ok(reads > (0.95 * pair.image.length) / 6536 / 1000 && reads < pair.image.length / 6536 / 1000, String(reads));
    const ceiling = ceilingSeconds(air, pair.image.length, 'reference', stream);
    assert.ok(Math.abs(ceiling - (flashSeconds(pair.image.length) + reads + endVerifySeconds(pair.image.length))) < 1e-6, 'flash-bound');
    assert.ok(linkSeconds(air, 'reference') < 0.1 * ceiling);
    assert.equal(baseReadSeconds({ transfer: deflateSync(pair.image), deflate: true }), 0);
  });
});
