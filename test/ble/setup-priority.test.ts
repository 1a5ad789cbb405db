import { strict as assert } from 'assert';
import { sleep } from '../../lib/clock';
import { MAX_SETUP_PRIORITY_MS, SetupPriority } from '../../lib/ble/setup-priority';
import { VirtualClock } from '../../lib/sim/virtual-clock';

describe('ble/setup-priority: set-up traffic before bulk data on one adapter', () => {
  it('lets a burst go at once when no link is being set up', async () => {
    const clock = new VirtualClock();
    const priority = new SetupPriority(clock);
    const started = clock.now();
    await clock.runUntil(priority.yieldTo());
    assert.equal(clock.now(), started);
  });

  it('holds a burst until every other set-up has ended', async () => {
    const clock = new VirtualClock();
    const priority = new SetupPriority(clock);
    const a = priority.begin();
    const b = priority.begin();
    clock.setTimer(() => a.end(), 120);
    clock.setTimer(() => b.end(), 300);
    const started = clock.now();
    await clock.runUntil(priority.yieldTo());
    assert.equal(clock.now() - started, 300);
    assert.equal(priority.pending(), 0);
    b.end(); // idempotent
  });

  it('gives a hung set-up precedence for MAX_SETUP_PRIORITY_MS only, then lets bursts go', async () => {
    const clock = new VirtualClock();
    const priority = new SetupPriority(clock);
    priority.begin(); // never ends (noble has no ATT timeout)
    await clock.runUntil(sleep(clock, 500));
    await clock.runUntil(priority.yieldTo());
    assert.equal(clock.now(), MAX_SETUP_PRIORITY_MS);
    const again = clock.now();
    await clock.runUntil(priority.yieldTo());
    assert.equal(clock.now(), again, 'the expired set-up holds nothing back any more');
  });

  it('rejects a waiting burst when its session is aborted', async () => {
    const clock = new VirtualClock();
    const priority = new SetupPriority(clock);
    priority.begin();
    const controller = new AbortController();
    clock.setTimer(() => controller.abort(new Error('stop')), 50);
    await assert.rejects(clock.runUntil(priority.yieldTo(controller.signal)), (e: Error & { code?: string }) => e.code === 'CANCELLED');
    assert.equal(clock.now(), 50);
  });
});
