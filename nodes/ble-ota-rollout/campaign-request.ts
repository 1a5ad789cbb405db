/**
 * What a message to the rollout node asks for: start a campaign (msg.topic "start", or a payload with an
 * image), pause / resume / cancel one (msg.topic, payload.campaign), or the campaigns' state ("status").
 * The topic's last level counts, so an MQTT topic like "<prefix>/v1/rollouts/start" routes as "start".
 * A start request is completed with the node's defaults (waves, per-device timeout, concurrency, abort
 * percentage); the coordinator validates the campaign itself (CAMPAIGN_INVALID).
 */
import { OtaError } from '../../lib/errors';
import type { CampaignSpec, WaveSpec } from '../shared/plant-library';

export type ControlAction = 'pause' | 'resume' | 'cancel';

export type RolloutRequest = { kind: 'start'; spec: CampaignSpec } | { kind: 'control'; action: ControlAction; campaign: string; reason?: string } | { kind: 'status'; campaign?: string };

export interface RolloutDefaults {
  waves: WaveSpec[];
  deviceTimeoutMs: number;
  maxConcurrent: number;
  /** maxFailurePercent of every wave that sets no abort criterion of its own (100: never abort). */
  abortPercent: number;
  confirm: boolean;
  encoding: NonNullable<CampaignSpec['encoding']>;
  maxReassignments: number;
}

/** A canary of one device, then everything left. */
export const DEFAULT_WAVES: WaveSpec[] = [{ count: 1 }, { percent: 100 }];

const ACTIONS: readonly string[] = ['pause', 'resume', 'cancel'];

function badRequest(message: string): OtaError {
  return new OtaError('ROLLOUT_BAD_REQUEST', message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** A JSON string payload (MQTT in without JSON parsing, HTTP text) is read as JSON. */
function payloadObject(payload: unknown): unknown {
  if (Buffer.isBuffer(payload)) payload = payload.toString('utf8');
  if (typeof payload === 'string' && /^\s*\{/.test(payload)) {
    try {
      return JSON.parse(payload) as unknown;
    } catch {
      throw badRequest('msg.payload is not valid JSON');
    }
  }
  return payload;
}

/** The waves setting of the node: [{count}|{percent}], each positive; PLANT config error otherwise. */
export function parseWaves(value: unknown): WaveSpec[] {
  let list = value;
  if (typeof list === 'string') {
    if (!list.trim()) return DEFAULT_WAVES;
    try {
      list = JSON.parse(list);
    } catch {
      throw new OtaError('BAD_OPTION', 'the waves setting is not a JSON list like [{"count": 1}, {"percent": 100}]');
    }
  }
  if (list === undefined || list === null) return DEFAULT_WAVES;
  if (!Array.isArray(list) || list.length === 0 || list.length > 20) throw new OtaError('BAD_OPTION', 'the waves setting must list 1 to 20 waves');
  return list.map((wave: unknown, i: number) => {
    const w = isObject(wave) ? wave : {};
    const count = w.count === undefined || w.count === '' ? undefined : Number(w.count);
    const percent = w.percent === undefined || w.percent === '' ? undefined : Number(w.percent);
    if (count !== undefined && (!Number.isInteger(count) || count < 1)) throw new OtaError('BAD_OPTION', `wave ${i + 1}: the count must be a whole number of at least 1, got ${JSON.stringify(w.count)}`);
    if (percent !== undefined && (!Number.isFinite(percent) || percent <= 0 || percent > 100)) throw new OtaError('BAD_OPTION', `wave ${i + 1}: the percentage must be above 0 and at most 100, got ${JSON.stringify(w.percent)}`);
    if ((count === undefined) === (percent === undefined)) throw new OtaError('BAD_OPTION', `wave ${i + 1}: give either a device count or a percentage`);
    return count !== undefined ? { count } : { percent: percent as number };
  });
}

function withAbort(waves: WaveSpec[], abortPercent: number): WaveSpec[] {
  if (abortPercent >= 100) return waves;
  return waves.map((w) => (w.maxFailures === undefined && w.maxFailurePercent === undefined ? { ...w, maxFailurePercent: abortPercent } : w));
}

/** The start request's campaign: the payload's fields win, the node's settings fill the rest. */
export function campaignSpec(payload: Record<string, unknown>, defaults: RolloutDefaults): CampaignSpec {
  const waves = Array.isArray(payload.waves) ? (payload.waves as WaveSpec[]) : defaults.waves;
  return {
    deviceTimeoutMs: defaults.deviceTimeoutMs,
    maxConcurrent: defaults.maxConcurrent,
    confirm: defaults.confirm,
    encoding: defaults.encoding,
    maxReassignments: defaults.maxReassignments,
    ...(payload as unknown as CampaignSpec),
    waves: withAbort(waves, defaults.abortPercent),
  };
}

function campaignId(msg: { payload?: unknown; campaign?: unknown }, payload: unknown): string | undefined {
  if (typeof payload === 'string' && payload.trim()) return payload.trim();
  if (isObject(payload)) {
    for (const key of ['campaign', 'id']) if (typeof payload[key] === 'string' && payload[key]) return payload[key] as string;
  }
  return typeof msg.campaign === 'string' && msg.campaign ? msg.campaign : undefined;
}

export function parseRequest(msg: { topic?: unknown; payload?: unknown; campaign?: unknown }, defaults: RolloutDefaults): RolloutRequest {
  const topic = typeof msg.topic === 'string' ? msg.topic.trim() : '';
  const verb = topic.split('/').pop()?.toLowerCase() ?? '';
  const payload = payloadObject(msg.payload);
  if (verb === 'start' || (!ACTIONS.includes(verb) && verb !== 'status' && isObject(payload) && 'image' in payload)) {
    if (!isObject(payload)) throw badRequest('a start request needs the campaign as an object in msg.payload: {"image": {"sha256", "file"}, "target": {...}, "waves": [...]}');
    return { kind: 'start', spec: campaignSpec(payload, defaults) };
  }
  if (ACTIONS.includes(verb)) {
    const campaign = campaignId(msg, payload);
    if (!campaign) throw badRequest(`"${verb}" needs the campaign id: msg.payload.campaign (or msg.payload as the id)`);
    const reason = isObject(payload) && typeof payload.reason === 'string' ? payload.reason : undefined;
    return { kind: 'control', action: verb as ControlAction, campaign, ...(reason ? { reason } : {}) };
  }
  if (verb === 'status') {
    const campaign = campaignId(msg, payload);
    return campaign ? { kind: 'status', campaign } : { kind: 'status' };
  }
  throw badRequest(`msg.topic ${topic ? `"${topic}"` : '(empty)'} is not start, pause, resume, cancel or status, and msg.payload is no campaign with an image`);
}
