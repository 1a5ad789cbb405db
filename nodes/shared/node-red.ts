/**
 * The small part of Node-RED's runtime API our nodes use, typed here so the nodes compile without
 * pulling Node-RED's type packages into the build.
 */
export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

export type SendFn = (msg: NodeMessage | Array<NodeMessage | null>) => void;
export type DoneFn = (err?: Error) => void;

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export interface Node {
  id: string;
  type: string;
  name?: string;
  credentials?: Record<string, string | undefined>;
  status(status: NodeStatus | Record<string, never>): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  send(msg: NodeMessage | Array<NodeMessage | null>): void;
  on(event: 'input', fn: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: 'close', fn: (removed: boolean, done: () => void) => void): void;
}

export interface NodeAPI {
  nodes: {
    createNode(node: object, def: NodeDef): void;
    registerType<T extends Node>(type: string, ctor: (this: T, def: NodeDef) => void, opts?: { credentials?: Record<string, { type: 'text' | 'password' }> }): void;
    getNode(id: string): unknown;
  };
  _(key: string, substitutions?: Record<string, unknown>): string;
  util: { evaluateNodeProperty(value: string, type: string, node: Node, msg: NodeMessage): unknown };
  log: { info(msg: unknown): void; warn(msg: unknown): void; error(msg: unknown): void };
}
