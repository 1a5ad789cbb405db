/**
 * ble-ota-flash: streams a firmware image to one ESP32 per message. Checks the image before any BLE
 * activity, queues messages itself (Node-RED does not), runs as many transfers at once as the adapter
 * allows, reports progress on node status and an optional second output, cancels on msg.cancel and
 * aborts promptly when the flow is redeployed.
 */
import { OtaError, toOtaError } from '../../lib/errors';
import type { FlashOptions, FlashResult, Progress } from '../../lib/ota/types';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/node-red';
import { adapterStatus, findAdapter, missingAdapterError } from '../shared/adapter-user';
import type { AdapterState } from '../ble-ota-adapter/adapter-connection';
import { JobQueue } from '../shared/job-queue';
import { deviceFromValue, deviceKey, deviceLabel, type DeviceSelector } from '../shared/msg-device';
import { flashDevice } from '../shared/library';
import { firmwareFromMsg } from './firmware-source';
import { preflightImage } from './preflight';
import { ProgressReporter } from './progress-reporter';

/** Node-RED gives a close handler 15 s; stay well inside it. */
const CLOSE_WAIT_MS = 8000;

export = function (RED: NodeAPI) {
  function BleOtaFlashNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    startBleOtaFlash(RED, this, def);
  }

  RED.nodes.registerType('ble-ota-flash', BleOtaFlashNode);
};

