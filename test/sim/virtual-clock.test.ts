import { strict as assert } from 'assert';
import { VirtualClock } from '../../lib/sim/virtual-clock';
import { sleep, withTimeout } from '../../lib/clock';

describe('sim/virtual-clock', () => {
  it('fires timers in (time, insertion) order and jumps time to each', async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimer(() => log.push(`a@${clock.now()}`), 10);
    clock.setTimer(() => log.push(`c@${clock.now()}`), 20);
    clock.setTimer(() => log.push(`z@${clock.now()}`), 0);
    await clock.idle();
    assert.deepEqual(log, ['z@0', 'a@10', 'b@20', 'c@20']);
    assert.equal(clock.now(), 20);
  });

  it('lets promise chains finish before the next timer fires', async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(() => {
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => {
          log.push('chain');
          clock.setTimer(() => log.push(`reaction@${clock.now()}`), 0);
        });
    }, 5);
    clock.setTimer(() => log.push(`same-time@${clock.now()}`), 5);
    await clock.idle();
    assert.deepEqual(log, ['chain', 'same-time@5', 'reaction@5']);
  });

  it('runs long timer chains quickly and deterministically', async () => {
    const run = async () => {
      const clock = new VirtualClock();
      const seen: number[] = [];
      let n = 0;
      const tick = () => {
        seen.push(clock.now());
        if (++n < 20000) clock.setTimer(tick, (n % 7) * 0.25);
      };
      clock.setTimer(tick, 1);
      await clock.idle();
      return { seen, fired: clock.firedTimers };
    };
    const started = process.hrtime.bigint();
    const a = await run();
    const b = await run();
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(a.fired, 20000);
    assert.deepEqual(a.seen, b.seen);
    // 40000 timers; a generous bound that still catches a clock that sleeps in real time.
    assert.ok(wallMs < 10000, `took ${wallMs} ms`);
  });

  it('cancelled timers do not fire and an idle clock resolves idle()', async () => {
    const clock = new VirtualClock();
    let fired = false;
    const t = clock.setTimer(() => (fired = true), 100);
    t.cancel();
    assert.equal(clock.pendingTimers, 0);
    await clock.idle();
    assert.equal(fired, false);
    assert.equal(clock.now(), 0);
    // cancelling a timer that already fired changes nothing
    let later = false;
    const done = clock.setTimer(() => done.cancel(), 1);
    clock.setTimer(() => (later = true), 2);
    assert.equal(clock.pendingTimers, 2);
    await clock.idle();
    assert.equal(later, true);
  });

  it('does not advance while held', async () => {
    const clock = new VirtualClock();
    const release = clock.hold();
    let fired = false;
    clock.setTimer(() => (fired = true), 1000);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(fired, false);
    assert.equal(clock.now(), 0);
    release();
    await clock.idle();
    assert.equal(fired, true);
    assert.equal(clock.now(), 1000);
  });

  it('works with lib/clock sleep and withTimeout in virtual time', async () => {
    const clock = new VirtualClock();
    await sleep(clock, 60000);
    assert.equal(clock.now(), 60000);
    await assert.rejects(
      withTimeout(clock, new Promise(() => undefined), 30000, () => new Error('timed out')),
      /timed out/,
    );
    assert.equal(clock.now(), 90000);
  });

  it('runUntil rejects after its virtual-time limit', async () => {
    const clock = new VirtualClock();
    await assert.rejects(clock.runUntil(new Promise(() => undefined), 500), /500 ms of virtual time/);
    assert.equal(await clock.runUntil(sleep(clock, 10).then(() => 'done'), 500), 'done');
  });
});
