/**
 * Runs noble's own hci-socket bindings (lib/hci-socket: hci.js, gap.js, gatt.js, acl-stream.js,
 * signaling.js, bindings.js) unchanged on a virtual controller. They are loaded in a module scope of
 * their own for every adapter: `require('@abandonware/bluetooth-hci-socket')` there returns a socket
 * class bound to that controller, noble's sibling files are loaded in the same scope, everything else
 * (debug, events, util, os, crypto) is the ordinary require. The process-wide module cache is not
 * touched, so the real native path (lib/ble/noble-central.ts loadRealNoble) is unaffected.
 *
 * The scope also gives the files their own `setTimeout` and `process`: hci.js's only timer is its 1 s
 * isDevUp poll (hci.js:199), which runs on the controller's clock instead of Node's; bindings.js
 * registers SIGINT/exit handlers (bindings.js:105-106) that are kept by the controller and dropped when
 * it closes (a simulated adapter must not leak process listeners), and the environment variables that
 * select another channel or device (HCI_CHANNEL_USER, NOBLE_HCI_DEVICE_ID, hci.js:132-140) are not seen.
 */
import * as fs from 'fs';
import * as path from 'path';
import Module from 'module';
import * as vm from 'vm';
import type { Noble } from '../../ble/noble-types';
import { VirtualHciSocket, type HciTransport } from './virtual-hci-socket';

/** What the isolated scope needs from the controller besides the socket. */
export interface NobleScopeHost extends HciTransport {
  /** hci.js's setTimeout (its isDevUp poll). */
  pollTimer(fn: () => void, ms: number): unknown;
  /** A process listener noble's bindings registered (kept until the controller closes). */
  processListener(event: string, fn: (...args: unknown[]) => void): void;
}

const SCOPE_PARAMETERS = ['exports', 'require', 'module', '__filename', '__dirname', 'setTimeout', 'process'] as const;
type ModuleFunction = (this: unknown, ...args: unknown[]) => void;

const nobleRoot = path.dirname(require.resolve('@abandonware/noble/package.json'));
const hciSocketDir = path.join(nobleRoot, 'lib', 'hci-socket');
/** Compiled once per process (the same wrapper Node uses, plus the two scope parameters); run per adapter. */
const compiled = new Map<string, ModuleFunction>();
const HIDDEN_ENV = ['HCI_CHANNEL_USER', 'NOBLE_HCI_DEVICE_ID'];

function compiledModule(filename: string): ModuleFunction {
  let fn = compiled.get(filename);
  if (!fn) {
    const source = fs.readFileSync(filename, 'utf8');
    const script = new vm.Script(`(function (${SCOPE_PARAMETERS.join(', ')}) {${source}\n})`, { filename });
    fn = script.runInThisContext() as ModuleFunction;
    compiled.set(filename, fn);
  }
  return fn;
}

const jsonModules = new Map<string, unknown>();

/** Data files (hci-status.json) are read once and shared: they are never written to. */
function jsonModule(filename: string): unknown {
  if (!jsonModules.has(filename)) jsonModules.set(filename, JSON.parse(fs.readFileSync(filename, 'utf8')));
  return jsonModules.get(filename);
}

function resolveSibling(dir: string, id: string): string {
  const base = path.resolve(dir, id);
  for (const candidate of [base, `${base}.js`, `${base}.json`]) {
    if (candidate.startsWith(nobleRoot) && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`noble module ${id} not found from ${dir}`);
}

/** noble's hci-socket NobleBindings class, loaded in a scope of its own bound to `host`. */
export function loadHciBindings(host: NobleScopeHost): new (options: { deviceId?: number }) => object {
  const socketClass = class extends VirtualHciSocket {
    constructor() {
      super(() => host);
    }
  };
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of HIDDEN_ENV) delete env[name];
  const scopedProcess: NodeJS.Process = Object.create(process, {
    env: { value: env },
    on: {
      value(event: string, fn: (...args: unknown[]) => void) {
        host.processListener(event, fn);
        return scopedProcess;
      },
    },
  });
  const scopedSetTimeout = (fn: () => void, ms: number) => host.pollTimer(fn, ms);
  const modules = new Map<string, Module>();
  const requireFrom = (dir: string) => (id: string): unknown => {
    if (id === '@abandonware/bluetooth-hci-socket') return socketClass;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (!id.startsWith('.')) return require(id);
    const filename = resolveSibling(dir, id);
    const cached = modules.get(filename);
    if (cached) return cached.exports;
    if (filename.endsWith('.json')) return jsonModule(filename);
    const m = new Module(filename);
    m.filename = filename;
    modules.set(filename, m);
    compiledModule(filename).call(m.exports, m.exports, requireFrom(path.dirname(filename)), m, filename, path.dirname(filename), scopedSetTimeout, scopedProcess);
    m.loaded = true;
    return m.exports;
  };
  return requireFrom(hciSocketDir)('./bindings') as new (options: { deviceId?: number }) => object;
}

/** A real Noble (lib/noble.js, as noble/with-bindings builds it) on noble's HCI layer on this controller. */
export function createHciNoble(host: NobleScopeHost): Noble {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const NobleClass = require('@abandonware/noble/lib/noble') as new (bindings: object) => Noble;
  const Bindings = loadHciBindings(host);
  return new NobleClass(new Bindings({ deviceId: host.deviceId }));
}
