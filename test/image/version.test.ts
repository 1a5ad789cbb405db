import * as assert from 'assert';
import { compareVersions, parseVersion } from '../../lib/image';

describe('image: version strings', () => {
  it('parses semver-ish strings', () => {
    assert.deepStrictEqual(parseVersion('v1.2.3'), { major: 1, minor: 2, patch: 3, prerelease: [] });
    assert.deepStrictEqual(parseVersion('1.2.3-rc1'), { major: 1, minor: 2, patch: 3, prerelease: ['rc1'] });
    assert.deepStrictEqual(parseVersion('2.0'), { major: 2, minor: 0, patch: 0, prerelease: [] });
    assert.deepStrictEqual(parseVersion('v4.4-dirty'), { major: 4, minor: 4, patch: 0, prerelease: ['dirty'] });
    assert.deepStrictEqual(parseVersion('1.0.0-beta.11+build.7'), { major: 1, minor: 0, patch: 0, prerelease: ['beta', '11'] });
  });

  it('does not parse git hashes and free text', () => {
    for (const text of ['6970792-dirty', 'bc43c6b', '', 'latest', '1', 'v1.2.3.4', '1..2']) {
      assert.strictEqual(parseVersion(text), null, text);
    }
  });

  it('orders by semver precedence', () => {
    const ordered = ['0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc1', '1.0.0', 'v1.0.1', '1.2', '1.10.0', '10.0.0'];
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        assert.strictEqual(compareVersions(ordered[i], ordered[j]), Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
      }
    }
    assert.strictEqual(compareVersions('v1.2.0', '1.2'), 0);
  });

  it('returns null when either side cannot be ordered', () => {
    assert.strictEqual(compareVersions('6970792-dirty', '1.0.0'), null);
    assert.strictEqual(compareVersions('1.0.0', 'bc43c6b'), null);
  });
});
