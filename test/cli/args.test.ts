/** Command-line options: a mistyped option is an error with a hint, never silently ignored. */
import { strict as assert } from 'assert';
import { parseArgs } from '../../bin/cli/args';
import { runCli } from './run-cli';

describe('CLI options', () => {
  it('refuses an unknown option and names the closest known one', () => {
    assert.throws(() => parseArgs(['flash', 'app.bin', '--devcie', 'sim-01']), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BAD_ARGUMENT');
      assert.match(err.message, /unknown option --devcie \(did you mean --device\?\)/);
      return true;
    });
    assert.throws(() => parseArgs(['scan', '--colour=red']), /unknown option --colour; esp32-ble-ota --help/);
  });

  it('keeps accepting every documented option', () => {
    const args = parseArgs(['flash', 'app.bin', '--device', 'sim-01', '--sim', '3', '--fast', '--encoding=raw', '--attempts', '2', '--json']);
    assert.equal(args.options.get('device'), 'sim-01');
    assert.equal(args.options.get('sim'), '3');
  });

  it('exits 2 without touching a device when an option is misspelt', () => {
    const r = runCli(['flash', 'whatever.bin', '--devcie', 'sim-01', '--sim', '--fast']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /did you mean --device/);
    assert.equal(r.stdout, '');
  });
});
