/** Runs the compiled CLI (dist/bin) from the repository root; the shared vectors lie next to the repository. */
import { spawnSync } from 'child_process';
import { join } from 'path';
import { SHARED_VECTORS_DIR, repoRoot } from '../helpers/paths';
export { hasVectors, skipWithoutVectors, vectorPath } from '../helpers/paths';

export const ROOT = repoRoot();
export const CLI = join(ROOT, 'dist', 'bin', 'esp32-ble-ota.js');
export const VECTORS = SHARED_VECTORS_DIR;

/** `env`: variables added to this process's environment (undefined removes one). */
export function runCli(args: string[], timeoutMs = 15000, env: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
