/**
 * One version comparison for the whole package: the image checks, the library's scan, the scan
 * node's filter and the advertisement's version bytes follow lib/image/version.ts.
 */
import { strict as assert } from 'assert';
import { compareVersions, isOutdated } from '../../lib/image/version';
import * as otaVersion from '../../lib/ota/version';
import { buildFilter, matches } from '../../nodes/ble-ota-scan/scan-filter';
import { versionBytes } from '../../lib/protocol/advertisement';
import { checkImageForTarget, parseImage } from '../../lib/image';
import { image } from '../nodes/support';

describe('one version rule', () => {
  it('puts a pre-release before its release everywhere (1.1.0-rc1 < 1.1.0)', () => {
    assert.equal(compareVersions('1.1.0-rc1', '1.1.0'), -1);
    const a = otaVersion.parseVersion('1.1.0-rc1');
    const b = otaVersion.parseVersion('1.1.0');
    assert.ok(a && b);
    assert.equal(otaVersion.compareVersions(a, b), -1);
    const node = buildFilter({ olderThan: '1.1.0' });
    assert.equal(matches({ id: 'x', address: '', name: 'x', rssi: -40, protocol: 'v2', firmware: { version: '1.1.0-rc1' } }, node), true);
  });

  it('orders git describe builds after their tag and treats a bare hash as unorderable (outdated)', () => {
    assert.equal(compareVersions('v1.2.3-4-g6970792', 'v1.2.3'), 1);
    assert.equal(compareVersions('v1.2.3-4-g6970792-dirty', '1.2.4'), -1);
    assert.equal(compareVersions('v1.2.3-4-g6970792', 'v1.2.3-10-gabcdef0'), -1);
    assert.equal(compareVersions('6970792-dirty', '1.0.0'), null);
    assert.equal(isOutdated('6970792-dirty', '1.0.0'), true);
    assert.equal(isOutdated(null, '1.0.0'), true);
    assert.equal(isOutdated('1.0.0', '1.0.0'), false);
    assert.equal(isOutdated('v1.0.0-3-gabcdef0', '1.0.0'), false);
  });

  it('anti-downgrade refuses an image older than a git describe build of a newer tag, never a hash build', () => {
    const parsed = parseImage(image('1.0.0'));
    assert.throws(() => checkImageForTarget(parsed, { chip: 'esp32', partitionSize: 4 << 20, runningVersion: 'v1.2.3-4-g6970792', preventDowngrade: true }), /DOWNGRADE|older/);
    assert.doesNotThrow(() => checkImageForTarget(parsed, { chip: 'esp32', partitionSize: 4 << 20, runningVersion: '6970792-dirty', preventDowngrade: true }));
  });

  it('agrees with the advertisement bytes: what they carry compares like the full string on major.minor.patch', () => {
    // §8: "1.2.3-rc1" and "v1.2.3-4-g6970792" advertise 1.2.3; a bare hash advertises 0xFF (no version).
    assert.deepEqual(versionBytes('1.2.3-rc1'), [1, 2, 3]);
    assert.deepEqual(versionBytes('v1.2.3-4-g6970792'), [1, 2, 3]);
    assert.deepEqual(versionBytes('6970792-dirty'), [0xff, 0xff, 0xff]);
    for (const [full, target] of [['1.2.3', '1.2.4'], ['1.2.3', '1.2.3'], ['2.0.0', '1.9.9'], ['6970792-dirty', '1.0.0']]) {
      const bytes = versionBytes(full);
      const advertised = bytes[0] === 0xff ? null : bytes.join('.');
      assert.equal(isOutdated(advertised, target), isOutdated(full, target), `${full} vs ${target}`);
    }
  });
});
