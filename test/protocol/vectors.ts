/**
 * Loads docs/protocol-vectors.json (written by docs/gen-protocol-vectors.py) and converts between its
 * snake_case/hex `fields` and lib/protocol's camelCase/Buffer messages.
 */
import * as fs from 'fs';
import { repoPath } from '../helpers/paths';

export type VectorKind = 'command' | 'response' | 'notification' | 'data' | 'status' | 'advertisement' | 'manifest' | 'device_key' | 'patch';

export interface Vector {
  name: string;
  kind: VectorKind;
  hex: string;
  fields: Record<string, unknown>;
  note: string;
  nonce?: string;
}

export interface VectorFile {
  version: number;
  fleetKey: string;
  /** Plant master key of the device_key vectors. */
  masterKey: string;
  /** Test release key (key_id 0) of the manifest vectors: private scalar (hex) and SEC1 public point. */
  releasePrivateKey: string;
  releasePublicKey: string;
  vectors: Vector[];
}

/** The vectors lie in docs/ at the repository root. */
export function loadVectors(): VectorFile {
  const file = repoPath('docs', 'protocol-vectors.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as VectorFile;
}

/** Field names of PROTOCOL.md whose values are byte arrays (hex in the vectors, Buffers in codec messages). */
const BYTE_FIELDS = new Set(['nonce', 'tag', 'sha256', 'base_sha256', 'manifest', 'key', 'payload']);

export function snakeToCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export function camelToSnake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Vector fields → a codec message (camelCase keys, Buffers for byte fields). */
export function fieldsToMessage(fields: Record<string, unknown>, bytesAsBuffers = true): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    out[snakeToCamel(k)] = bytesAsBuffers && BYTE_FIELDS.has(k) ? Buffer.from(v as string, 'hex') : v;
  }
  return out;
}

/** A codec message → vector fields (snake_case keys, hex for Buffers). */
export function messageToFields(msg: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(msg)) out[camelToSnake(k)] = Buffer.isBuffer(v) ? v.toString('hex') : v;
  return out;
}
