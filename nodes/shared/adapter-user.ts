/**
 * What every OTA node does with its adapter config node: find it, show its state (marked SIM on a
 * simulated fleet), and refuse work with a clear error when it is not configured or not usable.
 */
import { OtaError } from '../../lib/errors';
import type { AdapterConnection, AdapterState } from '../ble-ota-adapter/adapter-connection';
import type { AdapterNode } from '../ble-ota-adapter/adapter-node';
import type { Node, NodeAPI, NodeStatus } from './node-red';
import { sharedTranslator, type Translate } from './i18n';

export function findAdapter(RED: NodeAPI, id: unknown): AdapterNode | null {
  if (typeof id !== 'string' || !id) return null;
  const node = RED.nodes.getNode(id) as AdapterNode | null;
  return node && node.connection ? node : null;
}

export function missingAdapterError(): OtaError {
  return new OtaError('NO_ADAPTER', 'no BLE adapter is configured for this node: pick a ble-ota-adapter in its settings');
}

/** The detail of the ready state of a real adapter without a key (shown as a warning). */
export const NO_KEY_DETAIL = 'no key';

/** The status a user node shows while idle, from its adapter's state. */
export function adapterStatus(t: Translate, state: AdapterState | 'none', detail = ''): NodeStatus {
  switch (state) {
    case 'none':
      return { fill: 'red', shape: 'ring', text: t('status.none') };
    case 'ready':
      // Secure by default: a real adapter without a key is ready, but provisioned devices will refuse it.
      if (detail === NO_KEY_DETAIL) return { fill: 'yellow', shape: 'dot', text: t('status.ready-no-key') };
      return { fill: 'green', shape: 'dot', text: t('status.ready') };
    case 'starting':
      return { fill: 'yellow', shape: 'ring', text: t('status.starting') };
    case 'off':
      return { fill: 'red', shape: 'ring', text: t('status.off') };
    case 'missing':
      return { fill: 'red', shape: 'ring', text: t('status.missing') };
    case 'error':
      return { fill: 'red', shape: 'dot', text: (detail ? t('status.error-detail', { detail }) : t('status.error')).slice(0, 60) };
    case 'closed':
    case 'idle':
    default:
      return { fill: 'grey', shape: 'ring', text: t('status.idle') };
  }
}

/**
 * node.status for a node on this adapter: every text carries the SIM mark when the adapter is a
 * simulated fleet, so a flow on simulated devices can never be taken for one on the line.
 */
export function statusSetter(RED: NodeAPI, node: Node, connection: AdapterConnection | null): (status: NodeStatus) => void {
  const shared = sharedTranslator(RED);
  const simulated = connection?.settings.simulated === true;
  return (status) => {
    if (!simulated) {
      node.status(status);
      return;
    }
    node.status({ ...status, text: shared('status.sim', { text: status.text ?? '' }) });
  };
}

/** The library's adapter errors speak to CLI users ("Use --sim"); in Node-RED, name the adapter setting. */
export function forNodeRed(error: OtaError): OtaError {
  if (!/--sim\b/.test(error.message)) return error;
  error.message = error.message.replace(/\s*Use --sim[^.]*\./, ' Pick "simulated fleet" in the adapter settings to try flows without hardware.');
  return error;
}
