/**
 * Where a flash request's firmware comes from, safe by construction for flows that take requests from
 * outside (MQTT, HTTP): msg.payload when it is a Buffer; msg.filename only inside the node's firmware
 * directory (symlinks resolved, no escape); msg.url only from the node's allowed hosts (http/https,
 * no redirects, size-capped while streaming); else the node's configured file (set by the flow's
 * author, trusted). A file image brings the signed manifest next to it (`<file>.manifest`) when there is
 * one. Every source is limited to maxBytes. Anything else is refused with a code naming
 * the problem, and no error ever carries bytes of what was read.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { OtaError } from '../../lib/errors';

export interface FirmwareInput {
  image: Buffer;
  /** Where it came from, for status and results: "msg.payload", the file path or the URL. */
  source: string;
  /** The signed manifest found next to a file image (`<file>.manifest`), if there is one. */
  manifest?: Buffer;
}

/** A manifest is 224 + 6 × (at most 32 devices) bytes; anything larger next to an image is not one. */
const MAX_MANIFEST_BYTES = 224 + 6 * 32;
export const MANIFEST_SUFFIX = '.manifest';

export interface FirmwarePolicy {
  /** msg.filename must resolve inside this directory; empty: msg.filename is refused. */
  firmwareDir: string;
  /** Hosts ("files.example.com" or "files.example.com:8080") msg.url may name; empty: msg.url is refused. */
  allowedHosts: string[];
  /** Largest image accepted from any source, in bytes. */
  maxBytes: number;
  /** How long a download may take (ms). */
  downloadTimeoutMs: number;
}

