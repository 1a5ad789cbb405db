/**
 * The adapter's fleet settings and fleet key parsing, and the node's own work queue.
 */
import { strict as assert } from 'assert';
import { buildFleet, fleetSecurity, parseFleetKey, parseMasterKey, parseReleaseKeys, type FleetDefaults } from '../../nodes/ble-ota-adapter/fleet-config';
import { deriveDeviceKey, generateReleaseKeyPair } from '../../lib/security/keys';
import { addressFromName } from '../../lib/sim/device/settings';
import { JobQueue } from '../../nodes/shared/job-queue';
import { OtaError } from '../../lib/errors';
import { thrownCode } from '../helpers/errors';

const DEFAULTS: FleetDefaults = { size: 5, namePrefix: 'esp32-line-', chip: 'esp32', version: '1.0.0', diagnostics: 'pass', confirmPolicy: 'auto' };

describe('adapter fleet settings', () => {
  it('generates a named fleet from size and prefix', () => {
    const fleet = buildFleet('', DEFAULTS);
    assert.deepEqual(fleet.map((d) => d.name), ['esp32-line-01', 'esp32-line-02', 'esp32-line-03', 'esp32-line-04', 'esp32-line-05']);
    assert.ok(fleet.every((d) => d.chip === 'esp32' && d.version === '1.0.0' && d.diagnostics === 'pass' && d.confirmPolicy === 'auto'));
  });

  it('reads name:chip:version[:diagnostics[:confirm[:protocol]]] lines with defaults for missing fields', () => {
    const fleet = buildFleet('press-1:esp32c3:2.1.0:fail:host\n# spare\n\npress-2\nold-1:esp32:0.1.0:pass:auto:legacy', DEFAULTS);
    assert.deepEqual(fleet.map((d) => [d.name, d.chip, d.version, d.diagnostics, d.confirmPolicy, d.protocol]), [
      ['press-1', 'esp32c3', '2.1.0', 'fail', 'host', 'v2'],
      ['press-2', 'esp32', '1.0.0', 'pass', 'auto', 'v2'],
      ['old-1', 'esp32', '0.1.0', 'pass', 'auto', 'legacy'],
    ]);
  });

  it('reads a JSON list', () => {
    const fleet = buildFleet('[{"name":"a","chip":"esp32s3","version":"3.0.0","confirmPolicy":"host"},"b"]', DEFAULTS);
    assert.deepEqual(fleet.map((d) => [d.name, d.chip, d.version, d.confirmPolicy]), [
      ['a', 'esp32s3', '3.0.0', 'host'],
      ['b', 'esp32', '1.0.0', 'auto'],
    ]);
  });

  it('names what is wrong in a bad fleet', () => {
    assert.equal(thrownCode(() => buildFleet('a:esp8266:1.0.0', DEFAULTS)), 'BAD_FLEET_CONFIG');
    assert.equal(thrownCode(() => buildFleet('a\na', DEFAULTS)), 'BAD_FLEET_CONFIG');
    assert.equal(thrownCode(() => buildFleet('[1,', DEFAULTS)), 'BAD_FLEET_CONFIG');
    assert.equal(thrownCode(() => buildFleet('a:esp32:1.0.0:maybe', DEFAULTS)), 'BAD_FLEET_CONFIG');
    assert.equal(thrownCode(() => buildFleet('', { ...DEFAULTS, size: 0 })), 'BAD_FLEET_CONFIG');
    assert.throws(() => buildFleet('x:esp8266', DEFAULTS), /line 1: unknown chip "esp8266"/);
  });

  it('gives every simulated device the fleet key', () => {
    const key = Buffer.alloc(32, 7);
    assert.ok(buildFleet('', { ...DEFAULTS, fleetKey: key }).every((d) => d.fleetKey?.equals(key)));
  });

  it('provisions every simulated device with its own key derived from the master key and its address', () => {
    const master = Buffer.alloc(32, 3);
    const fleet = buildFleet('press-1', { ...DEFAULTS, masterKey: master });
    const explicit = buildFleet('[{"name": "press-2", "address": "a4:cf:12:34:56:78"}]', { ...DEFAULTS, masterKey: master });
    // The derived key is the device's own (NVS device_key), not a shared fleet key.
    assert.deepEqual(explicit[0].deviceKey, deriveDeviceKey(master, 'a4:cf:12:34:56:78'));
    assert.deepEqual(fleet[0].deviceKey, deriveDeviceKey(master, addressFromName('press-1')));
    assert.equal(fleet[0].fleetKey, undefined);
    const generated = buildFleet('', { ...DEFAULTS, masterKey: master });
    assert.equal(new Set(generated.map((d) => d.deviceKey?.toString('hex'))).size, generated.length, 'one key per device');
    assert.equal(parseMasterKey(''), undefined);
    assert.equal(thrownCode(() => parseMasterKey('00'.repeat(31))), 'BAD_KEY');
  });

  it('secure by default: without keys the devices are unprovisioned; the development switch is explicit', () => {
    const plain = buildFleet('', DEFAULTS);
    assert.ok(plain.every((d) => !d.deviceKey && !d.fleetKey && !d.releaseKeys && !d.allowUnauthenticated));
    assert.equal(fleetSecurity(DEFAULTS), 'unprovisioned');
    const dev = buildFleet('', { ...DEFAULTS, development: true });
    assert.ok(dev.every((d) => d.allowUnauthenticated === true));
    assert.equal(fleetSecurity({ development: true }), 'development');
    assert.equal(fleetSecurity({ masterKey: Buffer.alloc(32, 1), development: true }), 'keyed');
  });

  it('gives every simulated device the release public keys, from PEM or SEC1 hex; refuses a private key', () => {
    const a = generateReleaseKeyPair();
    const b = generateReleaseKeyPair();
    const keys = parseReleaseKeys(`${a.publicKeyPem}\n${b.publicKeySec1.toString('hex')}`);
    assert.deepEqual(keys, [a.publicKeySec1, b.publicKeySec1]);
    const fleet = buildFleet('', { ...DEFAULTS, releaseKeys: keys });
    assert.ok(fleet.every((d) => d.releaseKeys?.length === 2 && d.releaseKeys[0].equals(a.publicKeySec1)));
    assert.equal(fleetSecurity({ releaseKeys: keys }), 'keyed');
    assert.equal(parseReleaseKeys('  '), undefined);
    assert.equal(thrownCode(() => parseReleaseKeys(a.privateKeyPem)), 'BAD_KEY');
    assert.equal(thrownCode(() => parseReleaseKeys('04abcd')), 'BAD_KEY');
    assert.equal(thrownCode(() => parseReleaseKeys(`04${'00'.repeat(64)}`)), 'BAD_KEY');
    assert.equal(thrownCode(() => parseReleaseKeys(Array(5).fill(a.publicKeySec1.toString('hex')).join(' '))), 'BAD_KEY');
  });

  it('accepts a fleet key of 64 hex digits only', () => {
    assert.equal(parseFleetKey(''), undefined);
    assert.equal(parseFleetKey('00'.repeat(32))?.length, 32);
    assert.equal(thrownCode(() => parseFleetKey('xyz')), 'BAD_FLEET_KEY');
    assert.equal(thrownCode(() => parseFleetKey('00'.repeat(31))), 'BAD_FLEET_KEY');
  });
});

