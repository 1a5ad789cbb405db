/**
 * ble-ota-verify after a flash on a simulated fleet whose devices reboot for real (in the model):
 * a good update passes, a device whose diagnostics fail rolls back and fails verification, and the
 * host confirm policy confirms or rolls back as configured.
 */
import { strict as assert } from 'assert';
import { backendOf, helper, helperNode, loadFlow, image, nextInput, otaNodes, simAdapter, type FlowNode, type Json } from './support';
import { readDeviceStatus } from '../../lib/ota';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'verify tests' };
const DEVICES = ['good-auto:esp32:1.0.0:pass:auto', 'bad-auto:esp32:1.0.0:fail:auto', 'good-host:esp32:1.0.0:pass:host', 'bad-host:esp32:1.0.0:fail:host'].join('\n');

function verifyFlow(verifySettings: Record<string, unknown> = {}): FlowNode[] {
  return [
    TAB,
    simAdapter('adapter', { simDevices: DEVICES }),
    { id: 'flash', type: 'ble-ota-flash', z: 'tab', adapter: 'adapter', outputs: 1, wires: [['verify']] },
    { id: 'verify', type: 'ble-ota-verify', z: 'tab', adapter: 'adapter', waitSeconds: 30, states: 'valid,pending-verify', requireDiagnostics: true, forbidRollback: true, onPass: 'none', onFail: 'none', wires: [['passed'], ['failed']], ...verifySettings },
    helperNode('passed'),
    helperNode('failed'),
    { id: 'catch-errors', type: 'catch', z: 'tab', scope: ['flash', 'verify'], uncaught: false, wires: [['caught']] },
    helperNode('caught'),
  ];
}

async function deviceFirmware(device: string): Promise<{ version: string | null; state: string }> {
  const backend = await backendOf('adapter');
  return (await readDeviceStatus(backend.scheduler, { device })).firmware;
}

/** The app version in a decoded Status characteristic. */
function versionOf(status: Json): string {
  return status.appVersion;
}

describe('ble-ota-verify node', function () {
  this.timeout(20000);

  afterEach(() => helper.unload());

  it('passes a good update after the reboot, with the full status and the flash result', async () => {
    await loadFlow(otaNodes, verifyFlow());
    const passed = nextInput(helper.getNode('passed'));
    helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'good-auto' });
    const msg = await passed;
    const result = msg.payload as Json;
    assert.equal(result.passed, true);
    assert.deepEqual(result.reasons, []);
    assert.equal(result.action, 'none');
    assert.equal(versionOf(result.status), '1.1.0');
    assert.equal((msg.flash as Json).after.version, '1.1.0');
  });

  it('fails a device whose diagnostics fail and that rolls back, naming the reasons', async () => {
    await loadFlow(otaNodes, verifyFlow());
    const failed = nextInput(helper.getNode('failed'));
    helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'bad-auto' });
    const result = (await failed).payload as Json;
    assert.equal(result.passed, false);
    const reasons = result.reasons.join(' | ');
    assert.match(reasons, /roll|diagnos/i);
    assert.equal(versionOf(result.status), '1.0.0');
  });

  it('confirms a pending image under the host policy when the checks pass', async () => {
    await loadFlow(otaNodes, verifyFlow({ states: 'pending-verify', onPass: 'confirm', onFail: 'rollback' }));
    const passed = nextInput(helper.getNode('passed'));
    helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'good-host' });
    const result = (await passed).payload as Json;
    assert.equal(result.action, 'confirmed');
    const firmware = await deviceFirmware('good-host');
    assert.equal(firmware.version, '1.1.0');
    assert.equal(firmware.state, 'valid');
  });

  it('rolls a pending image back under the host policy when its diagnostics failed', async () => {
    await loadFlow(otaNodes, verifyFlow({ states: 'pending-verify', onPass: 'confirm', onFail: 'rollback' }));
    const failed = nextInput(helper.getNode('failed'));
    helper.getNode('flash')?.receive({ payload: image('1.1.0'), device: 'bad-host' });
    const result = (await failed).payload as Json;
    assert.equal(result.passed, false);
    assert.equal(result.action, 'rolled-back');
    // After the rollback the device boots its previous image again.
    const deadline = Date.now() + 10000;
    let version = '';
    while (Date.now() < deadline) {
      try {
        version = (await deviceFirmware('bad-host')).version ?? '';
        if (version === '1.0.0') break;
      } catch {
        // rebooting
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(version, '1.0.0');
  });

  it('fails verification when the device runs another version than expected', async () => {
    await loadFlow(otaNodes, verifyFlow({ expectedVersion: '9.9.9' }));
    const failed = nextInput(helper.getNode('failed'));
    helper.getNode('verify')?.receive({ device: 'good-auto' });
    const result = (await failed).payload as Json;
    assert.equal(result.passed, false);
    assert.match(result.reasons.join(' '), /9\.9\.9/);
  });

  it('reports a device that never comes back as an error for Catch nodes', async () => {
    await loadFlow(otaNodes, verifyFlow({ waitSeconds: 2 }));
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('verify')?.receive({ device: 'not-there' });
    assert.match(String(((await caught).error as Record<string, unknown>).code), /DEVICE_NOT_FOUND|TIMEOUT/);
  });

  it('reports a missing adapter configuration as NO_ADAPTER', async () => {
    const flow = verifyFlow({ adapter: '' }).filter((n) => n.type !== 'ble-ota-adapter' && n.type !== 'ble-ota-flash');
    await loadFlow(otaNodes, flow);
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('verify')?.receive({ device: 'good-auto' });
    assert.equal(((await caught).error as Record<string, unknown>).code, 'NO_ADAPTER');
  });
});
