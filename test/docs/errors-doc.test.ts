/**
 * docs/ERRORS.md is the catalogue of every error code: a code the sources can produce without a row there
 * fails here, as does a row for a code nothing produces, and an HTTP column that disagrees with the
 * "Update via HTTP" example flow.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';
import { IMAGE_ERROR_CODES } from '../../lib/image/error-codes';
import { ErrorCode, deviceErrorCode } from '../../lib/protocol/constants';
import { scanDirectories, scanSources, type CodeSite } from './error-code-scanner';
import { repoRoot } from '../helpers/paths';

interface DocRow {
  code: string;
  section: string;
  http: string;
}

const EXAMPLES_SECTION = 'Codes added by the example flows';
/** The row for device codes this client does not know: `DEVICE_UNKNOWN_0x..`. */
const UNKNOWN_DEVICE_PREFIX = 'DEVICE_UNKNOWN_0x';
/** A byte no §9 code uses, to stand for `..` in that row. */
const UNUSED_DEVICE_CODE = 0xfd;

/** Rows of the catalogue tables: `| \`CODE\` | when | what to do | HTTP |`, with their `##` section. */
function docRows(markdown: string): DocRow[] {
  const rows: DocRow[] = [];
  let section = '';
  for (const line of markdown.split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading) section = heading[1].trim();
    const row = /^\| `([^`]+)` \|/.exec(line);
    if (!row) continue;
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    rows.push({ code: row[1], section, http: cells[cells.length - 2] });
  }
  return rows;
}

/** Codes computed at run time: DEVICE_<NAME> for every §9 code but OK (success is never an error). */
function deviceCodes(): string[] {
  return Object.values(ErrorCode)
    .filter((value) => value !== ErrorCode.OK)
    .map((value) => deviceErrorCode(value));
}

/** The example flow's own mapping, run as Node-RED would run the function node. */
function httpStatusOf(root: string): (code: string) => number {
  const flow = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'Update via HTTP.json'), 'utf8')) as Array<Record<string, unknown>>;
  const node = flow.find((n) => n.type === 'function' && n.name === 'error to HTTP status');
  assert.ok(node && typeof node.func === 'string', 'the HTTP example has an "error to HTTP status" function node');
  const run = vm.runInNewContext(`(function (msg) {\n${node.func as string}\n})`) as (msg: Record<string, unknown>) => { statusCode: number };
  return (code) => run({ error: { code, message: 'm' } }).statusCode;
}

describe('docs/ERRORS.md', () => {
  const root = repoRoot();
  const doc = fs.readFileSync(path.join(root, 'docs', 'ERRORS.md'), 'utf8');
  const rows = docRows(doc);
  const documented = new Set(rows.map((r) => r.code));
  const sites: CodeSite[] = scanDirectories(root, ['lib', 'bin', 'nodes']);

  describe('the source scanner', () => {
    it('finds codes given directly, through a parameter, as a parameter default and in error objects', () => {
      const found = scanSources(
        new Map([
          ['a.ts', "function toErr(e: unknown, fallback = 'DEFAULT_CODE') { return new OtaError(fallback, String(e)); }"],
          ['b.ts', "class C { expect(nakCode: string) { throw new OtaError(nakCode, 'no'); } run() { return this.expect('VIA_PARAM'); } }"],
          ['c.ts', "throw new OtaError(\n  'DIRECT_CODE',\n  'A sentence, not a code',\n); toErr(x, 'FLOWED_CODE'); const r = { code: 'OBJECT_CODE' };"],
          ['d.ts', "const fine = cond ? new OtaError(flag ? 'LEFT' : 'RIGHT', 'm') : null; log('NOT_A_CODE_ARGUMENT');"],
        ]),
      ).map((s) => s.code);
      assert.deepStrictEqual([...new Set(found)].sort(), ['DEFAULT_CODE', 'DIRECT_CODE', 'FLOWED_CODE', 'LEFT', 'OBJECT_CODE', 'RIGHT', 'VIA_PARAM']);
    });

    it('finds codes in each of lib/, bin/ and nodes/', () => {
      for (const dir of ['lib', 'bin', 'nodes']) {
        assert.ok(sites.some((s) => s.where.startsWith(dir + path.sep)), `no error code found under ${dir}/`);
      }
    });
  });

  it('has one row per code', () => {
    const seen = new Set<string>();
    const twice = rows.filter((r) => seen.size === seen.add(r.code).size).map((r) => r.code);
    assert.deepStrictEqual(twice, [], `codes with more than one row: ${twice.join(', ')}`);
  });

  it('documents every code the TypeScript sources construct', () => {
    const missing = sites.filter((s) => !documented.has(s.code)).map((s) => `${s.code} (${s.where})`);
    assert.deepStrictEqual(missing, [], `add a row to docs/ERRORS.md for: ${missing.join(', ')}`);
  });

  it('documents every device-reported code (DEVICE_<NAME> of lib/protocol/constants.ts)', () => {
    const missing = deviceCodes().filter((code) => !documented.has(code));
    assert.deepStrictEqual(missing, [], `add a row to docs/ERRORS.md for: ${missing.join(', ')}`);
    assert.ok(documented.has(`${UNKNOWN_DEVICE_PREFIX}..`), 'a row for device codes this client does not know');
    assert.ok(deviceErrorCode(UNUSED_DEVICE_CODE).startsWith(UNKNOWN_DEVICE_PREFIX), `unknown device codes look like ${UNKNOWN_DEVICE_PREFIX}..`);
  });

  it('documents every image check code of lib/image', () => {
    const missing = IMAGE_ERROR_CODES.filter((code) => !documented.has(code));
    assert.deepStrictEqual(missing, [], `add a row to docs/ERRORS.md for: ${missing.join(', ')}`);
  });

  it('has no row for a code nothing produces', () => {
    const produced = new Set<string>([...sites.map((s) => s.code), ...deviceCodes(), ...IMAGE_ERROR_CODES]);
    const examples = fs
      .readdirSync(path.join(root, 'examples'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => fs.readFileSync(path.join(root, 'examples', f), 'utf8'))
      .join('\n');
    const stale = rows.filter((r) => {
      if (r.code === `${UNKNOWN_DEVICE_PREFIX}..`) return false;
      if (r.section === EXAMPLES_SECTION) return !examples.includes(`'${r.code}'`);
      return !produced.has(r.code);
    });
    assert.deepStrictEqual(stale.map((r) => r.code), [], 'rows for codes that no source or example produces');
  });

  it('gives the HTTP status the "Update via HTTP" example maps each code to', () => {
    const statusOf = httpStatusOf(root);
    const checked = rows.filter((r) => r.http !== '—');
    assert.ok(checked.length > 50, 'most codes have an HTTP column');
    const codeOf = (r: DocRow) => (r.code === `${UNKNOWN_DEVICE_PREFIX}..` ? deviceErrorCode(UNUSED_DEVICE_CODE) : r.code);
    const wrong = checked.filter((r) => String(statusOf(codeOf(r))) !== r.http).map((r) => `${r.code}: doc ${r.http}, flow ${statusOf(codeOf(r))}`);
    assert.deepStrictEqual(wrong, [], 'HTTP column differs from the example flow');
  });
});
