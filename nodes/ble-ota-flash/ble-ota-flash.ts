/**
 * ble-ota-flash: streams a firmware image to one ESP32 per message. Checks the image, and the signed
 * manifest (msg.manifest or the file next to a file image) against it, before any BLE activity, queues
 * messages itself (Node-RED does not), runs as many transfers at once as the adapter allows, holds a device by its resolved address across every node sharing the adapter, skips a
 * device that already runs the image, reports progress on node status and an optional second output,
 * cancels on msg.cancel or when the HTTP client that asked goes away, and aborts promptly when the
 * flow is redeployed. The outcome stays on the status until the next job starts.
 */
import * as path from 'path';
import { OtaError, toOtaError } from '../../lib/errors';
import type { DiscoveredDevice } from '../../lib/ble/central';
import type { DeviceRef, FlashOptions, FlashResult, Progress } from '../../lib/ota/types';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, NodeStatus, SendFn } from '../shared/node-red';
import { adapterStatus, findAdapter, forNodeRed, missingAdapterError, statusSetter } from '../shared/adapter-user';
import type { AdapterState, DeviceClaim } from '../ble-ota-adapter/adapter-connection';
import { JobQueue, type Job } from '../shared/job-queue';
import { deviceFromValue, deviceKey, deviceLabel, type DeviceSelector } from '../shared/msg-device';
import { appHash, fileSha256, flashDevice, readDeviceStatus, tryDecodeAdvertisement, type AdapterBackend } from '../shared/library';
import { sharedTranslator, translator } from '../shared/i18n';
import { firmwareFromMsg, parseHostList, withoutContent, type FirmwarePolicy } from './firmware-source';
import { preflightImage, preflightManifest } from './preflight';
import { ProgressReporter } from './progress-reporter';

/** Node-RED gives a close handler 15 s; stay well inside it. */
const CLOSE_WAIT_MS = 8000;
/** How old an advertisement may be for the "already runs this image" check (ms of adapter clock). */
const FRESH_ADVERTISEMENT_MS = 2000;
/** 16 MB: the largest app partition ESP-IDF's partition tables allow on a 16 MB flash. */
const DEFAULT_MAX_IMAGE_KB = 16 * 1024;
const DOWNLOAD_TIMEOUT_MS = 60000;

export = function (RED: NodeAPI) {
  function BleOtaFlashNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    startBleOtaFlash(RED, this, def);
  }

  RED.nodes.registerType('ble-ota-flash', BleOtaFlashNode);
};

/** What a skipped or finished job reports beyond the library's FlashResult. */
type NodeFlashResult = ((Omit<FlashResult, 'secondsKind'> & { secondsKind: FlashResult['secondsKind'] | 'simulated' }) | SkippedResult) & { simulated: boolean };

interface SkippedResult {
  success: true;
  skipped: true;
  reason: string;
  device: DeviceRef;
  bytes: 0;
  seconds: 0;
  secondsKind: 'measured' | 'simulated';
  kBps: 0;
  attempts: 0;
  before: FlashResult['before'];
  after: FlashResult['after'];
  fileSha256: string;
}

