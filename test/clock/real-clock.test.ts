import { strict as assert } from 'assert';
import { realClock } from '../../lib/clock';

describe('realClock', () => {
  it('never runs a timer before now() has reached its due time (fractional delays included)', async () => {
    const early: string[] = [];
    const delays = Array.from({ length: 200 }, (_, i) => (i % 20) * 0.37 + 0.2);
    await Promise.all(
      delays.map(
        (ms) =>
          new Promise<void>((resolve) => {
            const due = realClock.now() + ms;
            realClock.setTimer(() => {
              const now = realClock.now();
              if (now < due) early.push(`${ms.toFixed(2)} ms timer ran ${(due - now).toFixed(3)} ms early`);
              resolve();
            }, ms);
          }),
      ),
    );
    assert.deepEqual(early, []);
  });

  it('cancels a timer, also one that is re-armed for its last fraction of a millisecond', async () => {
    let ran = 0;
    const timers = [0.4, 1.6, 3.2].map((ms) => realClock.setTimer(() => ran++, ms));
    timers.forEach((t) => t.cancel());
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(ran, 0);
  });
});
