/**
 * The gateway's own check of a task payload (docs/FLEET.md "task"): JSON, `v: 1`, every field the agent
 * uses present and of the right type, ids that can be topic levels. A task that fails it is dropped with
 * the reason; nothing of it reaches a device.
 */
import { OtaError } from '../../errors';
import { PLANT_MESSAGE_VERSION, type CancelTask, type InstallTask, type TaskMessage } from '../messages';
import { checkTopicId } from '../topics';

/** Any JSON message of the plant is at most this large (CampaignState excepted). */
export const MAX_TASK_BYTES = 256 * 1024;

const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const ENCODINGS = ['auto', 'raw', 'deflate', 'delta'] as const;

function invalid(field: string, problem: string): OtaError {
  return new OtaError('PAYLOAD_INVALID', `task: ${field} ${problem}`, { field });
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw invalid(field, 'must be an object');
  return value as Record<string, unknown>;
}

function text(value: unknown, field: string, max = 256): string {
  if (typeof value !== 'string' || value.length > max) throw invalid(field, `must be a string of at most ${max} characters`);
  return value;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid(field, `must be a whole number from ${min} to ${max}`);
  return value;
}

function topicId(value: unknown, field: string): string {
  try {
    return checkTopicId(value, field);
  } catch (err) {
    throw invalid(field, (err as Error).message);
  }
}

function checkInstall(m: Record<string, unknown>): InstallTask {
  const device = object(m.device, 'device');
  const address = text(device.address, 'device.address', 17).toLowerCase();
  if (!ADDRESS.test(address)) throw invalid('device.address', `must be a BD address "aa:bb:cc:dd:ee:ff", got ${JSON.stringify(device.address)}`);
  const image = object(m.image, 'image');
  const sha256 = text(image.sha256, 'image.sha256', 64).toLowerCase();
  if (!SHA256.test(sha256)) throw invalid('image.sha256', 'must be 64 hex digits');
  if (image.manifest !== undefined && (typeof image.manifest !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(image.manifest))) throw invalid('image.manifest', 'must be base64');
  if (image.project !== undefined) text(image.project, 'image.project', 64);
  const options = object(m.options, 'options');
  if (!ENCODINGS.includes(options.encoding as (typeof ENCODINGS)[number])) throw invalid('options.encoding', `must be one of ${ENCODINGS.join(', ')}`);
  if (typeof options.confirm !== 'boolean') throw invalid('options.confirm', 'must be true or false');
  return {
    v: PLANT_MESSAGE_VERSION,
    type: 'install',
    taskId: topicId(m.taskId, 'taskId'),
    campaign: topicId(m.campaign, 'campaign'),
    device: { address, name: text(device.name, 'device.name', 64) },
    image: {
      sha256,
      size: integer(image.size, 'image.size', 1, 64 * 1024 * 1024),
      ...(image.manifest !== undefined ? { manifest: image.manifest as string } : {}),
      version: text(image.version, 'image.version', 32),
      chip: text(image.chip, 'image.chip', 16),
      ...(image.project !== undefined ? { project: image.project as string } : {}),
    },
    timeoutMs: integer(m.timeoutMs, 'timeoutMs', 1000, 24 * 3600 * 1000),
    options: {
      encoding: options.encoding as InstallTask['options']['encoding'],
      confirm: options.confirm,
      maxAttempts: integer(options.maxAttempts, 'options.maxAttempts', 1, 100),
    },
  };
}

function checkCancel(m: Record<string, unknown>): CancelTask {
  return { v: PLANT_MESSAGE_VERSION, type: 'cancel', taskId: topicId(m.taskId, 'taskId'), campaign: topicId(m.campaign, 'campaign'), reason: text(m.reason ?? '', 'reason', 256) };
}

export function parseTask(payload: Buffer): TaskMessage {
  if (payload.length > MAX_TASK_BYTES) throw new OtaError('PAYLOAD_TOO_LARGE', `task: ${payload.length} bytes, at most ${MAX_TASK_BYTES} are accepted`, { bytes: payload.length });
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new OtaError('PAYLOAD_INVALID', `task: not JSON (${(err as Error).message})`);
  }
  const m = object(parsed, '(message)');
  if (m.v !== PLANT_MESSAGE_VERSION) throw invalid('v', `must be ${PLANT_MESSAGE_VERSION}, got ${JSON.stringify(m.v)}`);
  if (m.type === 'install') return checkInstall(m);
  if (m.type === 'cancel') return checkCancel(m);
  throw invalid('type', `must be "install" or "cancel", got ${JSON.stringify(m.type)}`);
}
