/**
 * ble-ota-verify: after a flash, waits for the device to come back from its reboot, reads its Status
 * characteristic and compares it with what was flashed (version, image SHA-256, state, rollback,
 * diagnostics). In host-confirm mode it confirms on pass or rolls back on fail. Output 1: passed,
 * output 2: failed; both carry the full status and the reasons.
 */
import { OtaError, toOtaError } from '../../lib/errors';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/node-red';
import { adapterStatus, findAdapter, forNodeRed, missingAdapterError, statusSetter } from '../shared/adapter-user';
import { sharedTranslator, translator } from '../shared/i18n';
import type { NodeStatus } from '../shared/node-red';
import type { AdapterState } from '../ble-ota-adapter/adapter-connection';
import { deviceLabel } from '../shared/msg-device';
import { verifyDevice } from '../shared/library';
import { planVerify } from './expectations';

export = function (RED: NodeAPI) {
  function BleOtaVerifyNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    startBleOtaVerify(RED, this, def);
  }

  RED.nodes.registerType('ble-ota-verify', BleOtaVerifyNode);
};

function startBleOtaVerify(RED: NodeAPI, node: Node, def: NodeDef): void {
  const connection = findAdapter(RED, def.adapter)?.connection ?? null;
  const t = translator(RED, 'ble-ota-verify');
  const shared = sharedTranslator(RED);
  const setStatus = statusSetter(RED, node, connection);
  const simulated = connection?.settings.simulated === true;
  /** The last outcome stays on the status until the next verify starts. */
  let lastOutcome: NodeStatus | null = null;
  const outcome = (status: NodeStatus) => {
    lastOutcome = status;
    setStatus(status);
  };
  const waitMs = Math.max(1, Number(def.waitSeconds) || 30) * 1000;
  const onPass = def.onPass === 'confirm' ? 'confirm' : 'none';
  const onFail = def.onFail === 'rollback' ? 'rollback' : 'none';
  const running = new Map<AbortController, string>();
  let closing = false;
  let adapterState: AdapterState | 'none' = connection ? connection.state : 'none';

  const user = {
    id: node.id,
    onAdapterState(state: AdapterState, detail: string) {
      adapterState = state;
      if (running.size > 0) return;
      if (lastOutcome && state === 'ready') setStatus(lastOutcome);
      else setStatus(adapterStatus(shared, state, detail));
    },
  };
  if (connection) connection.register(user);
  else setStatus(adapterStatus(shared, 'none'));

  async function handle(msg: NodeMessage, send: SendFn, done: DoneFn): Promise<void> {
    if (!connection) throw missingAdapterError();
    const plan = (() => {
      try {
        return planVerify(msg, def);
      } catch (err) {
        outcome({ fill: 'red', shape: 'ring', text: `${toOtaError(err).code}`.slice(0, 60) });
        throw err;
      }
    })();
    if (adapterState === 'off') throw new OtaError('ADAPTER_OFF', `adapter ${connection.settings.label} is powered off`);
    const label = deviceLabel(plan.device);
    const controller = new AbortController();
    running.set(controller, label);
    lastOutcome = null;
    setStatus({ fill: 'blue', shape: 'ring', text: t('status.waiting', { device: label }) });
    try {
      const backend = await connection.acquire();
      const result = await verifyDevice(backend.scheduler, {
        device: plan.device,
        expect: plan.expect,
        waitMs,
        onPass,
        onFail,
        fleetKey: connection.settings.fleetKey,
        masterKey: connection.settings.masterKey,
        signal: controller.signal,
      });
      if (closing) return;
      if (plan.flash) msg.flash = plan.flash;
      msg.payload = { ...result, simulated };
      if (result.passed) {
        outcome({ fill: 'green', shape: 'dot', text: t(result.action === 'confirmed' ? 'status.passed-confirmed' : 'status.passed', { device: label }) });
        send([msg, null]);
      } else {
        outcome({ fill: 'red', shape: 'ring', text: t(result.action === 'rolled-back' ? 'status.failed-rolled-back' : 'status.failed', { device: label, reason: result.reasons[0] ?? '' }).slice(0, 80) });
        send([null, msg]);
      }
      done();
    } catch (err) {
      if (closing) return;
      const error = forNodeRed(controller.signal.aborted && controller.signal.reason instanceof OtaError ? controller.signal.reason : toOtaError(err));
      outcome({ fill: 'red', shape: 'dot', text: `${label}: ${error.code}` });
      done(error);
    } finally {
      running.delete(controller);
    }
  }

  node.on('input', (msg, send, done) => {
    handle(msg, send, done).catch((err) => done(toOtaError(err)));
  });

  node.on('close', (_removed, closeDone) => {
    closing = true;
    for (const controller of running.keys()) controller.abort(new OtaError('CANCELLED', 'verify aborted: the flow was redeployed or stopped'));
    running.clear();
    if (connection) connection.deregister(user);
    closeDone();
  });
}
