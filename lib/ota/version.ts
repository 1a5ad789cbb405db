/** Version strings as ESP-IDF apps carry them ("v1.2.3", "1.2.3-rc1", "1.2"). */

/** [major, minor, patch], or null when the text does not start with a number. */
export function parseVersion(text: string | null | undefined): number[] | null {
  const m = /^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec((text ?? '').trim());
  if (!m) return null;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

export function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
