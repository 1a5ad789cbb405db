// STUB: replaced at merge
/** Placeholder with the contract's signatures so the nodes compile before the image transfer exists. */
import type { Clock } from '../clock';
import type { PlantBus } from './bus';
import type { PlantTopics } from './topics';

export type PlantLog = (level: 'info' | 'warn' | 'error', text: string) => void;

export class ImageServer {
  constructor(
    readonly bus: PlantBus,
    readonly topics: PlantTopics,
    readonly lookup: (sha256: string) => Promise<Buffer | null>,
    readonly log?: PlantLog,
  ) {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): void {}
}

export interface ImageCacheOptions {
  dir?: string;
  timeoutMs?: number;
  memoryImages?: number;
  log?: PlantLog;
}

export class ImageCache {
  constructor(
    readonly bus: PlantBus,
    readonly topics: PlantTopics,
    readonly gatewayId: string,
    readonly clock: Clock,
    readonly options: ImageCacheOptions = {},
  ) {}
  get(sha256: string, size: number): Promise<Buffer> {
    return Promise.reject(new Error(`the image transfer is not available in this build (${sha256}, ${size} bytes)`));
  }
}
