/**
 * ble-ota-scan: finds OTA-capable devices and what they run, from advertisements only. One-shot on
 * each input message, or continuous (back-to-back scan windows from deploy on). Output: one message
 * per device, or one list per scan window.
 */
import { OtaError, toOtaError } from '../../lib/errors';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/node-red';
import { adapterStatus, findAdapter, forNodeRed, missingAdapterError, statusSetter } from '../shared/adapter-user';
import { sharedTranslator, translator } from '../shared/i18n';
import type { AdapterState } from '../ble-ota-adapter/adapter-connection';
import { scanDevices } from '../shared/library';
import { buildFilter, matches, type ScanEntry, type ScanFilter } from './scan-filter';

const RETRY_MS = 5000;

export = function (RED: NodeAPI) {
  function BleOtaScanNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    startBleOtaScan(RED, this, def);
  }

  RED.nodes.registerType('ble-ota-scan', BleOtaScanNode);
};

function startBleOtaScan(RED: NodeAPI, node: Node, def: NodeDef): void {
  const connection = findAdapter(RED, def.adapter)?.connection ?? null;
  const t = translator(RED, 'ble-ota-scan');
  const shared = sharedTranslator(RED);
  const setStatus = statusSetter(RED, node, connection);
  const simulated = connection?.settings.simulated === true;
  const continuous = def.mode === 'continuous';
  const perDevice = def.output !== 'list';
  const durationSetting = Number(def.duration);
  let filter: ScanFilter | null = null;
  let filterError: OtaError | null = null;
  try {
    filter = buildFilter(def);
  } catch (err) {
    filterError = toOtaError(err);
    node.error(filterError.message);
  }
  const controllers = new Set<AbortController>();
  /** Continuous mode reports a device again only when its firmware changes. */
  const lastSeen = new Map<string, string>();
  let closing = false;
  let adapterState: AdapterState | 'none' = connection ? connection.state : 'none';

  const user = {
    id: node.id,
    onAdapterState(state: AdapterState, detail: string) {
      const wasReady = adapterState === 'ready';
      adapterState = state;
      if (controllers.size === 0 || state !== 'ready') setStatus(adapterStatus(shared, state, detail));
      if (continuous && state === 'ready' && !wasReady) startContinuous();
    },
  };

  async function scanOnce(durationMs: number): Promise<ScanEntry[]> {
    if (!connection) throw missingAdapterError();
    if (filterError) throw filterError;
    const controller = new AbortController();
    controllers.add(controller);
    setStatus({ fill: 'blue', shape: 'ring', text: t('status.scanning', { seconds: Math.round(durationMs / 1000) }) });
    try {
      const backend = await connection.acquire();
      const found = (await scanDevices(backend.scheduler, {
        durationMs,
        services: filter?.service ? [filter.service] : undefined,
        signal: controller.signal,
      } as Parameters<typeof scanDevices>[1])) as unknown as ScanEntry[];
      const list = found.filter((d) => matches(d, filter as ScanFilter)).map((d) => ({ ...d, simulated }));
      setStatus({ fill: 'green', shape: 'dot', text: t(list.length === 1 ? 'status.found-one' : 'status.found', { count: list.length }) });
      return list;
    } finally {
      controllers.delete(controller);
    }
  }

  function durationMs(msg?: NodeMessage): number {
    const fromMsg = msg && Number(msg.duration);
    if (fromMsg && Number.isFinite(fromMsg) && fromMsg > 0) return fromMsg * 1000;
    if (Number.isFinite(durationSetting) && durationSetting > 0) return durationSetting * 1000;
    return connection?.settings.scanMs ?? 5000;
  }

  function emit(list: ScanEntry[], send: SendFn, base: NodeMessage | null, onlyChanged: boolean): void {
    if (perDevice) {
      for (const entry of list) {
        const fingerprint = `${entry.firmware?.version ?? ''}/${entry.firmware?.state ?? ''}`;
        if (onlyChanged && lastSeen.get(entry.id) === fingerprint) continue;
        lastSeen.set(entry.id, fingerprint);
        send({ topic: base?.topic ?? entry.name, payload: entry, device: entry.name || entry.address || entry.id });
      }
    } else if (base) {
      base.payload = list;
      send(base);
    } else {
      send({ topic: 'ble-ota-scan', payload: list });
    }
  }

  let loopRunning = false;
  function startContinuous(): void {
    if (loopRunning || closing) return;
    loopRunning = true;
    (async () => {
      while (!closing && adapterState !== 'off' && adapterState !== 'missing') {
        try {
          const list = await scanOnce(durationMs());
          if (!closing) emit(list, (m) => node.send(m as NodeMessage), null, true);
        } catch (err) {
          if (closing) break;
          const e = forNodeRed(toOtaError(err));
          setStatus({ fill: 'red', shape: 'dot', text: e.code });
          node.warn(e.message);
          await new Promise((r) => setTimeout(r, RETRY_MS));
        }
      }
      loopRunning = false;
    })();
  }

  if (connection) connection.register(user);
  else setStatus(adapterStatus(shared, 'none'));

  node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
    scanOnce(durationMs(msg))
      .then((list) => {
        if (closing) return;
        emit(list, send, msg, false);
        done();
      })
      .catch((err) => {
        if (closing) return;
        const e = forNodeRed(toOtaError(err));
        setStatus({ fill: 'red', shape: 'dot', text: e.code });
        done(e);
      });
  });

  node.on('close', (_removed, closeDone) => {
    closing = true;
    for (const c of controllers) c.abort(new OtaError('CANCELLED', 'scan stopped: the flow was redeployed or stopped'));
    if (connection) connection.deregister(user);
    closeDone();
  });
}
