/**
 * What `npm pack` would publish: runtime files only (no tests, no firmware host tests, no source maps
 * pointing at unshipped sources), the LICENSE package.json names, types for the library entry, every
 * node with its editor file and both locales, and a README with Install and Security sections.
 */
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { repoRoot } from '../helpers/paths';

const root = repoRoot();
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function packedFiles(): string[] {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path);
}

describe('package contents (npm pack --dry-run)', function () {
  this.timeout(30000);
  let files: string[] = [];
  before(() => {
    files = packedFiles();
  });

  it('ships the Apache-2.0 LICENSE package.json names, with homepage and bugs', () => {
    assert.equal(pkg.license, 'Apache-2.0');
    assert.ok(files.includes('LICENSE'));
    assert.match(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004/);
    assert.match(String(pkg.homepage), /^https:\/\//);
    assert.match(String(pkg.bugs?.url), /^https:\/\/.*\/issues$/);
  });

  it('ships no tests, no firmware host tests, no build output of the twin, no development scripts', () => {
    const offending = files.filter((f) => /(^|\/)test(s)?\//.test(f) || /\.test\.(js|ts|c)$/.test(f) || f.startsWith('firmware/host/') || f.startsWith('firmware/build/') || f.startsWith('scripts/') || f.endsWith('.py') || f.endsWith('.ts') && !f.endsWith('.d.ts'));
    assert.deepEqual(offending, []);
  });

  it('ships no source map and no JavaScript that points at one', () => {
    assert.deepEqual(files.filter((f) => f.endsWith('.map')), []);
    const pointing = files.filter((f) => f.endsWith('.js') && /sourceMappingURL=/.test(fs.readFileSync(path.join(root, f), 'utf8')));
    assert.deepEqual(pointing, []);
  });

  it('ships the library entry with its type declarations, usable from TypeScript', () => {
    assert.ok(files.includes(pkg.main), pkg.main);
    assert.equal(pkg.types, 'dist/lib/index.d.ts');
    assert.ok(files.includes(pkg.types));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-types-'));
    try {
      const consumer = path.join(dir, 'consumer.ts');
      fs.writeFileSync(consumer, `import { OtaError, flashDevice, validateAppImage } from ${JSON.stringify(path.join(root, 'dist', 'lib'))};\nconst e: OtaError = new OtaError('BAD_OPTION', 'x');\nconst f: typeof flashDevice = flashDevice;\nvoid validateAppImage; void e; void f;\n`);
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '--noEmit', '--strict', '--skipLibCheck', '--types', 'node', consumer], { cwd: root, encoding: 'utf8' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships every node with its editor file, icons and complete en-US and de locales (help included)', () => {
    for (const [type, js] of Object.entries(pkg['node-red'].nodes as Record<string, string>)) {
      const dir = path.posix.dirname(js);
      for (const f of [js, `${dir}/${type}.html`, `${dir}/locales/en-US/${type}.json`, `${dir}/locales/de/${type}.json`, `${dir}/locales/en-US/${type}.html`, `${dir}/locales/de/${type}.html`]) {
        assert.ok(files.includes(f), `${f} is packed`);
      }
    }
    assert.ok(files.some((f) => f.startsWith('examples/') && f.endsWith('.json')));
  });

  it('has a README with Install and Security sections', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    assert.match(readme, /^## Install$/m);
    assert.match(readme, /^## Security$/m);
    assert.match(readme, /allowScripts|allow-scripts/);
  });
});
