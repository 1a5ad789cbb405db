#!/usr/bin/env node
// `npm start`: the demo. Node-RED (PORT, default 1880) with a user directory inside the project that
// has this package installed, an embedded MQTT broker (aedes on MQTT_PORT, default 1883; MQTT_URL
// points the flows at an existing broker instead), and the example flows deployed on a simulated
// fleet of five ESP32s (esp32-line-01..05).
// Secure by default, as on a real line: the first start generates a plant master key and a release key
// pair in <user dir>/keys (the file names `esp32-ble-ota keygen` uses; secrets 0600, never printed). The
// simulated devices hold their per-device keys (derived from the master key) and the release public key,
// the adapter's Master key credential holds the master key (flows_cred.json, encrypted), and every demo
// image is served with its signed manifest next to it (<image>.manifest).
// `npm start -- --plant` (or PLANT=1): the plant demo instead. The plant simulator, two gateway Node-REDs
// (gw-a on PORT+1, gw-b on PORT+2, user directories in .node-red-user-plant/) and the coordinator's Node-RED
// on PORT with the "Plant rollout" and "Plant dashboard" examples (FlowFuse Dashboard 2.0 installed into its
// user directory from the registry; left out, with the reason, when that fails), all on one broker.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const { URL } = require('url');

const root = path.join(__dirname, '..');
const userDir = path.join(root, '.node-red-user');
const keysDir = path.join(userDir, 'keys');
/** The same names as `esp32-ble-ota keygen --out <dir>` writes. */
const KEY_FILES = {
  master: path.join(keysDir, 'master.key'),
  releasePrivate: path.join(keysDir, 'release-key.pem'),
  releasePublic: path.join(keysDir, 'release-key.pub.pem'),
  releaseKeysBin: path.join(keysDir, 'release_keys.bin'),
  credentialSecret: path.join(keysDir, 'credential-secret'),
};
const pkg = require(path.join(root, 'package.json'));
const port = Number(process.env.PORT || 1880);
const host = process.env.HOST || '127.0.0.1';

function log(text) {
  console.log(`[start] ${text}`);
}

