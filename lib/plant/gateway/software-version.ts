/** The package version the gateway reports in its presence (package.json, found from here or from dist/). */
import * as fs from 'fs';
import * as path from 'path';

let cached: string | null = null;

export function packageVersion(): string {
  if (cached !== null) return cached;
  cached = 'unknown';
  for (const up of ['../../..', '../../../..']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'node-red-contrib-esp32-ble-ota' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // not at this level
    }
  }
  return cached;
}
