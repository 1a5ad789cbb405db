import { strict as assert } from 'assert';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { runCli, vectorPath } from './run-cli';

describe('cli flash --base DIR (delta base images)', function () {
  this.timeout(20000);
  let dir = '';
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ble-ota-cli-base-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('sends the whole image when DIR holds no image the device runs, and adds the flashed image to DIR', () => {
    const r = runCli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--sim-dev', '--base', dir]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.encoding, 'deflate');
    assert.equal(result.base, null);
    assert.equal(result.deltaFallback, null);
    const stored = readdirSync(dir);
    assert.equal(stored.length, 1);
    assert.match(stored[0], /^[0-9a-f]{64}\.bin$/);
  });

  it('--encoding delta without a matching base fails before BEGIN with a clear code', () => {
    const r = runCli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--sim-dev', '--encoding', 'delta', '--base', dir]);
    assert.equal(r.code, 1);
    // BASE_UNKNOWN on a device that takes patches; DELTA_UNSUPPORTED on one without caps bit 7.
    assert.match(JSON.parse(r.stdout).error.code, /^(BASE_UNKNOWN|DELTA_UNSUPPORTED)$/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
