/**
 * Secure by default through the nodes: a simulated fleet without keys refuses updates (and the adapter says
 * so at start), the development switch is the explicit opt-out, devices with release keys need the signed
 * manifest (msg.manifest), and a real adapter without a key warns at start.
 */
import { strict as assert } from 'assert';
import { createPrivateKey } from 'crypto';
import { generateReleaseKeyPair, manifestForImage } from '../../lib/security';
import { NO_KEY_DETAIL, adapterStatus } from '../../nodes/shared/adapter-user';
import { collect, helper, helperNode, image, keyedCredentials, loadFlow, otaNodes, simAdapter, type FlowNode, type Json } from './support';

const TAB: FlowNode = { id: 'tab', type: 'tab', label: 'secure by default' };

function flow(adapterSettings: Record<string, unknown>): FlowNode[] {
  return [
    TAB,
    simAdapter('adapter', adapterSettings),
    { id: 'flash', type: 'ble-ota-flash', z: 'tab', adapter: 'adapter', device: '', filename: '', whenBusy: 'queue', outputs: 1, wires: [['out']] },
    helperNode('out'),
    { id: 'catch-errors', type: 'catch', z: 'tab', scope: ['flash'], uncaught: false, wires: [['caught']] },
    helperNode('caught'),
  ];
}

function warnings(): string[] {
  return helper
    .log()
    .args.map((a) => a[0] as Json)
    .filter((e) => e && e.level === 30)
    .map((e) => String(e.msg));
}

/**
 * The outcome of one flash: the result or the caught error's code. One listener per helper node for the
 * whole test (collect), so a flash that is refused leaves no waiting listener behind.
 */
function flasher(): (msg: Record<string, unknown>) => Promise<{ result?: Json; code?: string }> {
  const outs = collect(helper.getNode('out'));
  const errors = collect(helper.getNode('caught'));
  return async (msg) => {
    const [seenOuts, seenErrors] = [outs.length, errors.length];
    helper.getNode('flash')?.receive(msg);
    const deadline = Date.now() + 15000;
    while (outs.length === seenOuts && errors.length === seenErrors) {
      if (Date.now() > deadline) throw new Error('no result and no error within 15 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    if (outs.length > seenOuts) return { result: outs[outs.length - 1].payload as Json };
    return { code: String((errors[errors.length - 1].error as Json).code) };
  };
}

describe('secure by default through the nodes', function () {
  this.timeout(20000);
  const release = generateReleaseKeyPair();
  const signingKey = createPrivateKey(release.privateKeyPem);

  afterEach(() => helper.unload());

  it('a simulated fleet without keys is unprovisioned: the adapter warns, every update is refused', async () => {
    await loadFlow(otaNodes, flow({}), {});
    assert.ok(warnings().some((w) => /has no keys: its devices are unprovisioned/.test(w)), warnings().join('\n'));
    const outcome = await flasher()({ payload: image('1.1.0'), device: 'esp32-line-01' });
    assert.equal(outcome.code, 'DEVICE_NOT_PROVISIONED', JSON.stringify(outcome));
  });

  it('development build (the documented opt-out): devices without keys accept an update, and the log says so', async () => {
    await loadFlow(otaNodes, flow({ simDevelopment: true }), {});
    assert.ok(warnings().some((w) => /is a development build/.test(w)), warnings().join('\n'));
    const outcome = await flasher()({ payload: image('1.1.0'), device: 'esp32-line-01' });
    assert.equal(outcome.result?.after.version, '1.1.0', JSON.stringify(outcome));
  });

  it('devices with release keys need the signed manifest: refused without it, installed with msg.manifest', async () => {
    const f = flow({ simReleaseKeys: release.publicKeyPem });
    await loadFlow(otaNodes, f, keyedCredentials(f));
    const flashOnce = flasher();
    const img = image('1.1.0');
    const without = await flashOnce({ payload: img, device: 'esp32-line-02' });
    assert.equal(without.code, 'MANIFEST_REQUIRED', JSON.stringify(without));
    const manifest = manifestForImage(img, {}, signingKey).bytes;
    const withManifest = await flashOnce({ payload: img, device: 'esp32-line-02', manifest });
    assert.equal(withManifest.result?.after.version, '1.1.0', JSON.stringify(withManifest));
  });

  it('a manifest signed with another release key is refused by the device before anything is erased', async () => {
    const f = flow({ simReleaseKeys: release.publicKeyPem });
    await loadFlow(otaNodes, f, keyedCredentials(f));
    const img = image('1.1.0');
    const forged = manifestForImage(img, {}, createPrivateKey(generateReleaseKeyPair().privateKeyPem)).bytes;
    const outcome = await flasher()({ payload: img, device: 'esp32-line-03', manifest: forged });
    assert.equal(outcome.code, 'DEVICE_MANIFEST_INVALID', JSON.stringify(outcome));
  });

  it('a real adapter without a master key or fleet key warns at start', async () => {
    await loadFlow(otaNodes, [TAB, { id: 'real', type: 'ble-ota-adapter', mode: 'hci', hciDevice: '0' }], {});
    const noKey = () => warnings().filter((w) => /adapter hci0 has no master key or fleet key/.test(w)).length;
    assert.ok(noKey() > 0, warnings().join('\n'));
    await helper.unload();
    await loadFlow(otaNodes, [TAB, { id: 'real', type: 'ble-ota-adapter', mode: 'hci', hciDevice: '0' }]);
    assert.equal(noKey(), 0, 'no warning with a master key');
  });
});

describe('adapter status of a real adapter without a key', () => {
  it('is ready, in yellow, saying there is no key', () => {
    const t = (key: string) => key;
    assert.deepEqual(adapterStatus(t, 'ready', NO_KEY_DETAIL), { fill: 'yellow', shape: 'dot', text: 'status.ready-no-key' });
    assert.deepEqual(adapterStatus(t, 'ready', ''), { fill: 'green', shape: 'dot', text: 'status.ready' });
  });
});
