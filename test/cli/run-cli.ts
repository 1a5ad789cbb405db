/** Runs the compiled CLI (dist/bin) from the repository root; the shared vectors lie next to the repository. */
import { spawnSync } from 'child_process';
import { join, resolve } from 'path';

/** dist/test/cli → three levels up. */
export const ROOT = resolve(__dirname, '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'bin', 'esp32-ble-ota.js');
export const VECTORS = resolve(ROOT, '..', 'shared', 'vectors');

export function runCli(args: string[], timeoutMs = 15000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
