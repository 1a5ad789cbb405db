/**
 * The agent's default ports: the JSON codec with the gateway's task check, and images from the image
 * directory (a file named by the image's SHA-256). The plant's MQTT image transfer (an ImageSource with its
 * own cache) is passed as the `images` option where it is wired.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { OtaError } from '../../errors';
import type { GatewayCodec, ImageSource } from './ports';
import { parseTask } from './task-check';

export const jsonGatewayCodec: GatewayCodec = {
  decodeTask: parseTask,
  encode: (_kind, message) => Buffer.from(JSON.stringify(message)),
};

/** Images as files `<dir>/<sha256>`; without a directory every image is unavailable. */
export function directoryImageSource(dir: string | undefined): ImageSource {
  return {
    async get(sha256: string): Promise<Buffer> {
      if (!dir || !/^[0-9a-f]{64}$/.test(sha256)) throw new OtaError('IMAGE_UNAVAILABLE', `image ${sha256.slice(0, 16)}… is not available on this gateway (no image directory holds it)`);
      try {
        return await fs.readFile(path.join(dir, sha256));
      } catch {
        throw new OtaError('IMAGE_UNAVAILABLE', `image ${sha256.slice(0, 16)}… is not in the gateway's image directory`);
      }
    },
  };
}
