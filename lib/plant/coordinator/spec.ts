/**
 * A campaign spec as the coordinator runs it: its known fields, checked by the campaignSpec schema plus what a
 * schema cannot say (selector, versions), with the defaults filled in. Every refusal is CAMPAIGN_INVALID naming
 * the field.
 */
import { randomBytes } from 'crypto';
import { OtaError } from '../../errors';
import { parseVersion } from '../../image';
import type { CampaignSpec } from '../messages';
import { parsePlantMessage } from '../schemas';
import { noImageSource } from './image-source';
import { checkTopicId } from '../topics';

export const DEFAULT_DEVICE_TIMEOUT_MS = 300_000;
export const DEFAULT_MAX_CONCURRENT = 20;
export const DEFAULT_MAX_REASSIGNMENTS = 2;
export const DEFAULT_MAX_ATTEMPTS = 3;

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

function pick(source: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

const SPEC_FIELDS = ['id', 'name', 'image', 'target', 'waves', 'deviceTimeoutMs', 'maxConcurrent', 'encoding', 'confirm', 'maxAttempts', 'maxReassignments'] as const;
const IMAGE_FIELDS = ['sha256', 'file', 'base64', 'manifest'] as const;
const TARGET_FIELDS = ['namePrefix', 'nameRegex', 'chip', 'versionOlderThan', 'devices'] as const;
const WAVE_FIELDS = ['count', 'percent', 'maxFailures', 'maxFailurePercent'] as const;

/**
 * Only the fields a spec has: a request may carry others (they are dropped, not refused), while the spec is
 * part of the retained record, which the schema checks strictly.
 */
function knownFields(input: Record<string, unknown>): Record<string, unknown> {
  const spec = pick(input, SPEC_FIELDS);
  if (isObject(spec.image)) {
    spec.image = pick(spec.image, IMAGE_FIELDS);
    // A digest in capitals names the same image (the record keeps it in lower case).
    const image = spec.image as Record<string, unknown>;
    if (typeof image.sha256 === 'string') image.sha256 = image.sha256.toLowerCase();
  }
  if (isObject(spec.target)) spec.target = pick(spec.target, TARGET_FIELDS);
  if (Array.isArray(spec.waves)) spec.waves = spec.waves.map((w: unknown) => (isObject(w) ? pick(w, WAVE_FIELDS) : w));
  return spec;
}

/** Structure, types and ranges: the campaignSpec schema (lib/plant/schemas.ts), refusals as CAMPAIGN_INVALID. */
function checkBySchema(spec: Record<string, unknown>): CampaignSpec {
  const image = spec.image;
  if (isObject(image) && image.file === undefined && image.base64 === undefined) throw noImageSource(image.sha256);
  try {
    return parsePlantMessage('campaignSpec', spec);
  } catch (err) {
    const e = err as OtaError;
    if (e.code === 'PAYLOAD_INVALID') throw invalid(e.message.replace(/^campaignSpec message: /, ''));
    if (e.code === 'PAYLOAD_TOO_LARGE') {
      const hint = isObject(image) && image.base64 !== undefined ? ' (the base64 image is part of it: give the image as a file in the firmware directory)' : '';
      throw invalid(`${e.message}${hint}`);
    }
    throw err;
  }
}

/** What the schema cannot say: a selector that compiles, a version that parses, a target that names devices. */
function checkSelector(target: CampaignSpec['target']): void {
  const { namePrefix, nameRegex, versionOlderThan, devices } = target;
  if (nameRegex !== undefined) {
    try {
      new RegExp(nameRegex);
    } catch (err) {
      throw invalid(`target.nameRegex ${JSON.stringify(nameRegex)} is not a valid regular expression (${(err as Error).message})`);
    }
  }
  if (versionOlderThan !== undefined && !parseVersion(versionOlderThan)) {
    throw invalid(`target.versionOlderThan must be a version such as "1.2.3", got ${JSON.stringify(versionOlderThan)}`);
  }
  if (devices !== undefined && devices.length === 0) throw invalid('target.devices must be a non-empty list of device addresses or names');
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
  const known = knownFields(input);
  // A campaign id that is not a topic level is named as such, before the schema's pattern says it.
  const id = known.id === undefined ? generateCampaignId(nowMs) : checkIdField(known.id);
  const spec = checkBySchema({ ...known, id });
  checkSelector(spec.target);
  return {
    ...spec,
    id,
    name: spec.name ?? id,
    deviceTimeoutMs: spec.deviceTimeoutMs ?? DEFAULT_DEVICE_TIMEOUT_MS,
    maxConcurrent: spec.maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
    encoding: spec.encoding ?? 'auto',
    confirm: spec.confirm ?? true,
    maxAttempts: spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    maxReassignments: spec.maxReassignments ?? DEFAULT_MAX_REASSIGNMENTS,
  };
}

function checkIdField(id: unknown): string {
  try {
    return checkTopicId(id, 'the campaign id');
  } catch (err) {
    throw invalid((err as Error).message);
  }
}
