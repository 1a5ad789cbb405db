/** lib/protocol: protocol v2 (docs/PROTOCOL.md) and the seed firmware's protocol. */
export * from './constants';
export * from './codec';
export * from './status';
export * from './advertisement';
export * from './auth';
export * from './payload';
export * from './detect';
export { V2Client } from './v2-client';
export type { V2ClientOptions, BeginOptions, SessionInfo, ChallengeInfo, TransferProgress } from './v2-client';
export { LegacyClient, legacyPacketSize } from './legacy-client';
export type { LegacyClientOptions } from './legacy-client';
