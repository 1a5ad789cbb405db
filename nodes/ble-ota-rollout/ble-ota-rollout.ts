/**
 * ble-ota-rollout: a plant rollout coordinator (RolloutCoordinator) on a ble-ota-plant broker connection.
 * Input: msg.topic "start" with the campaign in msg.payload (the node's settings fill waves, per-device
 * timeout, concurrency and abort percentage), "pause" / "resume" / "cancel" with msg.payload.campaign,
 * "status". Output 1: one DeviceResult per device that ends. Output 2: campaign progress, the answer to each
 * request (msg.campaign = the CampaignState) and the campaign's end. Refusals go to the catch node with
 * msg.error.code (an HTTP flow answers 400 with it).
 */
import * as fs from 'fs';
import * as path from 'path';
import { settingOrEmpty } from '../shared/env-setting';
import { OtaError, toOtaError } from '../../lib/errors';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus, SendFn } from '../shared/node-red';
import type { PlantNode } from '../ble-ota-plant/plant-node';
import type { PlantState } from '../ble-ota-plant/plant-connection';
import { RolloutCoordinator, PlantTopics, checkTopicId, wallClock, type CampaignProgress, type CampaignState, type DeviceResult } from '../shared/plant-library';
import { DEFAULT_WAVES, parseRequest, parseWaves, type RolloutDefaults, type RolloutRequest } from './campaign-request';
import { finished, openCount, progressOf } from './campaign-progress';
import { translator } from '../shared/i18n';

function findPlant(RED: NodeAPI, id: unknown): PlantNode | null {
  if (typeof id !== 'string' || !id) return null;
  const node = RED.nodes.getNode(id) as PlantNode | null;
  return node && node.connection ? node : null;
}