describe('flash node job queue', () => {
  function deferred() {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  }

  it('runs up to the limit at once, one job per key, first in first out', async () => {
    const q = new JobQueue(() => 2);
    const order: string[] = [];
    const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>();
    const add = (key: string, name: string) => {
      const gate = deferred();
      gates.set(name, gate);
      q.add(key, async () => {
        order.push(`start ${name}`);
        await gate.promise;
        order.push(`end ${name}`);
      }, () => order.push(`dropped ${name}`));
    };
    add('a', 'a1');
    add('a', 'a2');
    add('b', 'b1');
    add('c', 'c1');
    assert.deepEqual(order, ['start a1', 'start b1']);
    assert.equal(q.waitingCount, 2);
    gates.get('a1')?.resolve();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order.slice(2), ['end a1', 'start a2']);
    gates.get('b1')?.resolve();
    await new Promise((r) => setImmediate(r));
    assert.ok(order.includes('start c1'));
  });

  it('cancels running jobs through their signal and drops waiting ones', async () => {
    const q = new JobQueue(() => 1);
    const seen: string[] = [];
    q.add('a', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => {
      seen.push(`aborted: ${(signal.reason as OtaError).code}`);
      resolve();
    })), () => seen.push('dropped a'));
    q.add('b', async () => {
      seen.push('ran b');
    }, (reason) => seen.push(`dropped b: ${reason.code}`));
    assert.equal(q.cancel(undefined, new OtaError('CANCELLED', 'test')), 2);
    await q.shutdown(new OtaError('CANCELLED', 'test'), 1000);
    assert.deepEqual(seen.sort(), ['aborted: CANCELLED', 'dropped b: CANCELLED']);
    assert.equal(q.has('a') || q.has('b'), false);
  });
});