/** Installs this package into the user directory the way npm would for a local path: a symlink. */
function installPackage(dir = userDir, extraDependencies = {}) {
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  const link = path.join(dir, 'node_modules', pkg.name);
  try {
    const current = fs.readlinkSync(link);
    if (path.resolve(path.dirname(link), current) === root) return;
    fs.unlinkSync(link);
  } catch {
    // no link yet
  }
  fs.symlinkSync(path.relative(path.dirname(link), root), link, 'dir');
  const userPkg = { name: 'node-red-project', description: 'Node-RED user directory of the demo', version: '0.0.1', private: true, dependencies: { [pkg.name]: `file:${path.relative(dir, root)}`, ...extraDependencies } };
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(userPkg, null, 2)}\n`);
}

function security() {
  return require(path.join(root, 'dist', 'lib', 'security'));
}

/** Writes a file only when it does not exist yet (the keys are generated once), with the given mode. */
function writeOnce(file, content, mode) {
  if (fs.existsSync(file)) return false;
  fs.writeFileSync(file, content, { mode, flag: 'wx' });
  return true;
}

/**
 * The demo's keys, generated at the first start and kept: the plant master key (32 bytes, hex), the release
 * key pair (PKCS#8 / SPKI PEM, release_keys.bin for firmware builds) and the secret Node-RED encrypts the
 * credentials with. A secret file others can read is tightened to 0600.
 */
function demoKeys() {
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(keysDir, 0o700);
  let created = writeOnce(KEY_FILES.master, `${crypto.randomBytes(32).toString('hex')}\n`, 0o600);
  if (!fs.existsSync(KEY_FILES.releasePrivate)) {
    const pair = security().generateReleaseKeyPair();
    fs.writeFileSync(KEY_FILES.releasePrivate, pair.privateKeyPem, { mode: 0o600, flag: 'wx' });
    fs.writeFileSync(KEY_FILES.releasePublic, pair.publicKeyPem, { mode: 0o644 });
    fs.writeFileSync(KEY_FILES.releaseKeysBin, pair.publicKeySec1, { mode: 0o644 });
    created = true;
  }
  writeOnce(KEY_FILES.credentialSecret, `${crypto.randomBytes(32).toString('hex')}\n`, 0o600);
  for (const secret of [KEY_FILES.master, KEY_FILES.releasePrivate, KEY_FILES.credentialSecret]) fs.chmodSync(secret, 0o600);
  const releasePrivateKey = crypto.createPrivateKey(fs.readFileSync(KEY_FILES.releasePrivate));
  const releasePublicPem = crypto.createPublicKey(releasePrivateKey).export({ type: 'spki', format: 'pem' }).toString();
  return {
    created,
    masterKeyHex: fs.readFileSync(KEY_FILES.master, 'utf8').trim(),
    releasePrivateKey,
    releasePublicPem,
    credentialSecret: fs.readFileSync(KEY_FILES.credentialSecret, 'utf8').trim(),
  };
}

/** Node-RED's credentials file format (@node-red/runtime credentials.js): aes-256-ctr, key = sha256(credentialSecret). */
function encryptCredentials(credentials, secret) {
  const key = crypto.createHash('sha256').update(secret).digest();
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}

/** Every adapter of the demo gets the master key as its credential; written 0600. */
function writeCredentials(flows, keys, dir = userDir) {
  const credentials = {};
  for (const node of flows.filter((n) => n.type === 'ble-ota-adapter')) credentials[node.id] = { masterKey: keys.masterKeyHex };
  fs.writeFileSync(path.join(dir, 'flows_cred.json'), `${JSON.stringify(encryptCredentials(credentials, keys.credentialSecret), null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(path.join(dir, 'flows_cred.json'), 0o600);
  forgetOldCredentialSecret(dir);
}

/**
 * A user directory from an earlier demo run may hold Node-RED's own generated secret (`_credentialSecret` in
 * .config.runtime.json). With it and settings.credentialSecret both set, Node-RED decrypts with the old one to
 * migrate (@node-red/runtime credentials.js "Case 3") and fails on the file written above: drop it.
 */
function forgetOldCredentialSecret(dir = userDir) {
  const file = path.join(dir, '.config.runtime.json');
  if (!fs.existsSync(file)) return;
  const runtime = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!('_credentialSecret' in runtime)) return;
  delete runtime._credentialSecret;
  fs.writeFileSync(file, `${JSON.stringify(runtime, null, 4)}\n`);
}

/** The plant examples run only in the plant demo (`npm start -- --plant`). */
const isPlantExample = (file) => file.startsWith('Plant ');

/** One tab per example, config nodes shared by id (every example uses the same simulated line). */
function buildFlows(broker, keys, wanted = (file) => !isPlantExample(file)) {
  const examplesDir = path.join(root, 'examples');
  const flows = [];
  const configIds = new Set();
  for (const file of fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json') && wanted(f)).sort()) {
    const nodes = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
    const tabs = new Set(nodes.filter((n) => n.z).map((n) => n.z));
    for (const z of tabs) flows.push({ id: z, type: 'tab', label: path.basename(file, '.json'), disabled: false, info: '' });
    for (const node of nodes) {
      // The examples ship with localhost:1883; the demo points them at its own broker.
      // aedes speaks MQTT 3.1.1 only: with the embedded broker the example runs without MQTT 5 response topics.
      if (node.type === 'mqtt-broker') Object.assign(node, { broker: broker.host, port: String(broker.port) }, broker.embedded ? { protocolVersion: '4' } : {});
      // The simulated devices hold the demo's release public key: every update needs its signed manifest.
      if (node.type === 'ble-ota-adapter') Object.assign(node, { simReleaseKeys: keys.releasePublicPem, simDevelopment: false });
      if (node.type === 'ble-ota-plant') node.broker = `mqtt://${broker.host}:${broker.port}`;
      if (node.z) flows.push(node);
      else if (!configIds.has(node.id)) {
        configIds.add(node.id);
        flows.push(node);
      }
    }
  }
  return flows;
}

/**
 * A 1.1.0 image for the "scan and update" and "test-then-confirm" examples, when the library can build one,
 * with its manifest signed by the demo's release key next to it. A file of your own (OTA_FIRMWARE_FILE)
 * needs its own manifest: `esp32-ble-ota sign <file> --key <keys>/release-key.pem`.
 */
