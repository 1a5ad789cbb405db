import { strict as assert } from 'assert';
import { createPrivateKey } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generateReleaseKeyPair, manifestForImage } from '../../lib/security';
import { runCli, skipWithoutVectors, vectorPath } from './run-cli';

const NO_KEY_ENV = { BLE_OTA_MASTER_KEY: undefined, BLE_OTA_FLEET_KEY: undefined };

describe('cli flash/scan/status --sim --fast', function () {
  this.timeout(20000);
  // The recommended set-up: a plant master key (per-device keys) and a release key; the image signed.
  let dir = '';
  let masterKeyFile = '';
  let releasePub = '';
  let image = '';

  before(function () {
    skipWithoutVectors(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-cli-flash-'));
    masterKeyFile = path.join(dir, 'master.key');
    fs.writeFileSync(masterKeyFile, `${'5a'.repeat(32)}\n`, { mode: 0o600 });
    const pair = generateReleaseKeyPair();
    releasePub = path.join(dir, 'release-key.pub.pem');
    fs.writeFileSync(releasePub, pair.publicKeyPem);
    image = path.join(dir, 'hello.bin');
    const bytes = fs.readFileSync(vectorPath('esp32c3-hello_world.bin'));
    fs.writeFileSync(image, bytes);
    // "v4.4-dirty" gives no release number: the release process names one.
    fs.writeFileSync(`${image}.manifest`, manifestForImage(bytes, { release: 4004000 }, createPrivateKey(pair.privateKeyPem)).bytes);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function cli(args: string[], env: Record<string, string | undefined> = {}) {
    return runCli(args, 15000, { ...NO_KEY_ENV, ...env });
  }

  it('flashes a keyed simulated device (per-device key, signed manifest) and prints the JSON result', () => {
    const r = cli(['flash', image, '--sim', '2', '--fast', '--device', 'sim-02', '--encoding', 'raw', '--master-key-file', masterKeyFile, '--sim-release-key', releasePub]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/);
    const result = JSON.parse(r.stdout);
    assert.equal(result.success, true);
    assert.equal(result.device.name, 'sim-02');
    assert.equal(result.protocol, 'v2');
    assert.equal(result.encoding, 'raw');
    assert.equal(result.bytes, 211008);
    assert.ok(result.bytesOnAir > result.bytes);
    assert.equal(result.secondsKind, 'modeled');
    assert.ok(result.seconds > 0 && result.kBps > 0);
    assert.equal(result.before.version, '1.0.0');
    assert.equal(result.after.version, 'v4.4-dirty');
  });

  it('secure by default: simulated devices without keys refuse the update, and the CLI says why', () => {
    const r = cli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--encoding', 'raw']);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'DEVICE_NOT_PROVISIONED');
    assert.match(r.stderr, /warning: the simulated devices hold no key/);
  });

  it('a development build (--sim-dev, the documented opt-out) takes an update without keys', () => {
    const r = cli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--encoding', 'raw', '--sim-dev']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).after.version, 'v4.4-dirty');
    assert.doesNotMatch(r.stderr, /warning/);
  });

  it('exits non-zero with WRONG_CHIP when the simulated device has another chip', () => {
    const r = cli(['flash', image, '--sim', '--fast', '--sim-chip', 'esp32s3', '--master-key-file', masterKeyFile]);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'WRONG_CHIP');
    assert.match(r.stderr, /WRONG_CHIP: .*esp32c3.*esp32s3/);
  });

  it('refuses a bad image before touching the fleet, a bad --sim-chip, and simulator options without --sim', () => {
    const bad = cli(['flash', vectorPath('bad-sha256-mismatch.bin'), '--sim', '--fast']);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).error.code, 'BAD_SHA256');
    const chip = cli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--sim-chip', 'z80']);
    assert.equal(chip.code, 1);
    assert.match(chip.stderr, /BAD_ARGUMENT/);
    const noSim = cli(['status', '--device', 'x', '--sim-dev']);
    assert.equal(noSim.code, 1);
    assert.match(noSim.stderr, /BAD_ARGUMENT: --sim-dev configures the simulated devices; it needs --sim/);
  });

  it('scans and reads status on a simulated fleet', () => {
    const scan = cli(['scan', '--sim', '3', '--fast', '--duration', '1', '--json']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.deepEqual(JSON.parse(scan.stdout).map((d: { name: string }) => d.name), ['sim-01', 'sim-02', 'sim-03']);
    const status = cli(['status', '--sim', '--fast', '--device', 'sim-01']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).firmware.version, '1.0.0');
  });

  it('reports a missing adapter on this machine without --sim as a clean error', () => {
    const r = cli(['scan', '--duration', '1', '--json']);
    if (r.code === 0) return; // a machine with a working Bluetooth adapter
    assert.equal(r.code, 1);
    assert.match(JSON.parse(r.stdout).error.code, /^ADAPTER_(MISSING|OFF|UNAUTHORIZED)$/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  });

  it('warns before flashing through a real adapter without a session key', () => {
    const r = cli(['flash', image, '--device', 'esp32-line-01', '--find-timeout', '1']);
    assert.match(r.stderr, /warning: no session key \(--master-key-file/);
  });
});