export interface FirmwareRequest {
  payload: unknown;
  filename: unknown;
  url: unknown;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function tooLarge(bytes: number, maxBytes: number, from: string): OtaError {
  return new OtaError('IMAGE_TOO_LARGE', `the firmware from ${from} is ${bytes} bytes, more than this node accepts (${maxBytes} bytes)`, { bytes, maxBytes });
}

/**
 * `<file>.manifest` next to a file image (docs/SECURITY.md), or undefined when there is none. With a firmware
 * directory, the manifest must resolve inside it too (no symbolic link out).
 */
async function manifestNextTo(file: string, dir: string | null): Promise<Buffer | undefined> {
  const candidate = `${file}${MANIFEST_SUFFIX}`;
  let real: string;
  try {
    real = await fs.realpath(candidate);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OtaError('FILE_UNREADABLE', `cannot read the manifest ${candidate}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (dir !== null && !inside(dir, real)) throw new OtaError('FILE_NOT_ALLOWED', `the manifest next to the image leads outside the firmware directory (symbolic link)`);
  const stat = await fs.stat(real);
  if (!stat.isFile() || stat.size > MAX_MANIFEST_BYTES) throw new OtaError('MANIFEST_INVALID', `${candidate} is not a manifest (${stat.isFile() ? `${stat.size} bytes, at most ${MAX_MANIFEST_BYTES}` : 'not a regular file'})`);
  return fs.readFile(real);
}

async function readLimited(file: string, from: string, maxBytes: number, dir: string | null = null): Promise<FirmwareInput> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new OtaError('FILE_UNREADABLE', `firmware file from ${from} is not a regular file: ${file}`);
    if (stat.size > maxBytes) throw tooLarge(stat.size, maxBytes, from);
    const image = await fs.readFile(file);
    const manifest = await manifestNextTo(file, dir);
    return manifest ? { image, source: file, manifest } : { image, source: file };
  } catch (err) {
    if (err instanceof OtaError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OtaError('FILE_NOT_FOUND', `firmware file from ${from} not found: ${file}`);
    throw new OtaError('FILE_UNREADABLE', `cannot read firmware file from ${from} (${file}): ${code ?? 'error'}`);
  }
}

function inside(dir: string, candidate: string): boolean {
  const rel = path.relative(dir, candidate);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** msg.filename: relative to the firmware directory (or absolute inside it); symlinks may not lead out. */
async function fileFromDirectory(filename: string, policy: FirmwarePolicy): Promise<FirmwareInput> {
  if (!policy.firmwareDir.trim()) {
    throw new OtaError('FILE_NOT_ALLOWED', 'msg.filename is refused: this flash node has no firmware directory (set Firmware directory to allow files from it)');
  }
  let dir: string;
  try {
    dir = await fs.realpath(path.resolve(policy.firmwareDir.trim()));
  } catch {
    throw new OtaError('FILE_NOT_ALLOWED', `the node's firmware directory does not exist: ${policy.firmwareDir}`);
  }
  const wanted = path.resolve(dir, filename);
  if (!inside(dir, wanted)) throw new OtaError('FILE_NOT_ALLOWED', `msg.filename "${filename}" is outside the firmware directory`);
  let real: string;
  try {
    real = await fs.realpath(wanted);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new OtaError('FILE_NOT_FOUND', `firmware file "${filename}" not found in the firmware directory`);
    throw new OtaError('FILE_UNREADABLE', `cannot read firmware file "${filename}": ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!inside(dir, real)) throw new OtaError('FILE_NOT_ALLOWED', `msg.filename "${filename}" leads outside the firmware directory (symbolic link)`);
  return readLimited(real, 'msg.filename', policy.maxBytes, dir);
}

export function parseHostList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

/** msg.url: http(s) from an allowed host, no redirects, at most maxBytes, within the timeout. */
async function download(urlText: string, policy: FirmwarePolicy, signal?: AbortSignal): Promise<FirmwareInput> {
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new OtaError('URL_NOT_ALLOWED', 'msg.url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OtaError('URL_NOT_ALLOWED', `msg.url must be http or https, got ${url.protocol}`);
  const host = url.host.toLowerCase();
  if (!policy.allowedHosts.includes(host) && !policy.allowedHosts.includes(url.hostname.toLowerCase())) {
    throw new OtaError('URL_NOT_ALLOWED', `msg.url names host "${url.host}", which is not in this node's allowed hosts${policy.allowedHosts.length ? '' : ' (none configured)'}`, { host: url.host });
  }
  if (url.username || url.password) throw new OtaError('URL_NOT_ALLOWED', 'msg.url must not carry credentials');
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new OtaError('DOWNLOAD_FAILED', `the download from ${url.host} took longer than ${policy.downloadTimeoutMs / 1000} s`)), policy.downloadTimeoutMs);
  const onAbort = () => timeout.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const where = `${url.protocol}//${url.host}${url.pathname}`;
  try {
    const res = await fetch(url, { redirect: 'manual', signal: timeout.signal });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new OtaError('DOWNLOAD_FAILED', `the download of ${where} answered HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}`, { status: res.status });
    }
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > policy.maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge(declared, policy.maxBytes, where);
    }
    const parts: Buffer[] = [];
    let total = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > policy.maxBytes) {
          await reader.cancel().catch(() => undefined);
          throw tooLarge(total, policy.maxBytes, where);
        }
        parts.push(Buffer.from(value));
      }
    }
    return { image: Buffer.concat(parts, total), source: where };
  } catch (err) {
    if (err instanceof OtaError) throw err;
    if (timeout.signal.aborted && timeout.signal.reason instanceof OtaError) throw timeout.signal.reason;
    throw new OtaError('DOWNLOAD_FAILED', `the download of ${where} failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

export async function firmwareFromMsg(request: FirmwareRequest, configuredFile: string, policy: FirmwarePolicy, signal?: AbortSignal): Promise<FirmwareInput> {
  const { payload, filename, url } = request;
  if (Buffer.isBuffer(payload)) {
    if (payload.length === 0) throw new OtaError('EMPTY_IMAGE', 'msg.payload is an empty Buffer: no firmware to send');
    if (payload.length > policy.maxBytes) throw tooLarge(payload.length, policy.maxBytes, 'msg.payload');
    return { image: payload, source: 'msg.payload' };
  }
  if (filename !== undefined && filename !== null && filename !== '') {
    if (typeof filename !== 'string') throw new OtaError('BAD_FILENAME', `msg.filename must be a path string, got ${describe(filename)}`);
    return fileFromDirectory(filename, policy);
  }
  if (url !== undefined && url !== null && url !== '') {
    if (typeof url !== 'string') throw new OtaError('URL_NOT_ALLOWED', `msg.url must be a string, got ${describe(url)}`);
    return download(url, policy, signal);
  }
  if (configuredFile.trim()) return readLimited(configuredFile.trim(), "the node's File setting", policy.maxBytes);
  if (payload === undefined || payload === null || payload === '') {
    throw new OtaError('NO_FIRMWARE', "no firmware given: send a Buffer in msg.payload, a file name in msg.filename (inside the node's firmware directory), a URL in msg.url (from an allowed host), or set the node's File");
  }
  throw new OtaError('NOT_A_BUFFER', `msg.payload must be a Buffer with the firmware image, got ${describe(payload)}`);
}

/** Image check messages may quote the first bytes of what was read; a requester never gets them. */
export function withoutContent(error: OtaError): OtaError {
  if (!/first bytes:/.test(error.message) && !(error.details && 'firstByte' in error.details)) return error;
  const details = error.details ? { ...error.details } : undefined;
  if (details) delete details.firstByte;
  return new OtaError(error.code, error.message.replace(/\s*\(first bytes:[^)]*\)/, '').replace(/ with byte 0x[0-9a-f]{2} instead of 0xe9/, ' without the ESP image magic byte 0xe9'), details);
}
