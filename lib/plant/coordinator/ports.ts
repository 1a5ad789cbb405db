/**
 * The image server the coordinator starts (a port so that a test can watch its lookups): by default
 * lib/plant/image-transfer.ts ImageServer, which answers gateways' image requests.
 */
import type { PlantBus } from '../bus';
import { ImageServer } from '../image-transfer';
import type { PlantTopics } from '../topics';

export interface ImageServing {
  start(): Promise<void>;
  stop(): void;
}

/** Builds the image server: answers ImageRequests with chunks to the requesting gateway's topic only. */
export type ImageServerFactory = (
  bus: PlantBus,
  topics: PlantTopics,
  lookup: (sha256: string) => Promise<Buffer | null>,
  log: (level: 'info' | 'warn' | 'error', text: string) => void,
) => ImageServing;

/** The product's image server: lib/plant/image-transfer.ts. */
export const plantImageServer: ImageServerFactory = (bus, topics, lookup, log) => new ImageServer(bus, topics, lookup, log);
