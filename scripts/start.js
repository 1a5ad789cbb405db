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
function installPackage() {
  fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });
  const link = path.join(userDir, 'node_modules', pkg.name);
  try {
    const current = fs.readlinkSync(link);
    if (path.resolve(path.dirname(link), current) === root) return;
    fs.unlinkSync(link);
  } catch {
    // no link yet
  }
  fs.symlinkSync(path.relative(path.dirname(link), root), link, 'dir');
  const userPkg = { name: 'node-red-project', description: 'Node-RED user directory of the demo', version: '0.0.1', private: true, dependencies: { [pkg.name]: 'file:..' } };
  fs.writeFileSync(path.join(userDir, 'package.json'), `${JSON.stringify(userPkg, null, 2)}\n`);
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
function writeCredentials(flows, keys) {
  const credentials = {};
  for (const node of flows.filter((n) => n.type === 'ble-ota-adapter')) credentials[node.id] = { masterKey: keys.masterKeyHex };
  fs.writeFileSync(path.join(userDir, 'flows_cred.json'), `${JSON.stringify(encryptCredentials(credentials, keys.credentialSecret), null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(path.join(userDir, 'flows_cred.json'), 0o600);
  forgetOldCredentialSecret();
}

/**
 * A user directory from an earlier demo run may hold Node-RED's own generated secret (`_credentialSecret` in
 * .config.runtime.json). With it and settings.credentialSecret both set, Node-RED decrypts with the old one to
 * migrate (@node-red/runtime credentials.js "Case 3") and fails on the file written above: drop it.
 */
function forgetOldCredentialSecret() {
  const file = path.join(userDir, '.config.runtime.json');
  if (!fs.existsSync(file)) return;
  const runtime = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!('_credentialSecret' in runtime)) return;
  delete runtime._credentialSecret;
  fs.writeFileSync(file, `${JSON.stringify(runtime, null, 4)}\n`);
}

/** One tab per example, config nodes shared by id (every example uses the same simulated line). */
function buildFlows(broker, keys) {
  const examplesDir = path.join(root, 'examples');
  const flows = [];
  const configIds = new Set();
  for (const file of fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json')).sort()) {
    const nodes = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
    const tabs = new Set(nodes.filter((n) => n.z).map((n) => n.z));
    for (const z of tabs) flows.push({ id: z, type: 'tab', label: path.basename(file, '.json'), disabled: false, info: '' });
    for (const node of nodes) {
      // The examples ship with localhost:1883; the demo points them at its own broker.
      // aedes speaks MQTT 3.1.1 only: with the embedded broker the example runs without MQTT 5 response topics.
      if (node.type === 'mqtt-broker') Object.assign(node, { broker: broker.host, port: String(broker.port) }, broker.embedded ? { protocolVersion: '4' } : {});
      // The simulated devices hold the demo's release public key: every update needs its signed manifest.
      if (node.type === 'ble-ota-adapter') Object.assign(node, { simReleaseKeys: keys.releasePublicPem, simDevelopment: false });
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

function writeSettings() {
  const settings = `// Generated by scripts/start.js for the demo; edit scripts/start.js instead.
module.exports = {
  flowFile: 'flows.json',
  uiHost: ${JSON.stringify(host)},
  uiPort: ${port},
  httpNodeRoot: '/',
  httpAdminRoot: '/',
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  telemetry: { enabled: false },
  editorTheme: { projects: { enabled: false }, tours: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
  // flows_cred.json (the adapter's Master key) is encrypted with the secret generated next to the demo's keys.
  credentialSecret: require('fs').readFileSync(require('path').join(__dirname, 'keys', 'credential-secret'), 'utf8').trim(),
};
`;
  fs.writeFileSync(path.join(userDir, 'settings.js'), settings);
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

main().catch((err) => {
  console.error(`[start] ${err.message}`);
  process.exit(1);
});
