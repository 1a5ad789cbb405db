import { strict as assert } from 'assert';
import { fleetLines, runDeltaBench } from '../../lib/bench/delta-rows';

describe('bench fleet rows (delta vs full deflate on one adapter)', function () {
  this.timeout(60000);

  it('measures the delta fleet against its slowest device alone, which no fleet can beat', async () => {
    const result = await runDeltaBench({ scenarios: [], fleetDevices: 2, log: () => undefined });
    const full = result.fleet.find((r) => r.protocol === 'v2-deflate');
    const delta = result.fleet.find((r) => r.protocol === 'v2-delta');
    assert.ok(full && delta, JSON.stringify(result.fleet));
    assert.equal(typeof full.totalSeconds, 'number', JSON.stringify(full));
    assert.equal(typeof delta.totalSeconds, 'number', JSON.stringify(delta));
    const alone = delta.aloneSeconds as number;
    assert.equal(typeof alone, 'number', JSON.stringify(delta));
    // Alone, a device still advertises, connects and sets up before its flash work (the ceiling).
    assert.ok(alone > delta.ceilingSeconds, JSON.stringify(delta));
    assert.ok(alone <= (delta.totalSeconds as number) + 1e-3, JSON.stringify(delta));
    assert.equal(full.aloneSeconds, undefined);
    const lines = fleetLines(result.fleet).join('\n');
    assert.match(lines, new RegExp(`with connection setup counted: ${((full.totalSeconds as number) / alone).toFixed(2)}x \\(full deflate over ${alone.toFixed(2)} s`));
  });

  it('leaves the setup bound out when it was not measured', () => {
    const row = { scenario: 'reference', devices: 2, bytes: 10, bytesOnAir: 10, ceilingSeconds: 1 };
    const lines = fleetLines([
      { ...row, protocol: 'v2-deflate', totalSeconds: 20 },
      { ...row, protocol: 'v2-delta', totalSeconds: 2, aloneSeconds: null },
    ]).join('\n');
    assert.match(lines, /delta 10\.0x faster than full deflate \(target >= 10x\): met/);
    assert.doesNotMatch(lines, /with connection setup counted/);
  });
});
