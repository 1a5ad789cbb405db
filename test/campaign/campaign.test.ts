/**
 * The reliability campaign (docs/FAULTS.md "Campaign"), a short fixed-seed run: every schedule's
 * invariants hold on the simulated flash, over both implementations when the twin is built; schedules
 * replay identically; the invariant checker does catch a broken flash.
 */
import { strict as assert } from 'assert';
import { buildAppImage } from '../../lib/image';
import { OtaStateCode } from '../../lib/protocol/constants';
import { checkInvariants } from '../../lib/sim/campaign/invariants';
import { drawSchedule } from '../../lib/sim/campaign/schedule';
import { runCampaign } from '../../lib/sim/campaign/runner';
import { findTwinBinary } from '../../lib/sim/twin-device';
import { runCli } from '../cli/run-cli';

const SEED = 20261201;
const SCHEDULES = 40;

describe('campaign', function () {
  this.timeout(120000);

  it(`${SCHEDULES} fixed-seed schedules: 0 invariant violations, no hang`, async () => {
    const summary = await runCampaign({ seed: SEED, schedules: SCHEDULES });
    assert.equal(summary.schedules, SCHEDULES);
    assert.deepEqual(
      summary.failing.filter((f) => f.violations.length > 0),
      [],
    );
    assert.equal(summary.violations, 0);
    assert.equal(summary.outcomes.hang, undefined);
    assert.ok((summary.perImplementation.model ?? 0) > 0);
    if (findTwinBinary()) assert.ok((summary.perImplementation.twin ?? 0) > 0, 'the twin is built, so it takes part');
    const done = Object.values(summary.retriesHistogram).reduce((a, b) => a + b, 0);
    assert.equal(done, summary.outcomes.done ?? 0);
    for (const f of summary.failing) assert.match(f.replay, new RegExp(`--replay ${SEED}:${f.index}$`));
  });

  it('draws the same schedule for the same seed and index, and different ones otherwise', () => {
    const a = drawSchedule(5, 17, []);
    const b = drawSchedule(5, 17, []);
    assert.equal(a.image.equals(b.image), true);
    assert.deepEqual({ ...a, image: null }, { ...b, image: null });
    const c = drawSchedule(5, 18, []);
    assert.notDeepEqual({ ...a, image: null, index: 0 }, { ...c, image: null, index: 0 });
  });

  it('the checker catches a VALID otadata entry naming a half-written slot and a failure reported for an installed image; a NEW one is what ESP-IDF leaves', () => {
    const oldImage = buildAppImage({ chip: 'esp32', version: '1.0.0', size: 32 * 1024, seed: 1 });
    const newImage = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 32 * 1024, seed: 2 });
    const halfWritten = checkInvariants({
      view: { slots: [oldImage, newImage.subarray(0, 10000)], entries: [{ seq: 1, state: OtaStateCode.VALID, crcOk: true }, { seq: 2, state: OtaStateCode.NEW, crcOk: true }] },
      chip: 'esp32', oldImages: [oldImage], newImage, flashed: false, committed: false, statusVersion: '1.0.0', oldVersions: ['1.0.0'], newVersion: '1.1.0',
    });
    assert.deepEqual(halfWritten.map((v) => v.invariant), [], 'the bootloader verifies ota_1, fails and boots ota_0');
    const confirmedHalfWritten = checkInvariants({
      view: { slots: [oldImage, newImage.subarray(0, 10000)], entries: [{ seq: 1, state: OtaStateCode.VALID, crcOk: true }, { seq: 2, state: OtaStateCode.VALID, crcOk: true }] },
      chip: 'esp32', oldImages: [oldImage], newImage, flashed: false, committed: false, statusVersion: '1.0.0', oldVersions: ['1.0.0'], newVersion: '1.1.0',
    });
    assert.deepEqual(confirmedHalfWritten.map((v) => v.invariant), ['marked-valid']);
    const installed = checkInvariants({
      view: { slots: [oldImage, newImage], entries: [{ seq: 1, state: OtaStateCode.VALID, crcOk: true }, { seq: 2, state: OtaStateCode.VALID, crcOk: true }] },
      chip: 'esp32', oldImages: [oldImage], newImage, flashed: false, committed: false, statusVersion: '1.0.0', oldVersions: ['1.0.0'], newVersion: '1.1.0',
    });
    assert.deepEqual(installed.map((v) => v.invariant), ['report', 'status']);
    const bricked = checkInvariants({
      view: { slots: [oldImage.subarray(0, 100), newImage.subarray(0, 100)], entries: [{ seq: 1, state: OtaStateCode.VALID, crcOk: true }, { seq: 0xffffffff, state: OtaStateCode.UNDEFINED, crcOk: false }] },
      chip: 'esp32', oldImages: [oldImage], newImage, flashed: false, committed: false, statusVersion: null, oldVersions: ['1.0.0'], newVersion: '1.1.0',
    });
    assert.deepEqual(bricked.map((v) => v.invariant), ['marked-valid', 'bootable']);
  });

  it('cli: campaign --replay runs one schedule, a malformed replay is refused', () => {
    const replay = runCli(['campaign', '--replay', `${SEED}:0`], 60000);
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(JSON.parse(replay.stdout).schedules, 1);
    const bad = runCli(['campaign', '--replay', 'x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--replay takes seed:index/);
  });
});
