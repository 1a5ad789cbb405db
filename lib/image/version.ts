/**
 * The package's one version comparison (image checks, anti-downgrade, scan "older than", the nodes).
 *
 * Rule:
 * - "v1.2.3", "1.2.3-rc1", "2.0", "1.0.0-beta.11+build.7" order by semver precedence (a pre-release
 *   sorts before its release; build metadata is ignored; a missing patch is 0).
 * - git describe output of a tagged build, "<tag>-<n>-g<hash>[-dirty]" (e.g. "v1.2.3-4-g6970792"),
 *   is the tag's version n commits later: after the tag, before the next release. Two describe
 *   strings of the same tag order by n.
 * - Anything else ("6970792-dirty" from `git describe --always` without a tag, "custom", "1") cannot be
 *   ordered: compareVersions returns null. isOutdated counts such a device as outdated (a release
 *   replaces a development build); anti-downgrade does not block it (nothing to compare).
 * - Advertisements (PROTOCOL.md §8) carry major.minor.patch only, so a device running "1.1.0-rc1"
 *   advertises 1.1.0 and one running "v1.2.3-4-g6970792" advertises 1.2.3; a device whose version
 *   does not fit (0xFF 0xFF 0xFF) advertises no version and is unknown, i.e. outdated. Comparisons
 *   from an advertisement are therefore on major.minor.patch: the full string (Status characteristic)
 *   decides anti-downgrade before a transfer.
 */
export interface ParsedVersion {
  major: number;
  minor: number;
  patch: number;
  prerelease: string[];
  /** git describe: commits after the tag (only set for "<tag>-<n>-g<hash>" strings). */
  commitsAfter?: number;
}

const VERSION_PATTERN = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$/;
/** The git describe suffix of a build n commits after its tag: "-<n>-g<abbreviated hash>[-dirty]". */
const DESCRIBE_SUFFIX = /^(.*)-(\d+)-g[0-9a-f]{4,40}(?:-dirty)?$/;

export function parseVersion(text: string | null | undefined): ParsedVersion | null {
  if (typeof text !== 'string') return null;
  const trimmed = text.trim();
  const describe = DESCRIBE_SUFFIX.exec(trimmed);
  if (describe) {
    const tag = parseSemver(describe[1]);
    if (tag) return { ...tag, commitsAfter: Number(describe[2]) };
  }
  return parseSemver(trimmed);
}

function parseSemver(text: string): ParsedVersion | null {
  const m = VERSION_PATTERN.exec(text);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), prerelease: m[4] ? m[4].split('.') : [] };
}

/** -1, 0 or 1 as in semver precedence (a prerelease sorts before its release); null when either does not parse. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 | null {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (!va || !vb) return null;
  return compareParsed(va, vb);
}

/** compareVersions on parsed versions. */
export function compareParsed(va: ParsedVersion, vb: ParsedVersion): -1 | 0 | 1 {
  for (const key of ['major', 'minor', 'patch'] as const) {
    if (va[key] !== vb[key]) return va[key] < vb[key] ? -1 : 1;
  }
  const pre = comparePrerelease(va.prerelease, vb.prerelease);
  if (pre !== 0) return pre;
  return Math.sign((va.commitsAfter ?? 0) - (vb.commitsAfter ?? 0)) as -1 | 0 | 1;
}

/**
 * True when a device running `running` should get `target`: running is lower, or cannot be ordered
 * (null: no version advertised, a bare git hash, free text). `target` must parse (BAD_FILTER otherwise
 * at the caller).
 */
export function isOutdated(running: string | null | undefined, target: string): boolean {
  const t = parseVersion(target);
  if (!t) return false;
  const r = parseVersion(running);
  return r === null || compareParsed(r, t) < 0;
}

function comparePrerelease(a: string[], b: string[]): -1 | 0 | 1 {
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareIdentifier(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function compareIdentifier(a: string, b: string): -1 | 0 | 1 {
  const numeric = /^\d+$/;
  const an = numeric.test(a);
  const bn = numeric.test(b);
  if (an && bn) return Math.sign(Number(a) - Number(b)) as -1 | 0 | 1;
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