function startBleOtaFlash(RED: NodeAPI, node: Node, def: NodeDef): void {
  const t = translator(RED, 'ble-ota-flash');
  const shared = sharedTranslator(RED);
  const adapterNode = findAdapter(RED, def.adapter);
  const connection = adapterNode?.connection ?? null;
  const setStatus = statusSetter(RED, node, connection);
  const simulated = connection?.settings.simulated === true;
  const progressOutput = def.progressOutput === true || def.progressOutput === 'true';
  const whenBusy = def.whenBusy === 'reject' ? 'reject' : 'queue';
  const skipSameImage = def.skipSameImage !== false && def.skipSameImage !== 'false';
  /** A typedInput setting (string, msg, flow, global or env property) for this message. */
  const typed = (value: unknown, type: unknown, msg: NodeMessage): string => {
    const kind = typeof type === 'string' && type ? type : 'str';
    const resolved = kind === 'str' ? withoutUnsetEnv(value) : RED.util.evaluateNodeProperty(String(value ?? ''), kind, node, msg);
    return resolved === undefined || resolved === null ? '' : String(resolved);
  };
  const configuredDevice = (msg: NodeMessage) => typed(def.device, def.deviceType, msg);
  const configuredFile = (msg: NodeMessage) => typed(def.filename, def.filenameType, msg);
  const policy: FirmwarePolicy = {
    firmwareDir: withoutUnsetEnv(def.firmwareDir),
    allowedHosts: parseHostList(withoutUnsetEnv(def.allowedHosts)),
    maxBytes: Math.max(1, Number(def.maxImageKB) || DEFAULT_MAX_IMAGE_KB) * 1024,
    downloadTimeoutMs: DOWNLOAD_TIMEOUT_MS,
  };
  const configuredVersion = (msg: NodeMessage) => typed(def.expectedVersion, def.expectedVersionType, msg).trim();
  const progressIntervalMs = Math.max(100, Number(def.progressInterval ?? 1) * 1000 || 1000);
  let closing = false;
  let adapterState: AdapterState | 'none' = connection ? connection.state : 'none';
  let adapterDetail = '';
  const activity = new Map<string, string>();
  /** The last job's outcome: shown until the next job starts (or the adapter fails). */
  let lastOutcome: NodeStatus | null = null;

  const showStatus = () => {
    if (closing) return;
    const queued = queue.waitingCount ? t('status.queued', { count: queue.waitingCount }) : '';
    const lines = [...activity.values()];
    if (lines.length === 0) {
      if (queued) setStatus({ fill: 'yellow', shape: 'ring', text: t('status.waiting', { queued }) });
      else if (lastOutcome && (adapterState === 'ready' || adapterState === 'none' || adapterState === 'idle')) setStatus(lastOutcome);
      else setStatus(adapterStatus(shared, adapterState, adapterDetail));
    } else {
      const text = lines.length === 1 ? lines[0] : t('status.transfers', { count: lines.length, list: lines.join(' | ') });
      setStatus({ fill: 'blue', shape: 'dot', text: `${text}${queued}`.slice(0, 120) });
    }
  };
  const outcome = (status: NodeStatus) => {
    lastOutcome = status;
    showStatus();
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

  /** Finds the device and takes it by address for this job, across every node on the adapter. */
  async function holdDevice(backend: AdapterBackend, device: DeviceSelector, label: string, claim: DeviceClaim, signal: AbortSignal): Promise<DiscoveredDevice> {
    if (!connection) throw missingAdapterError();
    // "Skip if it already runs this image" reads the advertisement: it must be a current one, not a
    // sighting from before this adapter's last update of the device.
    const seenAfter = skipSameImage ? backend.scheduler.clock.now() - FRESH_ADVERTISEMENT_MS : undefined;
    const found = await backend.scheduler.findDevice(device, { timeoutMs: connection.settings.findTimeoutMs, signal, seenAfter });
    const address = found.address || found.id;
    while (!connection.claim(address, claim)) {
      const holder = connection.holder(address);
      const holderLabel = holder?.owner === node.id ? t('status.this-node') : holder?.label ?? '?';
      if (whenBusy === 'reject') {
        throw new OtaError('DEVICE_BUSY', `${label} (${address}) is already being updated by ${holderLabel}`, { device: label, address });
      }
      activity.set(label, t('status.busy-elsewhere', { device: label, holder: holderLabel }));
      showStatus();
      await connection.waitUntilFree(address, signal);
    }
    return found;
  }

  /** The device already runs this image (running_sha256): the advertisement's prefix, then the full Status. */
  async function alreadyRunning(backend: AdapterBackend, found: DiscoveredDevice, image: Buffer, signal: AbortSignal): Promise<SkippedResult | null> {
    const advertised = tryDecodeAdvertisement(found.advertisement.manufacturerData);
    if (!advertised) return null;
    const appSha256 = appHash(image).toString('hex');
    if (advertised.shaPrefix.toLowerCase() !== appSha256.slice(0, 8)) return null;
    const report = await readDeviceStatus(backend.scheduler, { device: found, signal });
    if ((report.firmware.imageSha256 ?? '').toLowerCase() !== appSha256) return null;
    return {
      success: true,
      skipped: true,
      reason: 'the device already runs this image (running_sha256 equals the image hash)',
      device: report.device,
      bytes: 0,
      seconds: 0,
      secondsKind: simulated ? 'simulated' : 'measured',
      kBps: 0,
      attempts: 0,
      before: report.firmware,
      after: report.firmware,
      fileSha256: fileSha256(image).toString('hex'),
    };
  }

  async function runFlash(msg: NodeMessage, send: SendFn, done: DoneFn, device: DeviceSelector, image: Buffer, manifest: Buffer | undefined, signal: AbortSignal): Promise<void> {
    const label = deviceLabel(device);
    const claim: DeviceClaim = { owner: node.id, label: node.name || `ota flash ${node.id}` };
    let heldAddress: string | null = null;
    lastOutcome = null;
    const reporter = new ProgressReporter(
      progressIntervalMs,
      (p: Progress) => {
        activity.set(label, p.phase === 'transferring' ? t('status.progress', { device: label, percent: Math.floor(p.percent), kBps: p.kBps.toFixed(1) }) : t('status.phase', { device: label, phase: p.phase }));
        showStatus();
      },
      progressOutput ? (p: Progress) => send([null, progressMessage(msg, label, p)]) : undefined,
    );
    try {
      if (!connection) throw missingAdapterError();
      activity.set(label, t('status.connecting', { device: label }));
      showStatus();
      const backend = await connection.acquire();
      if (signal.aborted) throw signal.reason;
      const found = await holdDevice(backend, device, label, claim, signal);
      heldAddress = found.address || found.id;
      activity.set(label, t('status.connecting', { device: label }));
      showStatus();
      const skipped = skipSameImage ? await alreadyRunning(backend, found, image, signal) : null;
      let result: NodeFlashResult;
      if (skipped) {
        result = { ...skipped, simulated };
      } else {
        const flashed = await flashDevice(backend.scheduler, {
          device: { id: found.id, address: found.address, name: found.name },
          image,
          fleetKey: connection.settings.fleetKey,
          masterKey: connection.settings.masterKey,
          manifest,
          encoding: (['raw', 'deflate', 'delta'].includes(String(def.encoding)) ? def.encoding : 'auto') as FlashOptions['encoding'],
          baseImages: baseImagesDir(withoutUnsetEnv(def.baseImagesDir), policy.firmwareDir),
          expectedChip: (stringSetting(msg.expectedChip) || stringSetting(def.expectedChip) || undefined) as FlashOptions['expectedChip'],
          expectedVersion: stringSetting(msg.expectedVersion) || configuredVersion(msg) || undefined,
          preventDowngrade: def.allowDowngrade !== true,
          maxAttempts: Math.max(1, Number(def.maxAttempts) || 5),
          findTimeoutMs: connection.settings.findTimeoutMs,
          signal,
          onProgress: (p: Progress) => reporter.update(p),
        });
        // On a simulated fleet the seconds are the model's, whatever its clock: never "measured".
        result = { ...flashed, secondsKind: simulated ? 'simulated' : flashed.secondsKind, simulated };
      }
      reporter.finish();
      msg.payload = result;
      activity.delete(label);
      if (!closing) {
        outcome(
          'skipped' in result
            ? { fill: 'green', shape: 'ring', text: t('status.skipped', { device: label }) }
            : { fill: 'green', shape: 'dot', text: t('status.done', { device: label, kBps: result.kBps.toFixed(1) }) },
        );
        send([msg, null]);
        done();
      }
    } catch (err) {
      reporter.finish();
      activity.delete(label);
      const error = withoutContent(forNodeRed(signal.aborted && signal.reason instanceof OtaError ? signal.reason : toOtaError(err)));
      if (closing) {
        node.warn(t('errors.aborted-on-close', { device: label }));
        return;
      }
      outcome({ fill: 'red', shape: 'dot', text: `${label}: ${error.code}`.slice(0, 60) });
      done(error);
    } finally {
      if (heldAddress && connection) connection.release(heldAddress, claim);
    }
  }

  // Messages are admitted one after another (reading a file is asynchronous), so the queue keeps
  // their arrival order and msg.cancel applies to every message that arrived before it.
  let admission: Promise<void> = Promise.resolve();
  node.on('input', (msg, send, done) => {
    admission = admission.then(() =>
      handleInput(msg, send, done).catch((err) => {
        const error = withoutContent(forNodeRed(toOtaError(err)));
        // A request refused before any BLE activity shows on the status like any other outcome.
        if (!closing) outcome({ fill: 'red', shape: 'ring', text: `${requestLabel(msg, () => configuredDevice(msg))}: ${error.code}`.slice(0, 60) });
        done(error);
      }),
    );
  });

  async function handleInput(msg: NodeMessage, send: SendFn, done: DoneFn): Promise<void> {
    if (msg.cancel) {
      const target = msg.device === undefined || msg.device === '' ? undefined : deviceKey(deviceFromValue(msg.device, ''));
      const count = queue.cancel(target, new OtaError('CANCELLED', `flash cancelled by msg.cancel${target ? ` for ${target}` : ''}`));
      node.log(t('log.cancelled', { count }));
      done();
      return;
    }
    if (!connection) throw missingAdapterError();
    const device = deviceFromValue(msg.device, configuredDevice(msg));
    const firmware = await firmwareFromMsg({ payload: msg.payload, filename: msg.filename, url: msg.url }, configuredFile(msg), policy);
    // Everything that can be known from the file alone is checked before the radio is touched.
    preflightImage(firmware.image, {
      expectedChip: stringSetting(msg.expectedChip) || stringSetting(def.expectedChip),
      expectedVersion: stringSetting(msg.expectedVersion) || configuredVersion(msg),
    });
    const manifest = preflightManifest(firmware.image, msg.manifest, firmware.manifest, Date.now());
    if (adapterState === 'off') throw new OtaError('ADAPTER_OFF', `adapter ${connection.settings.label} is powered off`);
    // A configuration error: opening again reports it with its own code (e.g. BAD_FLEET_CONFIG).
    if (adapterState === 'error') await connection.acquire();
    if (adapterState === 'missing' || adapterState === 'error') throw new OtaError('ADAPTER_MISSING', `adapter ${connection.settings.label} is not available${adapterDetail ? `: ${adapterDetail}` : ''}`);
    const key = deviceKey(device);
    if (whenBusy === 'reject' && queue.has(key)) {
      throw new OtaError('DEVICE_BUSY', `${deviceLabel(device)} is already being updated by this node`);
    }
    const job = queue.add(key, (signal) => runFlash(msg, send, done, device, firmware.image, manifest, signal), (reason) => {
      if (!closing) done(reason);
    });
    cancelWhenClientLeaves(msg, job);
  }

  /** An HTTP request (http in node) whose client disconnects before its answer cancels its transfer. */
  function cancelWhenClientLeaves(msg: NodeMessage, job: Job): void {
    const res = (msg.res as { _res?: { on?: unknown; once(e: string, f: () => void): void; writableFinished?: boolean; headersSent?: boolean } } | undefined)?._res;
    if (!res || typeof res.on !== 'function') return;
    res.once('close', () => {
      if (res.writableFinished || res.headersSent) return;
      if (queue.cancelJob(job, new OtaError('CANCELLED', 'the HTTP client went away before the update finished'))) node.log(t('log.client-gone', { device: deviceLabel(deviceFromValue(msg.device, configuredDevice(msg))) }));
    });
  }

  node.on('close', (_removed, closeDone) => {
    closing = true;
    const pending = queue.runningCount + queue.waitingCount;
    if (pending) node.warn(t('errors.closing', { count: pending }));
    queue
      .shutdown(new OtaError('CANCELLED', 'flash aborted: the flow was redeployed or stopped'), CLOSE_WAIT_MS)
      .finally(() => {
        if (connection) connection.deregister(user);
        closeDone();
      });
  });
}

/** A fresh progress message: the request's id and correlation travel with it (never msg.req / msg.res). */
function progressMessage(msg: NodeMessage, label: string, p: Progress): NodeMessage {
  const out: NodeMessage = { topic: msg.topic, device: label, payload: p, parentId: msg._msgid };
  if (msg.id !== undefined) out.id = msg.id;
  if (msg.correlation !== undefined) out.correlation = msg.correlation;
  return out;
}

function requestLabel(msg: NodeMessage, configured: () => string): string {
  try {
    return deviceLabel(deviceFromValue(msg.device, configured()));
  } catch {
    return 'request';
  }
}

/** Node-RED leaves "${VAR}" as it is when VAR is unset: that means "not configured", never a path or host. */
function withoutUnsetEnv(value: unknown): string {
  const text = value === undefined || value === null ? '' : String(value);
  return /^\$\{\S+\}$/.test(text.trim()) ? '' : text;
}

function stringSetting(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * The base images directory of delta updates: an absolute path, or one relative to the firmware directory
 * (else to the working directory); empty: no delta. Every image this node flashes successfully is added
 * to it (lib/ota), so it is the base of the next update of the same devices.
 */
function baseImagesDir(setting: string, firmwareDir: string): string | undefined {
  const dir = setting.trim();
  if (!dir) return undefined;
  return path.resolve(firmwareDir.trim() || '.', dir);
}
