/** Where tests find the repository and the shared vectors, from test/ as well as from dist/test/. */
import * as fs from 'fs';
import * as path from 'path';

/** The repository root: the nearest ancestor of this file holding package.json. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

/** A path inside the repository. */
export function repoPath(...parts: string[]): string {
  return path.join(repoRoot(), ...parts);
}

/** ../shared/vectors next to the repository (not checked: see vectorsDir). */
export const SHARED_VECTORS_DIR = path.resolve(repoRoot(), '..', 'shared', 'vectors');

/** The shared vectors directory, with a clear error when it is missing. */
export function vectorsDir(): string {
  if (!fs.existsSync(path.join(SHARED_VECTORS_DIR, 'expected.json'))) {
    throw new Error(`The shared image test vectors are missing: expected ${SHARED_VECTORS_DIR}/expected.json (the directory sits next to the repository).`);
  }
  return SHARED_VECTORS_DIR;
}
