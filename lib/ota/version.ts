/**
 * Version comparison for lib/ota: the package's one rule, lib/image/version.ts (semver precedence,
 * git describe, unorderable strings, what an advertisement can carry).
 */
export { parseVersion, compareParsed as compareVersions, isOutdated } from '../image/version';
export type { ParsedVersion } from '../image/version';
