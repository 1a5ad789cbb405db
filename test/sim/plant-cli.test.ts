/**
 * `esp32-ble-ota plant-sim` as a process (through scripts/plant-sim-launch.js, as the demo starts it):
 * it prints its ports when ready, a gateway connects over TCP and sees its devices, SIGTERM stops it;
 * a bad layout file ends it with exit code 1 and BAD_PLANT_LAYOUT on stderr.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PlantControlClient, createRemotePlantCentral } from '../../lib/sim/plant';
import { repoPath } from '../helpers/paths';

interface Launched {
  hciPort: number;
  controlPort: number;
  gateways: string[];
  stop(): Promise<void>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { launchPlantSim, writePlantLayout } = require(repoPath('scripts', 'plant-sim-launch.js')) as {
  launchPlantSim(o: { layoutFile: string }): Promise<Launched>;
  writePlantLayout(file: string, o: Record<string, unknown>): Record<string, unknown>;
};

describe('sim/plant: the plant-sim command', function () {
  this.timeout(30000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plant-sim-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs a layout: ready line with the ports, a gateway connects and scans, SIGTERM stops it', async () => {
    const layoutFile = path.join(dir, 'plant.json');
    writePlantLayout(layoutFile, { gateways: ['gw-a'], devices: 1, namePrefix: 'cli-', development: true });
    const plant = await launchPlantSim({ layoutFile });
    try {
      assert.ok(plant.hciPort > 0 && plant.controlPort > 0);
      assert.deepEqual(plant.gateways, ['gw-a']);
      const central = await createRemotePlantCentral({ host: '127.0.0.1', port: plant.hciPort, gateway: 'gw-a', reconnect: false });
      try {
        await central.waitReady(5000);
        const names = new Set<string>();
        const scan = await central.startScan({}, (d) => names.add(d.name));
        await new Promise((r) => setTimeout(r, 800));
        await scan.stop();
        assert.deepEqual([...names], ['cli-01']);
      } finally {
        await central.close();
      }
      const control = new PlantControlClient('127.0.0.1', plant.controlPort);
      const gateways = (await control.command({ cmd: 'gateways' })).gateways as Array<{ id: string; sessions: number }>;
      control.close();
      assert.equal(gateways[0].sessions, 1);
    } finally {
      await plant.stop();
    }
  });

  it('takes --port as the HCI port and refuses a port out of range', async () => {
    const layoutFile = path.join(dir, 'one.json');
    writePlantLayout(layoutFile, { gateways: ['gw-a'], devices: 1, development: true });
    const cli = repoPath('dist', 'bin', 'esp32-ble-ota.js');
    const r = spawnSync(process.execPath, [cli, 'plant-sim', '--layout', layoutFile, '--port', '70000'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /BAD_ARGUMENT: --port must be a TCP port 0\.\.65535/);
    const both = spawnSync(process.execPath, [cli, 'plant-sim', '--layout', layoutFile, '--port', '1', '--hci-port', '2'], { encoding: 'utf8' });
    assert.match(both.stderr, /--port is another name for --hci-port/);
  });

  it('refuses a bad layout file with exit code 1 and BAD_PLANT_LAYOUT', () => {
    const layoutFile = path.join(dir, 'bad.json');
    fs.writeFileSync(layoutFile, JSON.stringify({ gateways: ['gw-a'], devices: [] }));
    const r = spawnSync(process.execPath, [repoPath('dist', 'bin', 'esp32-ble-ota.js'), 'plant-sim', '--layout', layoutFile], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /BAD_PLANT_LAYOUT: plant layout: "devices" must be a non-empty list/);
  });
});
