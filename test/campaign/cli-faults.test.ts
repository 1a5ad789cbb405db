/** `esp32-ble-ota flash --sim --fault <spec>`: faults reach the simulated device; bad specs are refused before anything runs. */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildAppImage } from '../../lib/image';
import { runCli } from '../cli/run-cli';

describe('cli flash --sim --fault', function () {
  this.timeout(30000);
  let dir: string;
  let imagePath: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fault-cli-'));
    imagePath = path.join(dir, 'app.bin');
    fs.writeFileSync(imagePath, buildAppImage({ chip: 'esp32', version: '1.1.0', size: 96 * 1024, seed: 3 }));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a power cut at a flash operation costs an attempt and the update completes', () => {
    // About faults, not about who may update: a development build of the simulated device (--sim-dev).
    const r = runCli(['flash', imagePath, '--sim', '--fast', '--sim-dev', '--no-progress', '--fault', 'powerCut@flashOp=10', '--fault', 'loseNotification@n=2']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.success, true);
    assert.ok(result.attempts >= 2, `attempts ${result.attempts}`);
  });

  it('a flash operation that fails with the power on is reported as DEVICE_FLASH_ERROR', () => {
    const r = runCli(['flash', imagePath, '--sim', '--fast', '--sim-dev', '--no-progress', '--fault', 'flashFail@flashOp=3']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DEVICE_FLASH_ERROR/);
  });

  it('refuses an unknown fault, a bad parameter, and --fault without --sim', () => {
    const unknown = runCli(['flash', imagePath, '--sim', '--fast', '--fault', 'gremlins@n=1']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /FAULT_INVALID: fault spec "gremlins@n=1": unknown fault "gremlins"; use one of powerCut, tornWrite/);
    const param = runCli(['flash', imagePath, '--sim', '--fast', '--fault', 'dropLink@bytes=-5']);
    assert.equal(param.code, 1);
    assert.match(param.stderr, /FAULT_INVALID: .*bytes must be a number >= 0/);
    const noSim = runCli(['flash', imagePath, '--device', 'x', '--fault', 'dropLink@bytes=5']);
    assert.equal(noSim.code, 1);
    assert.match(noSim.stderr, /--fault .* needs --sim/);
  });
});
