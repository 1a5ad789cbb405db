import { strict as assert } from 'assert';
import { runCli, vectorPath } from './run-cli';

describe('cli flash/scan/status --sim --fast', function () {
  this.timeout(20000);

  it('flashes a simulated device and prints the JSON result', () => {
    const r = runCli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '2', '--fast', '--device', 'sim-02', '--encoding', 'raw']);
    assert.equal(r.code, 0, r.stderr);
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

  it('exits non-zero with WRONG_CHIP when the simulated device has another chip', () => {
    const r = runCli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--sim-chip', 'esp32s3']);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'WRONG_CHIP');
    assert.match(r.stderr, /WRONG_CHIP: .*esp32c3.*esp32s3/);
  });

  it('refuses a bad image before touching the fleet, and a bad --sim-chip', () => {
    const bad = runCli(['flash', vectorPath('bad-sha256-mismatch.bin'), '--sim', '--fast']);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).error.code, 'BAD_SHA256');
    const chip = runCli(['flash', vectorPath('esp32c3-hello_world.bin'), '--sim', '--fast', '--sim-chip', 'z80']);
    assert.equal(chip.code, 1);
    assert.match(chip.stderr, /BAD_ARGUMENT/);
  });

  it('scans and reads status on a simulated fleet', () => {
    const scan = runCli(['scan', '--sim', '3', '--fast', '--duration', '1', '--json']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.deepEqual(JSON.parse(scan.stdout).map((d: { name: string }) => d.name), ['sim-01', 'sim-02', 'sim-03']);
    const status = runCli(['status', '--sim', '--fast', '--device', 'sim-01']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).firmware.version, '1.0.0');
  });

  it('reports a missing adapter on this machine without --sim as a clean error', () => {
    const r = runCli(['scan', '--duration', '1', '--json']);
    if (r.code === 0) return; // a machine with a working Bluetooth adapter
    assert.equal(r.code, 1);
    assert.match(JSON.parse(r.stdout).error.code, /^ADAPTER_(MISSING|OFF|UNAUTHORIZED)$/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  });
});
