/**
 * A real Node-RED runtime in its own process (the plant tests run several gateways and a coordinator
 * side by side): a user directory with this package linked in, a flows file, plain credentials (the
 * test's own secrets), the Node-RED of node-red-under-test.ts. Ready when its admin API answers and it
 * logged "Started flows".
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { nodeRedBin } from './node-red-under-test';
import { repoRoot } from './paths';
import { freePort } from './free-port';

export interface NodeRedProcessOptions {
  /** Names the process in logs and failures. */
  name: string;
  flows: object[];
  /** Credentials by node id (written unencrypted: credentialSecret false). */
  credentials?: Record<string, Record<string, string>>;
  env?: Record<string, string>;
  /** Reuse this user directory (a restart keeps its files); default a new temporary one. */
  userDir?: string;
}

export interface NodeRedProcess {
  readonly name: string;
  readonly port: number;
  readonly userDir: string;
  readonly child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM and wait for the exit (Node-RED closes its nodes: a gateway publishes "offline"). */
  stop(): Promise<void>;
  /** SIGKILL: the process dies as on a power cut (its broker connection drops, the will fires). */
  kill(): Promise<void>;
}


function prepareUserDir(dir: string, options: NodeRedProcessOptions, port: number): void {
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkgName = (require(path.join(repoRoot(), 'package.json')) as { name: string }).name;
  const link = path.join(dir, 'node_modules', pkgName);
  if (!fs.existsSync(link)) fs.symlinkSync(repoRoot(), link, 'dir');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'plant-test-runtime', version: '0.0.1', private: true, dependencies: { [pkgName]: 'file:..' } }));
  fs.writeFileSync(path.join(dir, 'flows.json'), JSON.stringify(options.flows, null, 1));
  fs.writeFileSync(path.join(dir, 'flows_cred.json'), JSON.stringify(options.credentials ?? {}));
  const settings = `module.exports = {
  flowFile: 'flows.json',
  credentialSecret: false,
  uiHost: '127.0.0.1',
  uiPort: ${port},
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  telemetry: { enabled: false },
  editorTheme: { projects: { enabled: false }, tours: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`;
  fs.writeFileSync(path.join(dir, 'settings.js'), settings);
}

function adminAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/settings', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startNodeRedProcess(options: NodeRedProcessOptions, readyTimeoutMs = 60000): Promise<NodeRedProcess> {
  const userDir = options.userDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `nr-${options.name}-`));
  const port = await freePort();
  prepareUserDir(userDir, options, port);
  const child = spawn(process.execPath, [nodeRedBin, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const deadline = Date.now() + readyTimeoutMs;
  while (!(text.includes('Started flows') && (await adminAnswers(port)))) {
    if (exited) throw new Error(`Node-RED "${options.name}" exited before it started:\n${text.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Node-RED "${options.name}" did not start within ${readyTimeoutMs} ms:\n${text.slice(-4000)}`);
    }
    await sleep(200);
  }
  const end = async (signal: NodeJS.Signals) => {
    if (!exited) child.kill(signal);
    await Promise.race([exit, sleep(15000)]);
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
  };
  return {
    name: options.name,
    port,
    userDir,
    child,
    output: () => text,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}
