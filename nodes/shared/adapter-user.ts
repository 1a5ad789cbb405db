/**
 * What every OTA node does with its adapter config node: find it, show its state, and refuse work
 * with a clear error when it is not configured or not usable.
 */
import { OtaError } from '../../lib/errors';
import type { AdapterState } from '../ble-ota-adapter/adapter-connection';
import type { AdapterNode } from '../ble-ota-adapter/adapter-node';
import type { NodeAPI, NodeStatus } from './node-red';

export function findAdapter(RED: NodeAPI, id: unknown): AdapterNode | null {
  if (typeof id !== 'string' || !id) return null;
  const node = RED.nodes.getNode(id) as AdapterNode | null;
  return node && node.connection ? node : null;
}

export function missingAdapterError(): OtaError {
  return new OtaError('NO_ADAPTER', 'no BLE adapter is configured for this node: pick a ble-ota-adapter in its settings');
}

/** The status a user node shows while idle, from its adapter's state. */
export function adapterStatus(state: AdapterState | 'none', detail = ''): NodeStatus {
  switch (state) {
    case 'none':
      return { fill: 'red', shape: 'ring', text: 'no adapter configured' };
    case 'ready':
      return { fill: 'green', shape: 'dot', text: 'adapter ready' };
    case 'starting':
      return { fill: 'yellow', shape: 'ring', text: 'adapter starting' };
    case 'off':
      return { fill: 'red', shape: 'ring', text: 'adapter off' };
    case 'missing':
      return { fill: 'red', shape: 'ring', text: 'adapter missing' };
    case 'error':
      return { fill: 'red', shape: 'dot', text: detail ? `adapter error: ${detail}`.slice(0, 60) : 'adapter error' };
    case 'closed':
    case 'idle':
    default:
      return { fill: 'grey', shape: 'ring', text: 'adapter idle' };
  }
}
