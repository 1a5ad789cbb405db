/**
 * The adapter's "plant" mode seam (nodes/shared/library.ts openPlantAdapter): a bad address or a plant
 * that is not running fails typed; a running plant gives a ready central and scheduler; when the plant
 * drops the gateway's connection, noble sees the adapter go down and come back (the transport reconnects
 * and the plant gives it a new central), and the gateway sees its devices again.
 */
import { strict as assert } from 'assert';
import { openPlantAdapter, type AdapterBackend } from '../../nodes/shared/library';
import { PlantSim } from '../../lib/sim/plant';
import { codeOf } from '../helpers/errors';
import { freePort } from '../helpers/free-port';

const LAYOUT = {
  gateways: ['gw-a'],
  devices: [{ name: 'seam-01', chip: 'esp32', version: '1.0.0', rssi: { 'gw-a': -50 } }],
  keys: { development: true },
  clock: 'real',
};


async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!condition() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return condition();
}

describe('sim/plant: the adapter seam (openPlantAdapter)', function () {
  this.timeout(30000);
  let plant: PlantSim | null = null;
  let backend: AdapterBackend | null = null;

  afterEach(async () => {
    await backend?.close();
    backend = null;
    await plant?.stop();
    plant = null;
  });

  it('refuses an address that is not loopback and a plant that is not running', async () => {
    assert.equal(await codeOf(openPlantAdapter({ plant: '10.0.0.1:7501', gateway: 'gw-a', maxConnections: 2 })), 'BAD_OPTION');
    assert.equal(await codeOf(openPlantAdapter({ plant: '127.0.0.1:99999', gateway: 'gw-a', maxConnections: 2 })), 'BAD_OPTION');
    assert.equal(await codeOf(openPlantAdapter({ plant: `127.0.0.1:${await freePort()}`, gateway: 'gw-a', maxConnections: 2 })), 'PLANT_UNAVAILABLE');
  });

  it('opens a gateway; a dropped connection is an adapter that goes off and comes back', async () => {
    plant = new PlantSim(LAYOUT);
    const { hciPort } = await plant.start();
    backend = await openPlantAdapter({ plant: `127.0.0.1:${hciPort}`, gateway: 'gw-a', maxConnections: 2 });
    await backend.central.waitReady(5000);
    const states: string[] = [];
    backend.central.on('stateChange', (s: string) => states.push(s));
    assert.ok(plant.dropGateway('gw-a'));
    assert.ok(await until(() => states.includes('poweredOff'), 5000), `adapter went off (${states.join(',')})`);
    assert.ok(await until(() => states[states.length - 1] === 'poweredOn', 8000), `adapter came back (${states.join(',')})`);
    assert.equal(plant.gateways()[0].sessions, 2);
    const names = new Set<string>();
    const scan = await backend.central.startScan({}, (d) => names.add(d.name));
    await new Promise((r) => setTimeout(r, 800));
    await scan.stop();
    assert.deepEqual([...names], ['seam-01']);
  });
});
