/**
 * The Node-RED the node, example and editor tests run: the devDependency, or the installation named by
 * OTA_TEST_NODE_RED (the node-red package directory; .ci/run uses it for Node-RED 5 on Node 22).
 */
import * as path from 'path';

const dir = process.env.OTA_TEST_NODE_RED ? path.resolve(process.env.OTA_TEST_NODE_RED) : path.dirname(require.resolve('node-red/package.json'));

/** node-red's main module (what node-red-node-test-helper's init takes). */
export const nodeRedMain = require.resolve(dir);
/** node-red's red.js (to run it as its own process). */
export const nodeRedBin = path.join(dir, 'red.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const nodeRedVersion: string = require(path.join(dir, 'package.json')).version;

/** A module of that installation, e.g. "@node-red/nodes/core/network/10-mqtt.js". */
export function nodeRedModule(request: string): string {
  return require.resolve(request, { paths: [dir] });
}
