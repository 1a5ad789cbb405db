// Starts the plant simulator (`esp32-ble-ota plant-sim`, docs/PLANT-SIM.md) as a child process for the
// demo and tests: resolves once it printed its ready line, with its ports and a stop() that ends it
// (SIGTERM) and waits for it to exit. writePlantLayout writes a generated layout file for it.
'use strict';
const path = require('path');
const readline = require('readline');
const { spawn } = require('child_process');

const root = path.join(__dirname, '..');
const CLI = path.join(root, 'dist', 'bin', 'esp32-ble-ota.js');

/**
 * @param {{ layoutFile: string, hciPort?: number, controlPort?: number, readyTimeoutMs?: number, onLog?: (line: string) => void }} options
 * @returns {Promise<{ child: import('child_process').ChildProcess, hciPort: number, controlPort: number, gateways: string[], stop: () => Promise<void> }>}
 */
function launchPlantSim(options) {
  const args = [CLI, 'plant-sim', '--layout', options.layoutFile];
  if (options.hciPort !== undefined) args.push('--hci-port', String(options.hciPort));
  if (options.controlPort !== undefined) args.push('--control-port', String(options.controlPort));
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = options.onLog || (() => undefined);
  readline.createInterface({ input: child.stderr }).on('line', (line) => log(line));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      if (ready) return;
      stop().finally(() => reject(new Error(`plant-sim did not get ready within ${options.readyTimeoutMs || 15000} ms`)));
    }, options.readyTimeoutMs || 15000);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (ready) return log(line);
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        return log(line);
      }
      if (!message || message.plantSim !== 'ready') return log(line);
      ready = true;
      clearTimeout(timer);
      resolve({ child, hciPort: message.hciPort, controlPort: message.controlPort, gateways: message.gateways, stop });
    });
    exited.then(({ code, signal }) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`plant-sim exited before it was ready (code ${code}, signal ${signal})`));
    });
  });
}

/**
 * Writes a generated plant layout (lib/sim/plant generatePlantLayout: a line of gateways with overlapping
 * ranges) to `file` for launchPlantSim; needs the build (dist). Returns the layout.
 * @param {string} file
 * @param {import('../dist/lib/sim/plant').GeneratePlantLayoutOptions} options
 */
function writePlantLayout(file, options) {
  const { generatePlantLayout } = require(path.join(root, 'dist', 'lib', 'sim', 'plant'));
  const layout = generatePlantLayout(options);
  require('fs').writeFileSync(file, `${JSON.stringify(layout, null, 2)}\n`);
  return layout;
}

module.exports = { launchPlantSim, writePlantLayout };