function startBleOtaFlash(RED: NodeAPI, node: Node, def: NodeDef): void {
  const adapterNode = findAdapter(RED, def.adapter);
  const connection = adapterNode?.connection ?? null;
  const progressOutput = def.progressOutput === true || def.progressOutput === 'true';
  const whenBusy = def.whenBusy === 'reject' ? 'reject' : 'queue';
  const configuredDevice = String(def.device ?? '');
  const configuredFile = String(def.filename ?? '');
  const progressIntervalMs = Math.max(100, Number(def.progressInterval ?? 1) * 1000 || 1000);
  let closing = false;
  let adapterState: AdapterState | 'none' = connection ? connection.state : 'none';
  let adapterDetail = '';
  const activity = new Map<string, string>();

  const showStatus = () => {
    if (closing) return;
    const queued = queue.waitingCount ? ` (+${queue.waitingCount} queued)` : '';
    const lines = [...activity.values()];
    if (lines.length === 0) {
      node.status(queued ? { fill: 'yellow', shape: 'ring', text: `waiting${queued}` } : adapterStatus(adapterState, adapterDetail));
    } else {
      const text = lines.length === 1 ? lines[0] : `${lines.length} transfers: ${lines.join(' | ')}`;
      node.status({ fill: 'blue', shape: 'dot', text: `${text}${queued}`.slice(0, 120) });
    }
  };
  const queue = new JobQueue(() => connection?.settings.maxConnections ?? 1, showStatus);
  const user = {
    id: node.id,
    onAdapterState(state: AdapterState, detail: string) {
      adapterState = state;
      adapterDetail = detail;
      showStatus();
    },
  };
  if (connection) connection.register(user);
  else showStatus();

  async function runFlash(msg: NodeMessage, send: SendFn, done: DoneFn, device: DeviceSelector, image: Buffer, signal: AbortSignal): Promise<void> {
    const label = deviceLabel(device);
    const reporter = new ProgressReporter(progressIntervalMs, (p: Progress) => {
      activity.set(label, ProgressReporter.statusText(label, p));
      showStatus();
    }, progressOutput ? (p: Progress) => send([null, { topic: msg.topic, device: label, payload: p, parentId: msg._msgid }]) : undefined);
    try {
      if (!connection) throw missingAdapterError();
      activity.set(label, `${label}: connecting`);
      showStatus();
      const backend = await connection.acquire();
      if (signal.aborted) throw signal.reason;
      const result: FlashResult = await flashDevice(backend.scheduler, {
        device,
        image,
        fleetKey: connection.settings.fleetKey,
        encoding: (['raw', 'deflate'].includes(String(def.encoding)) ? def.encoding : 'auto') as 'auto' | 'raw' | 'deflate',
        expectedChip: (stringSetting(msg.expectedChip) || stringSetting(def.expectedChip) || undefined) as FlashOptions['expectedChip'],
        expectedVersion: stringSetting(msg.expectedVersion) || stringSetting(def.expectedVersion) || undefined,
        preventDowngrade: def.allowDowngrade !== true,
        maxAttempts: Math.max(1, Number(def.maxAttempts) || 5),
        findTimeoutMs: connection.settings.findTimeoutMs,
        signal,
        onProgress: (p: Progress) => reporter.update(p),
      });
      reporter.finish();
      msg.payload = result;
      activity.delete(label);
      if (!closing) {
        node.status({ fill: 'green', shape: 'dot', text: `${label}: done ${result.kBps.toFixed(1)} KB/s` });
        send([msg, null]);
        done();
      }
    } catch (err) {
      reporter.finish();
      activity.delete(label);
      const error = signal.aborted && signal.reason instanceof OtaError ? signal.reason : toOtaError(err);
      if (closing) {
        node.warn(RED._('ble-ota-flash.errors.aborted-on-close', { device: label }));
        return;
      }
      node.status({ fill: 'red', shape: 'dot', text: `${label}: ${error.code}`.slice(0, 60) });
      done(error);
    }
  }

  // Messages are admitted one after another (reading a file is asynchronous), so the queue keeps
  // their arrival order and msg.cancel applies to every message that arrived before it.
  let admission: Promise<void> = Promise.resolve();
  node.on('input', (msg, send, done) => {
    admission = admission.then(() => handleInput(msg, send, done).catch((err) => done(toOtaError(err))));
  });

  async function handleInput(msg: NodeMessage, send: SendFn, done: DoneFn): Promise<void> {
    if (msg.cancel) {
      const target = msg.device === undefined || msg.device === '' ? undefined : deviceKey(deviceFromValue(msg.device, ''));
      const count = queue.cancel(target, new OtaError('CANCELLED', `flash cancelled by msg.cancel${target ? ` for ${target}` : ''}`));
      node.log(RED._('ble-ota-flash.log.cancelled', { count }));
      done();
      return;
    }
    if (!connection) throw missingAdapterError();
    const device = deviceFromValue(msg.device, configuredDevice);
    const firmware = await firmwareFromMsg(msg.payload, msg.filename, configuredFile);
    // Everything that can be known from the file alone is checked before the radio is touched.
    preflightImage(firmware.image, {
      expectedChip: stringSetting(msg.expectedChip) || stringSetting(def.expectedChip),
      expectedVersion: stringSetting(msg.expectedVersion) || stringSetting(def.expectedVersion),
    });
    if (adapterState === 'off') throw new OtaError('ADAPTER_OFF', `adapter ${connection.settings.label} is powered off`);
    // A configuration error: opening again reports it with its own code (e.g. BAD_FLEET_CONFIG).
  if (adapterState === 'error') await connection.acquire();
  if (adapterState === 'missing' || adapterState === 'error') throw new OtaError('ADAPTER_MISSING', `adapter ${connection.settings.label} is not available${adapterDetail ? `: ${adapterDetail}` : ''}`);
    const key = deviceKey(device);
    if (whenBusy === 'reject' && queue.has(key)) {
      throw new OtaError('DEVICE_BUSY', `${deviceLabel(device)} is already being updated by this node`);
    }
    queue.add(key, (signal) => runFlash(msg, send, done, device, firmware.image, signal), (reason) => {
      if (!closing) done(reason);
    });
  }

  node.on('close', (_removed, closeDone) => {
    closing = true;
    const pending = queue.runningCount + queue.waitingCount;
    if (pending) node.warn(RED._('ble-ota-flash.errors.closing', { count: pending }));
    queue
      .shutdown(new OtaError('CANCELLED', 'flash aborted: the flow was redeployed or stopped'), CLOSE_WAIT_MS)
      .finally(() => {
        if (connection) connection.deregister(user);
        closeDone();
      });
  });
}

function stringSetting(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}
