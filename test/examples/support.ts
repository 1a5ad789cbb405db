/**
 * Loading an examples/*.json file into the test runtime: the core nodes it uses, its adapter on the
 * virtual clock, debug nodes swapped for helper nodes so the test can read what they would show.
 */
import { createPrivateKey } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { generateReleaseKeyPair, manifestForImage } from '../../lib/security';
import { helper, keyedCredentials, loadFlow, otaNodes, type FlowNode } from '../nodes/support';
import { repoPath } from '../helpers/paths';
import { nodeRedModule } from '../helpers/node-red-under-test';

const CORE = ['network/10-mqtt.js', 'network/21-httpin.js', 'network/21-httprequest.js', 'function/10-function.js', 'function/15-change.js', 'common/20-inject.js', 'common/21-debug.js', 'common/90-comment.js'];

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const coreNodes = CORE.map((file) => require(nodeRedModule(`@node-red/nodes/core/${file}`)));

export const examplesDir = repoPath('examples');

export function readExample(name: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(path.join(examplesDir, `${name}.json`), 'utf8')) as FlowNode[];
}

/**
 * The release key of the example tests: the simulated devices hold its public key (adapter setting Release
 * keys), so every image needs the manifest signed with it; the adapters' Master key credential is
 * nodes/support TEST_MASTER_KEY (per-device keys), as `npm start` sets both up.
 */
const release = generateReleaseKeyPair();
const releasePrivateKey = createPrivateKey(release.privateKeyPem);
export const RELEASE_PUBLIC_KEY_PEM = release.publicKeyPem;

/** The signed manifest of an image (what `esp32-ble-ota sign` writes next to it). */
export function signImage(image: Buffer): Buffer {
  return manifestForImage(image, {}, releasePrivateKey).bytes;
}

/** Keyed adapters: release public key in the flow, master key as the credential. */
export const KEYED = { simReleaseKeys: RELEASE_PUBLIC_KEY_PEM };

/** The example as a test flow: its tab, virtual-clock adapters, debug nodes as helper nodes. */
export function testFlow(name: string, adapterSettings: Record<string, unknown> = {}, broker?: { host: string; port: number }): FlowNode[] {
  const nodes = readExample(name);
  const tabs = [...new Set(nodes.filter((n) => n.z).map((n) => n.z as string))];
  const flow: FlowNode[] = tabs.map((id) => ({ id, type: 'tab', label: name }));
  for (const node of nodes) {
    if (node.type === 'ble-ota-adapter') flow.push({ ...node, simClock: 'virtual', ...adapterSettings });
    else if (node.type === 'mqtt-broker' && broker) flow.push({ ...node, broker: broker.host, port: String(broker.port) });
    else if (node.type === 'debug') flow.push({ id: node.id, type: 'helper', z: node.z, wires: [] });
    else flow.push(node);
  }
  return flow;
}

/** Grabs Node-RED's HTTP app for http-in nodes, so tests can serve it on 127.0.0.1. */
export const httpNodeApp: { app: ((req: unknown, res: unknown) => void) | null } = { app: null };
export function grabHttpNode(RED: { httpNode: (req: unknown, res: unknown) => void }): void {
  httpNodeApp.app = RED.httpNode;
}

export { helper, keyedCredentials, loadFlow, otaNodes };