function demoFirmware(keys) {
  if (process.env.OTA_FIRMWARE_FILE) {
    if (!fs.existsSync(`${process.env.OTA_FIRMWARE_FILE}.manifest`)) {
      log(`${process.env.OTA_FIRMWARE_FILE} has no manifest next to it: sign it with npx esp32-ble-ota sign ${process.env.OTA_FIRMWARE_FILE} --key ${KEY_FILES.releasePrivate}`);
    }
    return process.env.OTA_FIRMWARE_FILE;
  }
  const file = path.join(userDir, 'firmware', 'demo-esp32-1.1.0.bin');
  try {
    const { buildAppImage } = require(path.join(root, 'dist', 'lib', 'image'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const image = buildAppImage({ chip: 'esp32', version: '1.1.0', projectName: 'line-demo', secureVersion: 0, size: 300 * 1024, seed: 1 });
    fs.writeFileSync(file, image);
    fs.writeFileSync(`${file}.manifest`, security().manifestForImage(image, {}, keys.releasePrivateKey).bytes);
    return file;
  } catch (err) {
    log(`no demo firmware generated (${err.message}); set OTA_FIRMWARE_FILE for the scan and confirm examples`);
    return '';
  }
}

function freePort(p) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(p, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function startBroker() {
  if (process.env.MQTT_URL) {
    const url = new URL(process.env.MQTT_URL);
    log(`MQTT: using ${url.host}`);
    return { host: url.hostname, port: url.port || '1883', close: async () => undefined };
  }
  const mqttPort = Number(process.env.MQTT_PORT || 1883);
  if (!(await freePort(mqttPort))) {
    throw new Error(`port ${mqttPort} is taken: set MQTT_PORT to a free port, or MQTT_URL to use the broker that runs there`);
  }
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(mqttPort, process.env.MQTT_BIND || '127.0.0.1', resolve);
  });
  log(`MQTT: embedded aedes broker on ${process.env.MQTT_BIND || '127.0.0.1'}:${mqttPort}`);
  return {
    host: '127.0.0.1',
    port: String(mqttPort),
    embedded: true,
    close: () => new Promise((resolve) => server.close(() => broker.close(resolve))),
  };
}

function writeSettings(dir = userDir, uiPort = port, keysPath = "require('path').join(__dirname, 'keys', 'credential-secret')") {
  const settings = `// Generated by scripts/start.js for the demo; edit scripts/start.js instead.
module.exports = {
  flowFile: 'flows.json',
  uiHost: ${JSON.stringify(host)},
  uiPort: ${uiPort},
  httpNodeRoot: '/',
  httpAdminRoot: '/',
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  telemetry: { enabled: false },
  editorTheme: { projects: { enabled: false }, tours: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
  // flows_cred.json (the adapter's Master key) is encrypted with the secret generated next to the demo's keys.
  credentialSecret: require('fs').readFileSync(${keysPath}, 'utf8').trim(),
};
`;
  fs.writeFileSync(path.join(dir, 'settings.js'), settings);
}

async function main() {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes', 'ble-ota-flash', 'ble-ota-flash.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm start does)');
  }
  if (!(await freePort(port))) throw new Error(`port ${port} is taken: set PORT to a free port`);
  installPackage();
  const keys = demoKeys();
  writeSettings();
  const broker = await startBroker();
  const flows = buildFlows(broker, keys);
  fs.writeFileSync(path.join(userDir, 'flows.json'), `${JSON.stringify(flows, null, 2)}\n`);
  writeCredentials(flows, keys);
  const firmware = demoFirmware(keys);
  log(`keys ${keys.created ? 'generated' : 'kept'} in ${keysDir} (secrets 0600, never printed): master.key (plant master key: the simulated devices hold keys derived from it, the adapters' Master key credential), release-key.pem (signs manifests), release-key.pub.pem / release_keys.bin (the devices' release key)`);
  if (firmware) log(`demo firmware ${firmware} with its signed manifest ${firmware}.manifest`);
  const token = process.env.OTA_HTTP_TOKEN || require('crypto').randomBytes(16).toString('hex');
  const env = {
    ...process.env,
    OTA_FIRMWARE_FILE: firmware,
    OTA_FIRMWARE_DIR: process.env.OTA_FIRMWARE_DIR || (firmware ? path.dirname(firmware) : ''),
    OTA_HTTP_TOKEN: token,
  };
  const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log(`Node-RED editor: ${url}/  (flows regenerated from examples/ at every start)`);
  log(`sign an image: npx esp32-ble-ota sign app.bin --key ${KEY_FILES.releasePrivate}  (writes app.bin.manifest)`);
  log(`try: curl -X POST -H 'Authorization: Bearer ${token}' -H "X-OTA-Manifest: $(base64 -w0 app.bin.manifest)" -H 'Content-Type: application/octet-stream' --data-binary @app.bin '${url}/ota?device=esp32-line-01'`);
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    red.kill(signal);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  red.on('exit', async (code) => {
    await broker.close();
    process.exit(code ?? 0);
  });
}

