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

/**
 * ../shared/vectors next to the repository (the real ESP-IDF images); SHARED_VECTORS_DIR overrides it
 * (e.g. to check that a clone without them still passes).
 */
export const SHARED_VECTORS_DIR = process.env.SHARED_VECTORS_DIR ? path.resolve(process.env.SHARED_VECTORS_DIR) : path.resolve(repoRoot(), '..', 'shared', 'vectors');

export function hasVectors(): boolean {
  return fs.existsSync(path.join(SHARED_VECTORS_DIR, 'expected.json'));
}

const MISSING = `needs the real ESP-IDF images of ../shared/vectors (not found at ${SHARED_VECTORS_DIR})`;

/** The test running now (set by current-test.ts, mocha's root hook), so a vector read can skip it. */
let currentTest: Mocha.Runnable | undefined;
export function setCurrentTest(test: Mocha.Runnable | undefined): void {
  currentTest = test;
}

/**
 * Without the shared vectors a contributor's clone skips the test that needs them, with a one-line
 * reason; CI (CI set) fails instead, so the vectors are always exercised there.
 */
export function skipWithoutVectors(ctx?: Mocha.Context): void {
  if (hasVectors()) return;
  if (process.env.CI) throw new Error(`The shared image test vectors are missing: this test ${MISSING}; CI runs every test.`);
  const runnable = ctx?.test ?? ctx?.currentTest ?? currentTest;
  if (!runnable) throw new Error(`The shared image test vectors are missing: this test ${MISSING}.`);
  // From a before() hook the whole suite is skipped: say so once, for the suite.
  const what = (runnable as Mocha.Runnable & { type?: string }).type === 'hook' ? `every test of "${runnable.parent?.fullTitle() ?? ''}"` : runnable.fullTitle();
  console.log(`    skipped: ${what}: ${MISSING}`);
  if (ctx) ctx.skip();
  runnable.skip();
}

/** The shared vectors directory; skips the running test (see skipWithoutVectors) when it is missing. */
export function vectorsDir(): string {
  skipWithoutVectors();
  return SHARED_VECTORS_DIR;
}

/** A file of the shared vectors (skips the running test when they are missing). */
export function vectorPath(name: string): string {
  return path.join(vectorsDir(), name);
}
