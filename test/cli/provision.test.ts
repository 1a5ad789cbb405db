/** CLI provision: PROVISION (op 0x08) in a simulated device's provisioning window, the key from a file only. */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addressFromName } from '../../lib/sim/device/settings';
import { runCli } from './run-cli';

const NO_KEY_ENV = { BLE_OTA_MASTER_KEY: undefined, BLE_OTA_FLEET_KEY: undefined };

describe('cli provision', function () {
  this.timeout(30000);
  let dir = '';
  let masterKeyFile = '';

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-cli-provision-'));
    masterKeyFile = path.join(dir, 'master.key');
    fs.writeFileSync(masterKeyFile, `${'c3'.repeat(32)}\n`, { mode: 0o600 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function cli(args: string[], env: Record<string, string | undefined> = {}) {
    return runCli(args, 20000, { ...NO_KEY_ENV, ...env });
  }

  it('stores the key derived for the device id the device reports, while the window is open', () => {
    const r = cli(['provision', '--sim', '2', '--fast', '--sim-window', '120', '--device', 'sim-02', '--master-key-file', masterKeyFile]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.provisioned, true);
    assert.equal(report.device.name, 'sim-02');
    assert.equal(report.deviceId, addressFromName('sim-02'));
    // The device now holds a session key: tags are required, it is no longer unprovisioned.
    assert.equal(report.sessionKeyRequired, true);
    assert.equal(report.notProvisioned, false);
    assert.ok(!r.stdout.includes('c3'.repeat(32)) && !r.stderr.includes('c3'.repeat(32)), 'the key is never printed');
  });

  it('takes a fleet key file as it is, or the master key from BLE_OTA_MASTER_KEY', () => {
    const fleetFile = path.join(dir, 'fleet.key');
    fs.writeFileSync(fleetFile, 'ab'.repeat(32), { mode: 0o600 });
    const fleet = cli(['provision', '--sim', '--fast', '--sim-window', '60', '--key-file', fleetFile]);
    assert.equal(fleet.code, 0, fleet.stderr);
    assert.equal(JSON.parse(fleet.stdout).key, 'the fleet key');
    const env = cli(['provision', '--sim', '--fast', '--sim-window', '60'], { BLE_OTA_MASTER_KEY: 'c3'.repeat(32) });
    assert.equal(env.code, 0, env.stderr);
    assert.equal(JSON.parse(env.stdout).sessionKeyRequired, true);
  });

  it('refuses outside the provisioning window (device untouched), without a key, and a key on the command line', () => {
    const closed = cli(['provision', '--sim', '--fast', '--master-key-file', masterKeyFile]);
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /DEVICE_INVALID_STATE: .*provisioning window is not open/);
    const noKey = cli(['provision', '--sim', '--fast', '--sim-window', '60']);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /BAD_ARGUMENT: provision needs the key to store/);
    const onCommandLine = cli(['provision', '--sim', '--fast', '--sim-window', '60', '--key', 'c3'.repeat(32)]);
    assert.equal(onCommandLine.code, 1);
    assert.match(onCommandLine.stderr, /BAD_ARGUMENT: provision never takes a key on the command line/);
  });
});
