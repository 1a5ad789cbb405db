/**
 * The ble-ota-plant config node's settings, checked before anything connects: the broker URL (mqtt, mqtts,
 * ws, wss; no user or password inside it, those are credentials), the TLS files, the topic prefix and the
 * gateway id (topics.ts rules), and the gateway's slots and scan periods. Every problem is an OtaError
 * naming the setting.
 */
import * as fs from 'fs';
import * as os from 'os';
import { OtaError } from '../../lib/errors';
import { checkPrefix, checkTopicId, type BusConnectOptions } from '../shared/plant-library';
import { settingOrEmpty } from '../shared/env-setting';

export interface PlantSettings {
  url: string;
  username?: string;
  password?: string;
  tls?: NonNullable<BusConnectOptions['tls']>;
  prefix: string;
  gatewayId: string;
  /** Installs the gateway runs at once; null: the adapter's max connections. */
  slots: number | null;
  scanWindowMs: number;
  scanEveryMs: number;
  sightingsEveryMs: number;
  /** Where the gateway keeps fetched images across restarts ('' = memory only). */
  imageDir: string;
}

const BROKER_PROTOCOLS = ['mqtt:', 'mqtts:', 'ws:', 'wss:'];
const PEM_START = '-----BEGIN';

/** The broker URL, or PLANT_BAD_URL naming what is wrong with it. */
export function parseBrokerUrl(value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : '';
  if (!text) throw new OtaError('PLANT_BAD_URL', 'the plant broker URL is empty: give mqtt://host:1883, mqtts://host:8883, ws://host/mqtt or wss://host/mqtt');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Never repeat what could be a password ("user:secret@") in an error or a log line.
    throw new OtaError('PLANT_BAD_URL', `the plant broker URL is not a URL: ${JSON.stringify(text.replace(/[^/@\s]*@/g, '***@').slice(0, 100))}`);
  }
  if (!BROKER_PROTOCOLS.includes(url.protocol)) throw new OtaError('PLANT_BAD_URL', `the plant broker URL must start with mqtt://, mqtts://, ws:// or wss://, got ${url.protocol}//`);
  if (!url.hostname) throw new OtaError('PLANT_BAD_URL', 'the plant broker URL names no host');
  // Credentials belong in the node's credentials (encrypted, never in the flow), not in a URL.
  if (url.username || url.password) throw new OtaError('PLANT_BAD_URL', 'the plant broker URL carries a user name or password: put them into the Username and Password fields instead');
  return text;
}

/** A gateway id from the host name: its characters that topics.ts allows, "gateway" when none are left. */
export function defaultGatewayId(hostname: string = os.hostname()): string {
  const id = hostname
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return id || 'gateway';
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : value === undefined || value === null ? '' : String(value).trim();
}

function seconds(value: unknown, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined || value === null || value === '') return fallback * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new OtaError('BAD_OPTION', `${what} must be ${min} to ${max} seconds, got ${JSON.stringify(value)}`);
  return n * 1000;
}

/** A PEM given inline, or a file holding one. */
function pemOrFile(value: string, what: string): Buffer | undefined {
  if (!value) return undefined;
  if (value.startsWith(PEM_START)) return Buffer.from(value.endsWith('\n') ? value : `${value}\n`);
  try {
    return fs.readFileSync(value);
  } catch (err) {
    throw new OtaError('PLANT_TLS_UNREADABLE', `cannot read the ${what} file ${value}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function tlsOptions(def: Record<string, unknown>): PlantSettings['tls'] {
  const ca = pemOrFile(settingOrEmpty(def.tlsCa), 'CA certificate');
  const cert = pemOrFile(settingOrEmpty(def.tlsCert), 'client certificate');
  const key = pemOrFile(settingOrEmpty(def.tlsKey), 'client key');
  if (Boolean(cert) !== Boolean(key)) throw new OtaError('PLANT_TLS_UNREADABLE', 'a client certificate needs its key and a key needs its certificate: give both or neither');
  const rejectUnauthorized = def.tlsRejectUnauthorized !== false && def.tlsRejectUnauthorized !== 'false';
  if (!ca && !cert && rejectUnauthorized) return undefined;
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), rejectUnauthorized };
}

export function parsePlantSettings(def: Record<string, unknown>, credentials: Record<string, string | undefined> | undefined, hostname?: string): PlantSettings {
  const url = parseBrokerUrl(def.broker);
  const prefix = checkPrefix(text(def.prefix));
  const gatewayId = text(def.gatewayId) ? checkTopicId(text(def.gatewayId), 'the gateway id') : defaultGatewayId(hostname);
  let slots: number | null = null;
  if (text(def.slots) !== '') {
    slots = Number(def.slots);
    if (!Number.isInteger(slots) || slots < 1 || slots > 20) throw new OtaError('BAD_OPTION', `the gateway's slots must be a whole number from 1 to 20 (empty: the adapter's max connections), got ${JSON.stringify(def.slots)}`);
  }
  const scanWindowMs = seconds(def.scanWindow, 2, 0.5, 60, "the gateway's scan window");
  const scanEveryMs = seconds(def.scanEvery, 5, 1, 600, "the gateway's scan period");
  if (scanWindowMs > scanEveryMs) throw new OtaError('BAD_OPTION', `the scan window (${scanWindowMs / 1000} s) must not be longer than the scan period (${scanEveryMs / 1000} s)`);
  const username = text(credentials?.username);
  const password = credentials?.password ? String(credentials.password) : '';
  return {
    url,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    tls: tlsOptions(def),
    prefix,
    gatewayId,
    slots,
    scanWindowMs,
    scanEveryMs,
    sightingsEveryMs: seconds(def.sightingsEvery, 5, 1, 600, "the gateway's sightings period"),
    imageDir: settingOrEmpty(def.imageDir),
  };
}
