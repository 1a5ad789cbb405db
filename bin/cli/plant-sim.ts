/**
 * `esp32-ble-ota plant-sim --layout FILE [--hci-port N | --port N] [--control-port N]`: runs the plant simulator
 * (lib/sim/plant, docs/PLANT-SIM.md) until SIGTERM or SIGINT. When it is ready it prints one JSON line
 * {"plantSim":"ready","hciPort","controlPort","gateways","devices"} on stdout; both servers listen on
 * 127.0.0.1 only.
 */
import { promises as fs } from 'fs';
import { OtaError } from '../../lib/errors';
import { PlantSim } from '../../lib/sim/plant';
import { numberOption, stringOption, type ParsedArgs } from './args';
import type { Output } from './commands';

function port(args: ParsedArgs, name: string): number {
  const value = numberOption(args, name, 0);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new OtaError('BAD_ARGUMENT', `--${name} must be a TCP port 0..65535 (0: any free port), got ${value}`);
  return value;
}

export async function plantSimCommand(args: ParsedArgs, io: Output): Promise<number> {
  const file = stringOption(args, 'layout');
  if (!file) throw new OtaError('BAD_ARGUMENT', 'plant-sim needs --layout FILE (a plant layout, docs/PLANT-SIM.md)');
  if (args.options.has('port') && args.options.has('hci-port')) throw new OtaError('BAD_ARGUMENT', '--port is another name for --hci-port: give one of them');
  const hciPort = port(args, args.options.has('port') ? 'port' : 'hci-port');
  const controlPort = port(args, 'control-port');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new OtaError('FILE_NOT_FOUND', `the plant layout ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const plant = new PlantSim(text);
  const ports = await plant.start({ hciPort, controlPort });
  io.out(JSON.stringify({ plantSim: 'ready', ...ports, gateways: plant.layout.gateways, devices: plant.layout.devices.length }));
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await plant.stop();
  io.err('plant-sim stopped');
  return 0;
}