// ---- `npm start -- --plant` (or PLANT=1): the two-gateway plant demo -------------------------------------

const plantDir = path.join(root, '.node-red-user-plant');
const PLANT_GATEWAYS = ['gw-a', 'gw-b'];
const DASHBOARD_PACKAGE = '@flowfuse/node-red-dashboard';

/**
 * The plant simulator (scripts/plant-sim-launch.js: one simulated air, ten devices esp32-line-01..10 along a line
 * that both gateways see, each with its own signal strength, provisioned with the demo's keys), when this build
 * has it: { port, close }. Without it each gateway falls back to its own simulated fleet (same device names and
 * addresses, but not the same devices), and the log says so.
 */
async function startPlantSim() {
  let launcher;
  try {
    launcher = require('./plant-sim-launch');
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
  }
  if (!launcher || typeof launcher.launchPlantSim !== 'function' || typeof launcher.writePlantLayout !== 'function') {
    log('plant simulator: not in this build (scripts/plant-sim-launch.js); each gateway simulates its own line instead');
    return null;
  }
  fs.mkdirSync(plantDir, { recursive: true });
  const layoutFile = path.join(plantDir, 'plant-layout.json');
  launcher.writePlantLayout(layoutFile, {
    gateways: PLANT_GATEWAYS,
    devices: 10,
    namePrefix: 'esp32-line-',
    chip: 'esp32',
    version: '1.0.0',
    masterKey: fs.readFileSync(KEY_FILES.master, 'utf8').trim(),
    releaseKeys: [fs.readFileSync(KEY_FILES.releaseKeysBin).toString('hex')],
  });
  const sim = await launcher.launchPlantSim({ layoutFile, onLog: (line) => log(`plant-sim: ${line}`) });
  log(`plant simulator: gateways ${PLANT_GATEWAYS.join(', ')} on 127.0.0.1:${sim.hciPort} (layout ${path.relative(root, layoutFile)})`);
  return { port: sim.hciPort, close: sim.stop };
}

/**
 * @flowfuse/node-red-dashboard in the main user directory, from the registry (once; kept afterwards). False,
 * with the reason printed, when it cannot be installed (offline): the dashboard flow is then left out.
 */
function installDashboard(dir) {
  if (fs.existsSync(path.join(dir, 'node_modules', DASHBOARD_PACKAGE, 'package.json'))) return true;
  log(`installing ${DASHBOARD_PACKAGE} into ${path.relative(root, dir)} (npm, from the registry) ...`);
  const { spawnSync } = require('child_process');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // npm installs into the nearest directory with a package.json: the user directory needs its own first, or
  // the package would land in this project's node_modules.
  const manifest = path.join(dir, 'package.json');
  if (!fs.existsSync(manifest)) fs.writeFileSync(manifest, `${JSON.stringify({ name: 'node-red-project', version: '0.0.1', private: true }, null, 2)}\n`);
  const result = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--no-save', '--ignore-scripts', `${DASHBOARD_PACKAGE}@^1`], { cwd: dir, encoding: 'utf8', timeout: 180000 });
  if (result.status === 0 && fs.existsSync(path.join(dir, 'node_modules', DASHBOARD_PACKAGE, 'package.json'))) return true;
  const reason = (result.error ? result.error.message : `${result.stderr || ''}`.split('\n').find((l) => /ERR|error/i.test(l)) || `npm exited with ${result.status}`).trim();
  log(`dashboard skipped: ${DASHBOARD_PACKAGE} could not be installed (${reason}); offline? The "Plant dashboard" flow is left out`);
  return false;
}

