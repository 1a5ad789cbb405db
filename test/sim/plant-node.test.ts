/**
 * The adapter config node in mode "plant" inside Node-RED (node-red-node-test-helper): a scan node on a
 * gateway of a running plant simulator lists the devices in that gateway's range with its RSSI, and an
 * adapter with a malformed plant address is a configuration error the scan node reports typed.
 */
import { strict as assert } from 'assert';
import { PlantSim } from '../../lib/sim/plant';
import { helper, helperNode, loadFlow, nextInput, otaNodes, TEST_MASTER_KEY, type FlowNode, type Json } from '../nodes/support';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'plant adapter' };

function flow(adapter: Record<string, unknown>): FlowNode[] {
  return [
    TAB,
    { id: 'adapter', type: 'ble-ota-adapter', name: 'plant gw', mode: 'plant', maxConnections: 2, scanSeconds: 1.5, findSeconds: 3, ...adapter },
    { id: 'scan', type: 'ble-ota-scan', z: 'tab', adapter: 'adapter', mode: 'once', duration: 1.5, output: 'list', namePrefix: '', nameRegex: '', service: '', minRssi: '', olderThan: '', wires: [['out']] },
    helperNode('out'),
    { id: 'catch-errors', type: 'catch', z: 'tab', scope: ['scan'], uncaught: false, wires: [['caught']] },
    helperNode('caught'),
  ];
}

describe('sim/plant: the adapter node in mode "plant"', function () {
  this.timeout(30000);
  let plant: PlantSim | null = null;

  afterEach(async () => {
    await helper.unload();
    await plant?.stop();
    plant = null;
  });

  it('scans through a gateway of the plant: the devices in its range, at its RSSI, marked simulated', async () => {
    plant = new PlantSim({
      gateways: ['gw-a', 'gw-b'],
      devices: [
        { name: 'node-01', chip: 'esp32', version: '1.0.0', rssi: { 'gw-a': -51, 'gw-b': -80 } },
        { name: 'node-02', chip: 'esp32', version: '1.0.0', rssi: { 'gw-b': -60 } },
      ],
      keys: { masterKey: TEST_MASTER_KEY },
      clock: 'real',
    });
    const { hciPort } = await plant.start();
    await loadFlow(otaNodes, flow({ simPlant: `127.0.0.1:${hciPort}`, simGateway: 'gw-a' }));
    const out = nextInput(helper.getNode('out'));
    helper.getNode('scan')?.receive({});
    const msg = await out;
    const list = msg.payload as Json[];
    assert.deepEqual(list.map((d) => d.name), ['node-01']);
    assert.equal(list[0].rssi, -51);
    assert.equal(list[0].simulated, true);
  });

  it('a plant address that is not loopback is a configuration error, reported typed', async () => {
    await loadFlow(otaNodes, flow({ simPlant: '192.168.1.5:7501', simGateway: 'gw-a' }));
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('scan')?.receive({});
    const error = (await caught).error as { code: string; message: string };
    assert.equal(error.code, 'BAD_OPTION');
    assert.match(error.message, /127\.0\.0\.1:PORT/);
  });
});
