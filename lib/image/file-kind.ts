/** Names common files people pick by mistake, so "not an ESP image" can say what the file is instead. */
const SIGNATURES: ReadonlyArray<{ test: (buf: Buffer) => boolean; what: string }> = [
  { test: (b) => b.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])), what: 'an ELF file (the build output before conversion); use the .bin file from the build directory' },
  { test: (b) => b.subarray(0, 4).toString('latin1') === 'UF2\n', what: 'a UF2 file; use the .bin file from the build directory' },
  { test: (b) => b[0] === 0x50 && b[1] === 0x4b, what: 'a ZIP archive; extract the application .bin first' },
  { test: (b) => b[0] === 0x1f && b[1] === 0x8b, what: 'a gzip file; decompress it first' },
  { test: (b) => /^:[0-9A-Fa-f]{8}/.test(b.subarray(0, 9).toString('latin1')), what: 'an Intel HEX text file; use the binary .bin file' },
  { test: (b) => /^\s*<(!doctype|html|\?xml)/i.test(b.subarray(0, 64).toString('latin1')), what: 'a web page (HTML), probably an error page saved instead of the firmware download' },
  { test: (b) => /^\s*[{[]/.test(b.subarray(0, 16).toString('latin1')), what: 'a JSON/text file, not a firmware binary' },
  { test: (b) => b.subarray(0, Math.min(b.length, 4096)).every((x) => x === 0xff), what: 'erased flash (all 0xFF bytes)' },
  { test: (b) => b.subarray(0, Math.min(b.length, 4096)).every((x) => x === 0), what: 'all zero bytes' },
];

/** A phrase like "an ELF file (...)", or null when the content is not recognised. */
export function describeForeignFile(buf: Buffer): string | null {
  return SIGNATURES.find((s) => s.test(buf))?.what ?? null;
}
