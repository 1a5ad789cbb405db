import type { Node } from '../shared/node-red';
import type { GatewayRole } from './gateway-role';
import type { PlantConnection } from './plant-connection';
import type { PlantSettings } from './plant-config';

/** The plant config node as its users see it through RED.nodes.getNode(). */
export interface PlantNode extends Node {
  connection: PlantConnection;
  /** Null when the configuration is wrong (configError says why). */
  settings: PlantSettings | null;
  configError: Error | null;
  /** Set when the node has an adapter: this runtime is a gateway of the plant. */
  gateway: GatewayRole | null;
}