function bounded(value: unknown, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new OtaError('BAD_OPTION', `${what} must be from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/** Image files come only from inside this directory (the coordinator resolves them); unset: files are refused. */
function firmwareDirectory(value: unknown): string | undefined {
  const text = settingOrEmpty(value);
  return text ? path.resolve(text) : undefined;
}

function nodeDefaults(def: NodeDef): RolloutDefaults {
  return {
    waves: def.waves === undefined ? DEFAULT_WAVES : parseWaves(def.waves),
    deviceTimeoutMs: bounded(def.deviceTimeout, 300, 10, 86400, 'the per-device timeout (s)') * 1000,
    maxConcurrent: Math.floor(bounded(def.maxConcurrent, 20, 1, 1000, 'the devices at once')),
    abortPercent: bounded(def.abortPercent, 20, 0, 100, 'the abort percentage'),
    confirm: def.confirm !== false && def.confirm !== 'false',
    encoding: (['raw', 'deflate', 'delta'].includes(String(def.encoding)) ? def.encoding : 'auto') as RolloutDefaults['encoding'],
    maxReassignments: Math.floor(bounded(def.maxReassignments, 2, 0, 10, 'the re-assignments')),
  };
}

export = function (RED: NodeAPI) {
  function BleOtaRolloutNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    startRollout(RED, this, def);
  }
  RED.nodes.registerType('ble-ota-rollout', BleOtaRolloutNode);
};

function startRollout(RED: NodeAPI, node: Node, def: NodeDef): void {
  const t = translator(RED, 'ble-ota-rollout');
  const plant = findPlant(RED, def.plant);
  const connection = plant?.connection ?? null;
  let configError: OtaError | null = null;
  let defaults: RolloutDefaults | null = null;
  let coordinatorId = node.id.replace(/[^A-Za-z0-9._:-]/g, '-');
  try {
    defaults = nodeDefaults(def);
    if (typeof def.coordinatorId === 'string' && def.coordinatorId.trim()) coordinatorId = checkTopicId(def.coordinatorId.trim(), 'the coordinator id');
  } catch (err) {
    configError = toOtaError(err, 'BAD_OPTION');
    node.error(t('errors.config', { message: configError.message }));
  }
  const firmwareDir = firmwareDirectory(def.firmwareDir);
  if (firmwareDir && !fs.existsSync(firmwareDir)) node.warn(t('log.noFirmwareDir', { dir: firmwareDir }));
  let closing = false;
  let plantState: PlantState | 'none' = connection ? connection.state : 'none';
  let plantDetail = '';
  let coordinator: RolloutCoordinator | null = null;
  let starting: Promise<RolloutCoordinator> | null = null;
  /** The latest progress of each campaign this node has seen, for the status line. */
  const latest = new Map<string, CampaignProgress>();
  let lastRefusal: NodeStatus | null = null;

  const showStatus = () => {
    if (closing) return;
    if (configError) return node.status({ fill: 'red', shape: 'dot', text: t('status.config') });
    if (plantState !== 'connected') return node.status(plantStatus(plantState, plantDetail));
    const shown = [...latest.values()].sort((a, b) => Number(finished(a.state)) - Number(finished(b.state)) || b.at - a.at)[0];
    if (lastRefusal && (!shown || finished(shown.state))) return node.status(lastRefusal);
    if (!shown) return node.status({ fill: 'green', shape: 'dot', text: t('status.ready') });
    const text = t('status.campaign', {
      campaign: shown.campaign,
      wave: shown.wave + 1,
      succeeded: shown.counts.succeeded + shown.counts.skipped,
      failed: shown.counts.failed + shown.counts['rolled-back'],
      open: openCount(shown),
      total: shown.total,
      state: shown.state,
    });
    const fill = shown.state === 'running' ? 'blue' : shown.state === 'completed' ? 'green' : shown.state === 'paused' ? 'yellow' : 'red';
    node.status({ fill, shape: finished(shown.state) ? 'ring' : 'dot', text: text.slice(0, 120) });
  };

  const plantStatus = (state: PlantState | 'none', detail: string): NodeStatus => {
    switch (state) {
      case 'none':
        return { fill: 'red', shape: 'ring', text: t('status.none') };
      case 'connecting':
        return { fill: 'yellow', shape: 'ring', text: t('status.connecting') };
      case 'reconnecting':
        return { fill: 'yellow', shape: 'ring', text: t('status.reconnecting') };
      case 'unavailable':
        return { fill: 'red', shape: 'ring', text: t('status.unavailable') };
      case 'error':
        return { fill: 'red', shape: 'dot', text: t('status.plant-error', { detail }).slice(0, 60) };
      default:
        return { fill: 'grey', shape: 'ring', text: t('status.idle') };
    }
  };

  const track = (progress: CampaignProgress) => {
    latest.set(progress.campaign, progress);
    showStatus();
  };

  const onDevice = (result: DeviceResult) => {
    if (closing) return;
    node.send([{ topic: `${result.campaign}/${result.device.address}`, payload: result }, null]);
  };
  const onProgress = (progress: CampaignProgress) => {
    if (closing) return;
    track(progress);
    node.send([null, { topic: progress.campaign, event: 'progress', payload: progress }]);
  };
  const onCampaign = (state: CampaignState) => {
    if (closing) return;
    const progress = progressOf(state);
    track(progress);
    node.send([null, { topic: state.id, event: 'end', payload: progress, campaign: state }]);
  };
  const onWarning = (text: string) => {
    if (!closing) node.warn(text);
  };

  /** The coordinator, started on the shared bus once it is connected (it then resumes its campaigns). */
  function ensureCoordinator(): Promise<RolloutCoordinator> {
    if (coordinator) return Promise.resolve(coordinator);
    if (starting) return starting;
    if (!connection || !plant?.settings) return Promise.reject(plant?.configError ?? missingPlant());
    const settings = plant.settings;
    starting = (async () => {
      const bus = await connection.acquire();
      const created = new RolloutCoordinator({
        bus,
        topics: new PlantTopics(settings.prefix),
        clock: wallClock,
        coordinatorId,
        images: firmwareDir ? { firmwareDir } : {},
        log: (level, text) => (level === 'error' ? node.error(text) : level === 'warn' ? node.warn(text) : node.log(text)),
      });
      created.on('device', onDevice);
      created.on('progress', onProgress);
      created.on('campaign', onCampaign);
      created.on('warning', onWarning);
      await created.start();
      if (closing) {
        await created.stop();
        throw new OtaError('PLANT_NOT_CONNECTED', 'the rollout node is closing');
      }
      coordinator = created;
      for (const state of created.campaigns()) track(progressOf(state));
      return created;
    })().finally(() => {
      starting = null;
    });
    return starting;
  }

  const user = {
    id: node.id,
    onPlantState(state: PlantState, detail: string) {
      plantState = state;
      plantDetail = detail;
      showStatus();
      if (state === 'connected' && !coordinator && !configError && !closing) {
        ensureCoordinator().catch((err) => node.error(t('errors.start', { message: toOtaError(err).message })));
      }
    },
  };
  if (connection && !configError) connection.register(user);
  else showStatus();

  async function handle(request: RolloutRequest, msg: NodeMessage, send: SendFn): Promise<void> {
    const c = await ensureCoordinator();
    if (request.kind === 'status') {
      const states = request.campaign ? [c.campaign(request.campaign)].filter((s): s is CampaignState => s !== undefined) : c.campaigns();
      if (request.campaign && states.length === 0) throw new OtaError('ROLLOUT_BAD_REQUEST', `this coordinator has no campaign "${request.campaign}"`);
      msg.event = 'status';
      msg.payload = request.campaign ? progressOf(states[0]) : states.map((s) => progressOf(s));
      msg.campaign = request.campaign ? states[0] : states;
      send([null, msg]);
      return;
    }
    const state = request.kind === 'start' ? await c.startCampaign(request.spec) : await c.control(request.campaign, request.action, request.reason);
    const progress = progressOf(state);
    track(progress);
    lastRefusal = null;
    msg.event = request.kind === 'start' ? 'started' : { pause: 'paused', resume: 'resumed', cancel: 'cancelled' }[request.action];
    msg.payload = progress;
    msg.campaign = state;
    send([null, msg]);
  }

  node.on('input', (msg, send, done) => {
    const refuse = (err: unknown) => {
      const error = toOtaError(err);
      if (closing) return done();
      lastRefusal = { fill: 'red', shape: 'ring', text: `${typeof msg.topic === 'string' && msg.topic ? msg.topic.split('/').pop() : 'request'}: ${error.code}`.slice(0, 60) };
      showStatus();
      done(error);
    };
    try {
      if (configError) throw configError;
      if (!connection || !defaults) throw missingPlant();
      if (plant?.configError) throw plant.configError;
      const request = parseRequest(msg, defaults);
      handle(request, msg, send).then(() => done(), refuse);
    } catch (err) {
      refuse(err);
    }
  });

  node.on('close', (_removed, closeDone) => {
    closing = true;
    const running = coordinator;
    coordinator = null;
    // A coordinator still starting stops itself when it sees `closing` (ensureCoordinator): no waiting here for
    // a broker that does not answer.
    starting?.catch(() => undefined);
    const stopped = running ? running.stop() : Promise.resolve();
    stopped
      .catch((err) => node.warn(t('errors.close', { message: toOtaError(err).message })))
      .finally(() => {
        if (connection) connection.deregister(user);
        closeDone();
      });
  });
}

function missingPlant(): OtaError {
  return new OtaError('NO_PLANT', 'no plant broker is configured for this rollout node: pick a ble-ota-plant in its settings');
}
