import { strict as assert } from 'assert';
import { deflateSync, inflateSync } from 'zlib';
import { buildSyntheticPair } from '../../lib/bench/images';
import { buildAppImage } from '../../lib/image';
import { bestDeflate } from '../../lib/protocol/best-deflate';
import { Caps } from '../../lib/protocol/constants';
import { prepareTransferPayload, prepareWholeImagePayload } from '../../lib/protocol/payload';

describe('protocol/best-deflate: the whole image as the flash path sends it', () => {
  it('is a zlib stream of the image, smaller than zlib level 9, the same bytes every time', async function () {
    this.timeout(60000);
    const { image } = buildSyntheticPair();
    const best = await bestDeflate(image);
    assert.ok(inflateSync(best).equals(image), 'inflates to the image');
    assert.equal(best[0], 0x78, 'zlib header, 32 KiB window (what the device inflater takes)');
    const zlib9 = deflateSync(image, { level: 9 }).length;
    assert.ok(best.length < zlib9 * 0.98, `${best.length} B vs zlib level 9 ${zlib9} B`);
    assert.ok((await bestDeflate(Buffer.from(image))).equals(best), 'same content, same stream (a copy of the image hits the cache)');
  });

  it('prepareWholeImagePayload: deflate, auto and raw as prepareTransferPayload decides them, with the best stream', async function () {
    this.timeout(60000);
    const image = buildAppImage({ chip: 'esp32c3', version: '1.2.3', size: 96 * 1024 });
    const deflated = await prepareWholeImagePayload(image, 'deflate', Caps.DEFLATE);
    assert.equal(deflated.encoding, 'deflate');
    assert.ok(inflateSync(deflated.transfer).equals(image));
    assert.ok(deflated.sha256.equals(prepareTransferPayload(image, 'raw', 0).sha256));
    assert.ok(deflated.transfer.length <= prepareTransferPayload(image, 'deflate', Caps.DEFLATE).transfer.length);
    assert.equal((await prepareWholeImagePayload(image, 'auto', 0)).encoding, 'raw', 'auto on a device without deflate');
    assert.equal((await prepareWholeImagePayload(image, 'raw', Caps.DEFLATE)).transfer, image);
    await assert.rejects(prepareWholeImagePayload(image, 'deflate', 0), (e: Error & { code?: string }) => e.code === 'DEFLATE_UNSUPPORTED');
    await assert.rejects(prepareWholeImagePayload(Buffer.alloc(0), 'auto', Caps.DEFLATE), (e: Error & { code?: string }) => e.code === 'EMPTY_IMAGE');
  });
});
