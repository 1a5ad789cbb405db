/**
 * What ble-ota-verify checks, from the node settings and the message: a flash result in msg.payload
 * supplies the device, the version and the image hash; msg.expectedVersion and the node's fields
 * override or complete it.
 */
import type { DeviceRef, FlashResult, OtaState, VerifyExpectations } from '../../lib/ota/types';
import type { NodeDef, NodeMessage } from '../shared/node-red';
import { deviceFromValue, type DeviceSelector } from '../shared/msg-device';

const STATES: OtaState[] = ['new', 'pending-verify', 'valid', 'invalid', 'aborted', 'undefined'];

export function flashResultOf(payload: unknown): FlashResult | null {
  if (!payload || typeof payload !== 'object' || Buffer.isBuffer(payload)) return null;
  const p = payload as Partial<FlashResult>;
  return p.success === true && p.device && typeof p.device === 'object' && p.after ? (p as FlashResult) : null;
}

export function acceptedStates(setting: unknown): OtaState[] {
  const list = String(setting ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .filter((s): s is OtaState => (STATES as string[]).includes(s));
  return list.length ? list : ['valid', 'pending-verify'];
}

export interface VerifyPlan {
  device: DeviceSelector;
  expect: VerifyExpectations;
  flash: FlashResult | null;
}

export function planVerify(msg: NodeMessage, def: NodeDef): VerifyPlan {
  const flash = flashResultOf(msg.payload);
  const device: DeviceSelector = msg.device !== undefined && msg.device !== '' ? deviceFromValue(msg.device, '') : flash ? (flash.device as DeviceRef) : deviceFromValue(undefined, String(def.device ?? ''));
  const str = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
  const expect: VerifyExpectations = {
    version: str(msg.expectedVersion) ?? str(def.expectedVersion) ?? flash?.after.version ?? undefined,
    imageSha256: str(msg.expectedSha256) ?? flash?.after.imageSha256 ?? undefined,
    states: acceptedStates(def.states),
    forbidRollback: def.forbidRollback !== false,
    requireDiagnosticsPassed: def.requireDiagnostics !== false,
  };
  return { device, expect, flash };
}
