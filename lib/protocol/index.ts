/** lib/protocol: protocol v2 (docs/PROTOCOL.md) and the seed firmware's protocol. */
export * from './constants';
export * from './codec';
export * from './status';
export * from './advertisement';
export * from './auth';
