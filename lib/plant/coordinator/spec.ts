/**
 * Campaign spec checks beyond the message schema (waves, selector, versions, limits) and the defaults the
 * coordinator runs with. Every refusal is CAMPAIGN_INVALID naming the field.
 */
import { randomBytes } from 'crypto';
import { OtaError } from '../../errors';
import { parseVersion } from '../../image';
import type { CampaignSpec, WaveSpec } from '../messages';
import { checkTopicId } from '../topics';

export const DEFAULT_DEVICE_TIMEOUT_MS = 300_000;
export const DEFAULT_MAX_CONCURRENT = 20;
export const DEFAULT_MAX_REASSIGNMENTS = 2;
export const DEFAULT_MAX_ATTEMPTS = 3;
const MAX_WAVES = 100;

/** A spec with every default filled in (what runs and what the retained state records). */
export interface NormalizedSpec extends CampaignSpec {
  id: string;
  name: string;
  deviceTimeoutMs: number;
  maxConcurrent: number;
  encoding: 'auto' | 'raw' | 'deflate' | 'delta';
  confirm: boolean;
  maxAttempts: number;
  maxReassignments: number;
}

function invalid(text: string): OtaError {
  return new OtaError('CAMPAIGN_INVALID', `campaign spec: ${text}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkInteger(value: unknown, field: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkWave(wave: unknown, index: number): WaveSpec {
  const where = `waves[${index}]`;
  if (!isObject(wave)) throw invalid(`${where} must be an object`);
  const hasCount = wave.count !== undefined;
  const hasPercent = wave.percent !== undefined;
  if (hasCount === hasPercent) throw invalid(`${where} must have exactly one of "count" and "percent"`);
  checkInteger(wave.count, `${where}.count`, 1, 1_000_000);
  if (hasPercent && (typeof wave.percent !== 'number' || !(wave.percent > 0) || wave.percent > 100)) {
    throw invalid(`${where}.percent must be a number above 0 and at most 100, got ${JSON.stringify(wave.percent)}`);
  }
  checkInteger(wave.maxFailures, `${where}.maxFailures`, 1, 1_000_000);
  if (wave.maxFailurePercent !== undefined && (typeof wave.maxFailurePercent !== 'number' || !(wave.maxFailurePercent >= 0) || wave.maxFailurePercent > 100)) {
    throw invalid(`${where}.maxFailurePercent must be a number from 0 to 100, got ${JSON.stringify(wave.maxFailurePercent)}`);
  }
  // Only the known fields: the spec is part of the retained record, which the schema checks strictly.
  return pick(wave, ['count', 'percent', 'maxFailures', 'maxFailurePercent']) as WaveSpec;
}

function pick(source: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

function checkSelector(target: unknown): void {
  if (!isObject(target)) throw invalid('target must be an object');
  const { namePrefix, nameRegex, chip, versionOlderThan, devices } = target;
  if (namePrefix !== undefined && (typeof namePrefix !== 'string' || namePrefix === '')) throw invalid('target.namePrefix must be a non-empty string');
  if (nameRegex !== undefined) {
    if (typeof nameRegex !== 'string' || nameRegex === '') throw invalid('target.nameRegex must be a non-empty string');
    try {
      new RegExp(nameRegex);
    } catch (err) {
      throw invalid(`target.nameRegex ${JSON.stringify(nameRegex)} is not a valid regular expression (${(err as Error).message})`);
    }
  }
  if (chip !== undefined && (typeof chip !== 'string' || chip === '')) throw invalid('target.chip must be a chip name such as "esp32c3"');
  if (versionOlderThan !== undefined && (typeof versionOlderThan !== 'string' || !parseVersion(versionOlderThan))) {
    throw invalid(`target.versionOlderThan must be a version such as "1.2.3", got ${JSON.stringify(versionOlderThan)}`);
  }
  if (devices !== undefined) {
    if (!Array.isArray(devices) || devices.length === 0 || devices.some((d) => typeof d !== 'string' || d === '')) {
      throw invalid('target.devices must be a non-empty list of device addresses or names');
    }
  }
  if (namePrefix === undefined && nameRegex === undefined && versionOlderThan === undefined && devices === undefined) {
    // Selecting every device in range by accident is worse than asking for one criterion.
    throw invalid('target must name devices: namePrefix, nameRegex, versionOlderThan or devices');
  }
}

/** `c-<yyyymmddhhmmss>-<4 hex>` from the clock's epoch milliseconds (UTC). */
export function generateCampaignId(nowMs: number): string {
  const iso = new Date(Math.max(0, Math.floor(nowMs))).toISOString();
  const stamp = iso.slice(0, 19).replace(/[-T:]/g, '');
  return `c-${stamp}-${randomBytes(2).toString('hex')}`;
}

export function normalizeSpec(input: unknown, nowMs: number): NormalizedSpec {
  if (!isObject(input)) throw invalid('a campaign spec must be an object');
  const spec = input as unknown as CampaignSpec;
  const id = spec.id === undefined ? generateCampaignId(nowMs) : checkIdField(spec.id);
  if (spec.name !== undefined && (typeof spec.name !== 'string' || spec.name.length > 200)) throw invalid('name must be a string of at most 200 characters');
  if (!isObject(spec.image as unknown)) throw invalid('image must be an object with sha256 and file or base64');
  if (typeof spec.image.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(spec.image.sha256)) throw invalid('image.sha256 must be 64 hexadecimal digits');
  for (const field of ['file', 'base64', 'manifest'] as const) {
    if (spec.image[field] !== undefined && typeof spec.image[field] !== 'string') throw invalid(`image.${field} must be a string`);
  }
  checkSelector(spec.target);
  if (!Array.isArray(spec.waves) || spec.waves.length === 0 || spec.waves.length > MAX_WAVES) throw invalid(`waves must be a list of 1 to ${MAX_WAVES} waves`);
  const waves = spec.waves.map((w, i) => checkWave(w, i));
  if (spec.encoding !== undefined && !['auto', 'raw', 'deflate', 'delta'].includes(spec.encoding)) throw invalid('encoding must be auto, raw, deflate or delta');
  if (spec.confirm !== undefined && typeof spec.confirm !== 'boolean') throw invalid('confirm must be true or false');
  return {
    id,
    name: spec.name ?? id,
    image: { ...(pick(spec.image, ['file', 'base64', 'manifest']) as CampaignSpec['image']), sha256: spec.image.sha256.toLowerCase() },
    target: pick(spec.target as unknown as Record<string, unknown>, ['namePrefix', 'nameRegex', 'chip', 'versionOlderThan', 'devices']) as CampaignSpec['target'],
    waves,
    deviceTimeoutMs: checkInteger(spec.deviceTimeoutMs, 'deviceTimeoutMs', 1000, 24 * 3600_000) ?? DEFAULT_DEVICE_TIMEOUT_MS,
    maxConcurrent: checkInteger(spec.maxConcurrent, 'maxConcurrent', 1, 10_000) ?? DEFAULT_MAX_CONCURRENT,
    encoding: spec.encoding ?? 'auto',
    confirm: spec.confirm ?? true,
    maxAttempts: checkInteger(spec.maxAttempts, 'maxAttempts', 1, 100) ?? DEFAULT_MAX_ATTEMPTS,
    maxReassignments: checkInteger(spec.maxReassignments, 'maxReassignments', 0, 100) ?? DEFAULT_MAX_REASSIGNMENTS,
  };
}

function checkIdField(id: unknown): string {
  try {
    return checkTopicId(id, 'the campaign id');
  } catch (err) {
    throw invalid((err as Error).message);
  }
}
