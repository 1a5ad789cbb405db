/**
 * Where a flash request's firmware comes from: msg.payload when it is a Buffer, else msg.filename,
 * else the node's configured file. Anything else is refused with a code naming the problem.
 */
import { promises as fs } from 'fs';
import { OtaError } from '../../lib/errors';

export interface FirmwareInput {
  image: Buffer;
  /** Where it came from, for status and results: "msg.payload" or the file path. */
  source: string;
}

async function readFirmwareFile(path: string, from: string): Promise<FirmwareInput> {
  try {
    return { image: await fs.readFile(path), source: path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OtaError('FILE_NOT_FOUND', `firmware file from ${from} not found: ${path}`);
    throw new OtaError('FILE_UNREADABLE', `cannot read firmware file from ${from} (${path}): ${(err as Error).message}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export async function firmwareFromMsg(payload: unknown, filename: unknown, configuredFile: string): Promise<FirmwareInput> {
  if (Buffer.isBuffer(payload)) {
    if (payload.length === 0) throw new OtaError('EMPTY_IMAGE', 'msg.payload is an empty Buffer: no firmware to send');
    return { image: payload, source: 'msg.payload' };
  }
  if (filename !== undefined && filename !== null && filename !== '') {
    if (typeof filename !== 'string') throw new OtaError('BAD_FILENAME', `msg.filename must be a path string, got ${describe(filename)}`);
    return readFirmwareFile(filename, 'msg.filename');
  }
  if (configuredFile.trim()) return readFirmwareFile(configuredFile.trim(), 'the node\'s File setting');
  if (payload === undefined || payload === null || payload === '') {
    throw new OtaError('NO_FIRMWARE', 'no firmware given: send a Buffer in msg.payload, a path in msg.filename, or set the node\'s File');
  }
  throw new OtaError('NOT_A_BUFFER', `msg.payload must be a Buffer with the firmware image, got ${describe(payload)}`);
}
