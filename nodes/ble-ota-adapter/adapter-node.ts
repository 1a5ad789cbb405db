import type { Node } from '../shared/node-red';
import type { AdapterConnection } from './adapter-connection';

/** The adapter config node as its users see it through RED.nodes.getNode(). */
export interface AdapterNode extends Node {
  connection: AdapterConnection;
  /** Set when the configuration itself is wrong; opening the adapter then fails with it. */
  configError: Error | null;
}