function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** One gateway runtime's flows: the "Plant gateway" example with its id, and the plant simulator's adapter if there is one. */
function gatewayFlows(broker, keys, gatewayId, sim) {
  return buildFlows(broker, keys, (file) => file === 'Plant gateway.json').map((node) => {
    if (node.type === 'ble-ota-plant') return { ...node, gatewayId, name: `plant broker (${gatewayId})` };
    if (node.type === 'ble-ota-adapter' && sim) return { ...node, mode: 'plant', simPlant: `127.0.0.1:${sim.port}`, simGateway: gatewayId, name: `${gatewayId} (simulated plant)` };
    return node;
  });
}

function spawnNodeRed(dir, env, label) {
  const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', dir, '--settings', path.join(dir, 'settings.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (stream, out) => {
    let rest = '';
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) out.write(`[${label}] ${line}\n`);
    });
  };
  prefix(red.stdout, process.stdout);
  prefix(red.stderr, process.stderr);
  return red;
}

async function mainPlant() {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes', 'ble-ota-rollout', 'ble-ota-rollout.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm start does)');
  }
  const ports = [port, ...PLANT_GATEWAYS.map((_, i) => port + 1 + i)];
  for (const p of ports) if (!(await freePort(p))) throw new Error(`port ${p} is taken: set PORT (the plant demo uses PORT to PORT+${PLANT_GATEWAYS.length})`);
  // The keys of the single-line demo are the plant's keys too (master key, release key, credential secret).
  const keys = demoKeys();
  const keysPath = JSON.stringify(KEY_FILES.credentialSecret);
  const broker = await startBroker();
  const sim = await startPlantSim();
  const firmware = demoFirmware(keys);
  const token = process.env.OTA_HTTP_TOKEN || crypto.randomBytes(16).toString('hex');
  const env = {
    ...process.env,
    OTA_FIRMWARE_FILE: firmware,
    OTA_FIRMWARE_DIR: process.env.OTA_FIRMWARE_DIR || (firmware ? path.dirname(firmware) : ''),
    OTA_FIRMWARE_SHA256: firmware ? sha256File(firmware) : '',
    OTA_HTTP_TOKEN: token,
  };
  // Before any Node-RED starts: npm runs synchronously, and the children's output waits on this process.
  const mainDir = path.join(plantDir, 'main');
  fs.mkdirSync(mainDir, { recursive: true });
  const dashboard = installDashboard(mainDir);
  const children = [];
  PLANT_GATEWAYS.forEach((gatewayId, i) => {
    const dir = path.join(plantDir, gatewayId);
    installPackage(dir);
    writeSettings(dir, port + 1 + i, keysPath);
    const flows = gatewayFlows(broker, keys, gatewayId, sim);
    fs.writeFileSync(path.join(dir, 'flows.json'), `${JSON.stringify(flows, null, 2)}\n`);
    writeCredentials(flows, keys, dir);
    children.push(spawnNodeRed(dir, env, gatewayId));
    log(`gateway ${gatewayId}: Node-RED on http://${host}:${port + 1 + i}/`);
  });
  installPackage(mainDir, dashboard ? { [DASHBOARD_PACKAGE]: '^1' } : {});
  writeSettings(mainDir, port, keysPath);
  const flows = buildFlows(broker, keys, (file) => file === 'Plant rollout.json' || (dashboard && file === 'Plant dashboard.json'));
  fs.writeFileSync(path.join(mainDir, 'flows.json'), `${JSON.stringify(flows, null, 2)}\n`);
  writeCredentials(flows, keys, mainDir);
  children.push(spawnNodeRed(mainDir, env, 'main'));
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log(`coordinator: Node-RED editor ${url}/ ("Plant rollout"${dashboard ? `; dashboard ${url}/dashboard/rollouts` : ''})`);
  log(`try: curl -X POST -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -d '{"image": {"file": "${path.basename(firmware || 'app.bin')}", "sha256": "${env.OTA_FIRMWARE_SHA256 || '<sha256>'}"}, "target": {"namePrefix": "esp32-line-"}}' ${url}/rollout/start`);
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill(signal);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
  stop('SIGTERM');
  if (sim && typeof sim.close === 'function') await sim.close();
  await broker.close();
  process.exit(0);
}

const plantMode = process.argv.includes('--plant') || /^(1|true|yes)$/i.test(process.env.PLANT || '');

(plantMode ? mainPlant() : main()).catch((err) => {
  console.error(`[start] ${err.message}`);
  process.exit(1);
});
