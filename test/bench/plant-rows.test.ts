import { strict as assert } from 'assert';
import { PLANT_TARGET_RATIO, plantFloor, plantLines, plantTargetLines, runPlantBench, type PlantBenchResult } from '../../lib/bench/plant-rows';

describe('bench plant rows (devices per hour for 1, 2 and 4 gateways)', function () {
  this.timeout(120000);

  it('lays the floor out so that one gateway hears every device and neighbours share the devices where their stretches meet', () => {
    const [only] = plantFloor(8, 1);
    assert.equal(only.size, 8);
    const four = plantFloor(16, 4);
    // Every device heard by a gateway; its nearest gateway hears it best.
    for (let i = 0; i < 16; i++) {
      const heard = four.map((m) => m.get(i)).filter((r): r is number => r !== undefined);
      assert.ok(heard.length >= 1 && heard.length <= 2, `device ${i} heard by ${heard.length}`);
      assert.equal(four[Math.floor(i / 4)].get(i), Math.max(...heard));
    }
    assert.ok(
      four.some((m, g) => [...m.keys()].some((i) => Math.floor(i / 4) !== g)),
      'some device is heard by two gateways',
    );
  });

  it('updates the same devices with 1, 2 and 4 gateways, every device once, faster with more gateways', async () => {
    const result = await runPlantBench({ devices: 16, imageBytes: 64 * 1024, gateways: [1, 2, 4], canary: false });
    assert.deepEqual(
      result.rows.map((r) => [r.gateways, r.devices, r.error]),
      [
        [1, 16, undefined],
        [2, 16, undefined],
        [4, 16, undefined],
      ],
    );
    for (const r of result.rows) {
      assert.equal(r.succeeded, 16);
      assert.equal(Object.values(r.perGateway).reduce((a, b) => a + b, 0), 16, JSON.stringify(r.perGateway));
      // Each gateway installs the devices it sees best (its stretch), though it also hears a neighbour's edge.
      assert.deepEqual(Object.values(r.perGateway), Array(r.gateways).fill(16 / r.gateways), JSON.stringify(r.perGateway));
      assert.ok((r.bytesOnAir ?? 0) > 16 * 10000, `bytes on air ${r.bytesOnAir}`);
      assert.ok(r.modeledSeconds !== null && r.devicesPerHour !== null);
      assert.ok(Math.abs(r.devicesPerHour - (16 / r.modeledSeconds) * 3600) / r.devicesPerHour < 0.01);
    }
    const [one, two, four] = result.rows;
    assert.equal(one.ratio, 1);
    assert.equal(one.lostPdus, 0, 'one air: no collisions');
    assert.ok((four.lostPdus as number) > 0 && (four.lostPdus as number) < 0.05 * (four.dataPdus as number), `four airs collide now and then: ${four.lostPdus} of ${four.dataPdus}`);
    assert.ok((two.devicesPerHour as number) > (one.devicesPerHour as number) * 1.3, JSON.stringify(result.rows));
    assert.ok((four.devicesPerHour as number) > (two.devicesPerHour as number) * 1.3, JSON.stringify(result.rows));
    const text = plantLines(result).join('\n');
    assert.match(text, /\| reference \| 4 \| 16 \| one wave of 100 % \|/);
    assert.match(text, new RegExp(`target >= ${PLANT_TARGET_RATIO}x\\): (met|NOT met)`));
  });

  it('judges the target from the 1- and 4-gateway rows and says when they are missing', () => {
    const row = { devices: 10, waves: 'one wave of 100 %', modeledMinutes: 1, modeledSeconds: 60, ratio: null, bytesOnAir: 1, lostPdus: 0, dataPdus: 1, succeeded: 10, perGateway: {} };
    const result = (four: number | null): PlantBenchResult => ({
      devices: 10,
      imageBytes: 1,
      slots: 4,
      brokerLatencyMs: 5,
      overlap: 0.125,
      notes: [],
      rows: [
        { ...row, gateways: 1, devicesPerHour: 100 },
        { ...row, gateways: 4, devicesPerHour: four, ...(four === null ? { error: 'X: failed' } : {}) },
      ],
    });
    assert.match(plantTargetLines(result(370)).join('\n'), /3\.70x \(target >= 3\.6x\): met/);
    assert.match(plantTargetLines(result(350)).join('\n'), /3\.50x \(target >= 3\.6x\): NOT met/);
    assert.match(plantTargetLines(result(null)).join('\n'), /not measured/);
  });
});
