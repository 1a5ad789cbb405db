/**
 * The fleet's fault API (docs/FAULTS.md): specs parse to typed faults or fail with FAULT_INVALID naming
 * the problem; flash-operation power cuts and torn writes act on the TS model's flash; notification
 * faults act on the air.
 */
import { strict as assert } from 'assert';
import { buildAppImage } from '../../lib/image';
import { flashDevice } from '../../lib/ota';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { checkFault, faultSpec, parseFaultSpec, type Fault } from '../../lib/sim/faults';
import { createSimFleet, type SimFleet } from '../../lib/sim/fleet';
import type { SimDevice } from '../../lib/sim/device';
import { OtaError } from '../../lib/errors';

const codeOf = (err: unknown): string => (err instanceof OtaError ? err.code : 'NOT_AN_OTA_ERROR');

const IMAGE = buildAppImage({ chip: 'esp32', version: '1.1.0', size: 64 * 1024, seed: 5 });

describe('sim/faults API', () => {
  it('parses specs into typed faults and back', () => {
    assert.deepEqual(parseFaultSpec('powerCut@flashOp=120'), { kind: 'powerCut', flashOp: 120 });
    assert.deepEqual(parseFaultSpec('dropLink@bytes=40000'), { kind: 'dropLink', bytes: 40000 });
    assert.deepEqual(parseFaultSpec('loseNotification@n=3'), { kind: 'loseNotification', n: 3 });
    assert.deepEqual(parseFaultSpec('tornWrite@flashOp=7,bytes=100'), { kind: 'tornWrite', flashOp: 7, bytes: 100 });
    assert.equal(faultSpec(parseFaultSpec('delayNotification@n=2,ms=500')), 'delayNotification@n=2,ms=500');
  });

  const bad: Array<[string, RegExp]> = [
    ['meteorStrike@n=1', /unknown fault "meteorStrike"/],
    ['dropLink', /dropLink needs bytes/],
    ['dropLink@bytes=abc', /not a number/],
    ['loseWrite@n=0', /n must be an integer >= 1/],
    ['powerCut', /exactly one of flashOp or atMs/],
    ['powerCut@flashOp=3,atMs=5', /exactly one of flashOp or atMs/],
    ['flipWrite@n=1,colour=2', /takes no parameter "colour"/],
    ['flipWrite@n=1,bit=9', /bit must be 0..7/],
    ['loseWrite@n', /not key=value/],
  ];
  for (const [spec, message] of bad) {
    it(`refuses ${spec} with FAULT_INVALID`, () => {
      assert.throws(() => parseFaultSpec(spec), (err: unknown) => codeOf(err) === 'FAULT_INVALID' && message.test((err as Error).message));
    });
  }

  it('refuses a malformed Fault object', () => {
    assert.throws(() => checkFault({ kind: 'vanish', forMs: -1 } as Fault), (err: unknown) => codeOf(err) === 'FAULT_INVALID');
  });

  describe('on a fleet', () => {
    let fleet: SimFleet | undefined;
    let scheduler: AdapterScheduler | undefined;
    afterEach(async () => {
      await scheduler?.close();
      await fleet?.close();
      fleet = scheduler = undefined;
    });

    async function start(): Promise<{ fleet: SimFleet; scheduler: AdapterScheduler; device: SimDevice }> {
      fleet = await createSimFleet({ devices: [{ name: 'f-01', chip: 'esp32', version: '1.0.0', allowUnauthenticated: true }], clock: 'virtual' });
      scheduler = new AdapterScheduler(fleet.central, { readyTimeoutMs: 2000 });
      return { fleet, scheduler, device: fleet.devices.get('f-01') as SimDevice };
    }

    it('cuts power at the chosen flash operation: that operation and later ones do not land, the device reboots, the update still completes', async () => {
      const env = await start();
      const faults = env.device.flash.faults;
      assert.ok(faults);
      const before = faults.ops;
      const handle = env.fleet.injectFault('f-01', { kind: 'powerCut', flashOp: 6 });
      const result = await flashDevice(env.scheduler, { device: 'f-01', image: IMAGE, maxAttempts: 4 });
      assert.equal(handle.fired, true);
      assert.ok(env.device.machine.restarts.some((r) => r.reason === 'power loss'));
      assert.equal(result.success, true);
      assert.ok(result.attempts >= 2, 'the cut cost an attempt');
      assert.ok(faults.ops > before + 6);
      assert.equal(env.device.flash.imageBytes(1).subarray(0, IMAGE.length).equals(IMAGE), true);
    });

    it('a torn write lands only its prefix', async () => {
      const env = await start();
      const faults = env.device.flash.faults;
      assert.ok(faults);
      const slot = env.device.flash.slots[1];
      slot.erase(0, 4096);
      faults.arm({ atOp: 1, tornBytes: 10, onCut: () => undefined });
      slot.program(0, Buffer.alloc(256, 0));
      assert.deepEqual([...slot.read(0, 12)], [...Buffer.alloc(10, 0), 0xff, 0xff]);
      slot.program(0, Buffer.alloc(256, 0));
      assert.equal(slot.read(10, 1)[0], 0xff, 'nothing lands until power is off');
    });

    it('a lost notification costs the client a retry, not the update', async () => {
      const env = await start();
      const handle = env.fleet.injectFault('f-01', { kind: 'loseNotification', n: 2 });
      const result = await flashDevice(env.scheduler, { device: 'f-01', image: IMAGE, maxAttempts: 4 });
      assert.equal(handle.fired, true);
      assert.equal(result.success, true);
    });

    it('refuses flash-operation faults on devices it cannot reach and unknown devices', async () => {
      const env = await start();
      assert.throws(() => env.fleet.injectFault('nobody', { kind: 'loseWrite', n: 1 }), (err: unknown) => codeOf(err) === 'FAULT_INVALID' && /no simulated device named "nobody"/.test((err as Error).message));
      assert.throws(() => env.fleet.injectFault('f-01', { kind: 'slowFlash', factor: 3 }), (err: unknown) => codeOf(err) === 'FAULT_INVALID');
    });
  });
});
