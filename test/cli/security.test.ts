/** CLI keygen, sign, inspect (manifest), derive-key, and keys for flash from files and the environment. */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildAppImage } from '../../lib/image';
import { deriveDeviceKey } from '../../lib/security/keys';
import { runCli } from './run-cli';

const NO_KEY_ENV = { BLE_OTA_MASTER_KEY: undefined, BLE_OTA_FLEET_KEY: undefined };

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  // Generous: each call is a fresh Node process (module load, key generation) on a CI machine that may be busy.
  return runCli(args, 60000, { ...NO_KEY_ENV, ...env });
}

describe('cli keys and manifests', function () {
  this.timeout(180000);
  let dir: string;
  let keys: string;
  let image: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-cli-sec-'));
    keys = path.join(dir, 'keys');
    image = path.join(dir, 'app.bin');
    fs.writeFileSync(image, buildAppImage({ chip: 'esp32', version: 'v1.2.3', projectName: 'line', size: 32 * 1024 }));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keygen writes the release key pair, release_keys.bin and a 0600 master key, prints no secret, never overwrites', () => {
    const r = cli(['keygen', '--out', keys]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.keyId, 0);
    const master = fs.readFileSync(path.join(keys, 'master.key'), 'utf8').trim();
    assert.match(master, /^[0-9a-f]{64}$/);
    const privatePem = fs.readFileSync(path.join(keys, 'release-key.pem'), 'utf8');
    assert.ok(!r.stdout.includes(master) && !r.stderr.includes(master), 'the master key is not printed');
    assert.ok(!r.stdout.includes('PRIVATE KEY'), 'the private key is not printed');
    assert.equal(fs.statSync(path.join(keys, 'master.key')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(keys, 'release-key.pem')).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path.join(keys, 'release_keys.bin')).toString('hex'), report.publicKeySec1);
    const again = cli(['keygen', '--out', keys]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /BAD_ARGUMENT: .*exists; keygen never overwrites/);
    assert.equal(fs.readFileSync(path.join(keys, 'release-key.pem'), 'utf8'), privatePem);
  });

  it('keygen --release-keys appends a rotated key with the next key_id; --print shows secrets', () => {
    assert.equal(cli(['keygen', '--out', keys]).code, 0);
    const next = cli(['keygen', '--out', path.join(dir, 'keys2'), '--release-keys', path.join(keys, 'release_keys.bin'), '--no-master-key', '--print']);
    assert.equal(next.code, 0, next.stderr);
    const report = JSON.parse(next.stdout);
    assert.equal(report.keyId, 1);
    assert.match(report.secrets.privateKeyPem, /BEGIN PRIVATE KEY/);
    const both = fs.readFileSync(path.join(dir, 'keys2', 'release_keys.bin'));
    assert.equal(both.length, 130);
    assert.deepEqual(both.subarray(0, 65), fs.readFileSync(path.join(keys, 'release_keys.bin')));
    assert.ok(!fs.existsSync(path.join(dir, 'keys2', 'master.key')));
  });

  it('sign writes <image>.manifest; inspect verifies it with the public key and refuses another key', () => {
    assert.equal(cli(['keygen', '--out', keys]).code, 0);
    assert.equal(cli(['keygen', '--out', path.join(dir, 'other')]).code, 0);
    const signed = cli(['sign', image, '--key', path.join(keys, 'release-key.pem'), '--device', 'a4:cf:12:34:56:78', '--device', 'a4:cf:12:34:56:79', '--expires', '2099-01-01']);
    assert.equal(signed.code, 0, signed.stderr);
    const info = JSON.parse(signed.stdout);
    assert.equal(info.file, `${image}.manifest`);
    assert.equal(info.release, 1002003);
    assert.deepEqual(info.devices, ['a4:cf:12:34:56:78', 'a4:cf:12:34:56:79']);
    assert.equal(fs.statSync(`${image}.manifest`).size, 224 + 12);

    const ok = cli(['inspect', image, '--pubkey', path.join(keys, 'release-key.pub.pem')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).manifest.signature, 'verified');
    const unchecked = cli(['inspect', image]);
    assert.equal(unchecked.code, 0);
    assert.match(JSON.parse(unchecked.stdout).manifest.signature, /not checked/);
    const forged = cli(['inspect', `${image}.manifest`, '--pubkey', path.join(dir, 'other', 'release_keys.bin')]);
    assert.equal(forged.code, 1);
    assert.equal(JSON.parse(forged.stdout).manifest.error.code, 'MANIFEST_INVALID');
    assert.match(forged.stderr, /MANIFEST_INVALID: .*does not verify with release key 0/);
  });

  it('inspect and flash refuse a manifest that belongs to another image, before any device is touched', () => {
    assert.equal(cli(['keygen', '--out', keys]).code, 0);
    assert.equal(cli(['sign', image, '--key', path.join(keys, 'release-key.pem')]).code, 0);
    fs.writeFileSync(image, buildAppImage({ chip: 'esp32', version: 'v1.2.4', projectName: 'line', size: 32 * 1024 }));
    const inspect = cli(['inspect', image]);
    assert.equal(inspect.code, 1);
    assert.equal(JSON.parse(inspect.stdout).manifest.error.code, 'MANIFEST_MISMATCH');
    const flash = cli(['flash', image, '--sim', '--fast']);
    assert.equal(flash.code, 1);
    assert.equal(JSON.parse(flash.stdout).error.code, 'MANIFEST_MISMATCH');
    assert.match(flash.stderr, /MANIFEST_MISMATCH: the manifest does not belong to this image: its image_sha256 is/);
  });

  it('sign needs a release number for a version without major.minor.patch, and a key', () => {
    fs.writeFileSync(image, buildAppImage({ chip: 'esp32', version: '6970792-dirty', size: 32 * 1024 }));
    assert.equal(cli(['keygen', '--out', keys]).code, 0);
    const noRelease = cli(['sign', image, '--key', path.join(keys, 'release-key.pem')]);
    assert.equal(noRelease.code, 1);
    assert.match(noRelease.stderr, /BAD_OPTION: .*give the release number/);
    assert.equal(cli(['sign', image, '--key', path.join(keys, 'release-key.pem'), '--release', '7']).code, 0);
    assert.match(cli(['sign', image]).stderr, /BAD_ARGUMENT: sign needs --key/);
    assert.match(cli(['sign', image, '--key', path.join(keys, 'release-key.pem'), '--expires', 'soon']).stderr, /BAD_ARGUMENT: --expires/);
  });

  it('derive-key prints the HKDF per-device key from a master key file or BLE_OTA_MASTER_KEY', () => {
    assert.equal(cli(['keygen', '--out', keys]).code, 0);
    const masterHex = fs.readFileSync(path.join(keys, 'master.key'), 'utf8').trim();
    const expected = deriveDeviceKey(Buffer.from(masterHex, 'hex'), 'a4:cf:12:34:56:78').toString('hex');
    const fromFile = cli(['derive-key', '--master-key-file', path.join(keys, 'master.key'), '--device-id', 'a4:cf:12:34:56:78']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout.trim(), expected);
    const fromEnv = cli(['derive-key', '--device-id', 'A4CF12345678', '--json'], { BLE_OTA_MASTER_KEY: masterHex });
    assert.deepEqual(JSON.parse(fromEnv.stdout), { deviceId: 'a4:cf:12:34:56:78', deviceKey: expected });
    const csv = cli(['derive-key', '--device-id', 'a4:cf:12:34:56:78', '--nvs-csv'], { BLE_OTA_MASTER_KEY: masterHex });
    assert.equal(csv.stdout, `key,type,encoding,value\nble_ota,namespace,,\ndevice_key,data,hex2bin,${expected}\n`);
    assert.match(cli(['derive-key', '--device-id', 'a4:cf:12:34:56:78']).stderr, /BAD_ARGUMENT: derive-key needs the plant master key/);
    assert.match(cli(['derive-key', '--master-key-file', path.join(keys, 'master.key'), '--device-id', 'a4:cf']).stderr, /BAD_DEVICE_ID/);
  });

  it('flash takes the fleet key from --key-file or BLE_OTA_FLEET_KEY; --fleet-key still works with a warning', () => {
    const key = 'ab'.repeat(32);
    const keyFile = path.join(dir, 'fleet.key');
    fs.writeFileSync(keyFile, key, { mode: 0o600 });
    const fromFile = cli(['flash', image, '--sim', '--fast', '--encoding', 'raw', '--key-file', keyFile]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(JSON.parse(fromFile.stdout).success, true);
    assert.doesNotMatch(fromFile.stderr, /warning/);
    const fromEnv = cli(['flash', image, '--sim', '--fast', '--encoding', 'raw'], { BLE_OTA_FLEET_KEY: key });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const onCommandLine = cli(['flash', image, '--sim', '--fast', '--encoding', 'raw', '--fleet-key', key]);
    assert.equal(onCommandLine.code, 0, onCommandLine.stderr);
    assert.match(onCommandLine.stderr, /warning: --fleet-key puts the key on the command line/);
  });

  it('refuses a master key and a fleet key together, and a malformed key file without showing it', () => {
    const keyFile = path.join(dir, 'fleet.key');
    fs.writeFileSync(keyFile, 'cd'.repeat(32), { mode: 0o600 });
    const masterFile = path.join(dir, 'master.key');
    fs.writeFileSync(masterFile, 'ef'.repeat(32), { mode: 0o600 });
    const conflict = cli(['flash', image, '--sim', '--fast', '--key-file', keyFile, '--master-key-file', masterFile]);
    assert.equal(conflict.code, 1);
    assert.equal(JSON.parse(conflict.stdout).error.code, 'BAD_OPTION');
    const envConflict = cli(['verify', '--sim', '--fast'], { BLE_OTA_FLEET_KEY: 'cd'.repeat(32), BLE_OTA_MASTER_KEY: 'ef'.repeat(32) });
    assert.equal(envConflict.code, 1);
    assert.match(envConflict.stderr, /BAD_OPTION: both a master key/);
    fs.writeFileSync(keyFile, 'secretsecret');
    const bad = cli(['flash', image, '--sim', '--fast', '--key-file', keyFile]);
    assert.equal(JSON.parse(bad.stdout).error.code, 'BAD_KEY');
    assert.ok(!bad.stdout.includes('secretsecret') && !bad.stderr.includes('secretsecret'));
  });
});
