/** The TS device model's manifest staging buffer (PROTOCOL.md §3, revision 2.3), rule by rule. */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { ManifestStaging } from '../../lib/sim/device/manifest-staging';
import { MANIFEST_MAX_SIZE, STAGING_OFFSET_FLAG } from '../../lib/protocol/constants';

const A = 1;
const B = 2;

function stageAll(s: ManifestStaging, conn: number, bytes: Buffer, from = 0, fragment = 16): Array<number | null> {
  const naks: Array<number | null> = [];
  for (let at = from; at < bytes.length; at += fragment) naks.push(s.write(conn, at, bytes.subarray(at, at + fragment)));
  return naks;
}

describe('sim-device manifest staging (revision 2.3)', () => {
  it('keeps in-order fragments for their connection and hands them to its commit once', () => {
    const s = new ManifestStaging();
    const manifest = randomBytes(236);
    assert.ok(stageAll(s, A, manifest).every((n) => n === null), 'no answer to a staging write');
    assert.equal(s.take(B), null, 'another connection staged nothing');
    assert.ok(s.take(A)?.equals(manifest));
    assert.equal(s.take(A), null, 'consumed by the commit');
  });

  it('a fragment out of order breaks staging: one NAK with the staged length, silence after, no commit until offset 0', () => {
    const s = new ManifestStaging();
    const manifest = randomBytes(224);
    stageAll(s, A, manifest.subarray(0, 32));
    assert.equal(s.write(A, 48, manifest.subarray(48, 64)), STAGING_OFFSET_FLAG + 32);
    assert.equal(s.write(A, 32, manifest.subarray(32, 48)), null, 'once per break');
    assert.equal(s.take(A), null);
    stageAll(s, A, manifest.subarray(0, 32));
    assert.equal(s.write(A, 16, manifest.subarray(16, 32)), STAGING_OFFSET_FLAG + 32, 'a repeated fragment breaks it too');
    assert.ok(stageAll(s, A, manifest).every((n) => n === null), 'offset 0 restarts');
    assert.ok(s.take(A)?.equals(manifest));
  });

  it('refuses more than the largest manifest (416 bytes), also in one write at offset 0', () => {
    const s = new ManifestStaging();
    const big = randomBytes(MANIFEST_MAX_SIZE + 1);
    assert.ok(stageAll(s, A, big.subarray(0, MANIFEST_MAX_SIZE), 0, 104).every((n) => n === null));
    assert.equal(s.write(A, MANIFEST_MAX_SIZE, big.subarray(MANIFEST_MAX_SIZE)), STAGING_OFFSET_FLAG + MANIFEST_MAX_SIZE);
    assert.equal(s.take(A), null);
    assert.equal(s.write(A, 0, big), STAGING_OFFSET_FLAG);
    assert.equal(s.take(A), null);
  });

  it("drops another connection's fragments silently unless it starts over at offset 0, which takes the buffer", () => {
    const s = new ManifestStaging();
    const manifest = randomBytes(224);
    stageAll(s, A, manifest.subarray(0, 64));
    assert.equal(s.write(B, 64, manifest.subarray(64, 80)), null);
    stageAll(s, A, manifest, 64);
    assert.ok(s.take(A)?.equals(manifest), "B's fragment changed nothing");
    stageAll(s, A, manifest.subarray(0, 64));
    assert.equal(s.write(B, 0, manifest.subarray(0, 16)), null);
    assert.ok(stageAll(s, A, manifest, 64).every((n) => n === null), 'A no longer owns it: dropped silently');
    assert.equal(s.take(A), null);
    stageAll(s, B, manifest, 16);
    assert.ok(s.take(B)?.equals(manifest));
  });

  it('drop (link lost, MANIFEST, BEGIN) clears only the owner', () => {
    const s = new ManifestStaging();
    const manifest = randomBytes(224);
    stageAll(s, A, manifest);
    s.drop(B);
    s.drop(A);
    assert.equal(s.take(A), null);
  });
});
