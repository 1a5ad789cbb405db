/**
 * The campaign's record (CampaignState, retained in the broker) and the runtime beside it that is not
 * persisted (timers, cancels sent): building it from a selection, and the per-device facts derived from it.
 */
import type { TimerHandle } from '../../clock';
import type { CampaignDevice, CampaignState, DeviceResult, DeviceSighting, ImageRef } from '../messages';
import type { LoadedImage } from './image-source';
import { isFinal } from './progress';
import type { Selection } from './selection';
import type { NormalizedSpec } from './spec';
import { waveSizes } from './waves';

/** Why a cancel was sent for the device's current task: to hand it to another gateway, or because the campaign stops. */
export type CancelPurpose = 'reassign' | 'campaign';

export interface DeviceRuntime {
  /** Task timeout, or the wait for the gateway's answer to a cancel. */
  timer: TimerHandle | null;
  cancel: CancelPurpose | null;
  /** Since when the device waits for a gateway (DEVICE_NOT_SEEN after deviceTimeoutMs unseen). */
  waitingSince: number;
  /** From the succeeded status: false when the image was already there. */
  installed: boolean | null;
}

export interface CampaignRun {
  record: CampaignState;
  spec: NormalizedSpec;
  image: LoadedImage | null;
  runtime: Map<string, DeviceRuntime>;
  /** Devices this run published a claim for (cleared at the end; after a restart the retained claims tell). */
  claimed: Set<string>;
  unsubscribe: (() => Promise<void>) | null;
  /** The 'campaign' event went out: nothing in flight, claims cleared. */
  ended: boolean;
}

export const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function newDevice(address: string, name: string, wave: number, state: CampaignDevice['state'], now: number): CampaignDevice {
  return {
    address: address.toLowerCase(),
    name,
    wave,
    state,
    gateway: null,
    taskId: null,
    assignments: [],
    before: null,
    after: null,
    progress: null,
    error: null,
    startedAt: null,
    endedAt: isFinal(state) ? now : null,
  };
}

function beforeOf(d: DeviceSighting): CampaignDevice['before'] {
  return { version: d.version, sha256: null };
}

export function buildCampaignState(spec: NormalizedSpec, image: ImageRef, coordinator: string, selection: Selection, missingAddresses: string[], now: number): CampaignState {
  const sizes = waveSizes(spec.waves, selection.install.length);
  const devices: CampaignDevice[] = [];
  let next = 0;
  sizes.forEach((size, wave) => {
    for (const d of selection.install.slice(next, next + size)) {
      const device = newDevice(d.address, d.name, wave, 'pending', now);
      device.before = beforeOf(d);
      devices.push(device);
    }
    next += size;
  });
  for (const d of selection.skipped) {
    const device = newDevice(d.address, d.name, 0, 'skipped', now);
    device.before = beforeOf(d);
    device.after = { version: d.version, sha256: image.sha256 };
    devices.push(device);
  }
  for (const address of missingAddresses) {
    const device = newDevice(address, '', 0, 'failed', now);
    device.error = { code: 'DEVICE_NOT_SEEN', message: `no gateway saw ${address} within the sighting freshness window when the campaign started` };
    devices.push(device);
  }
  return {
    v: 1,
    id: spec.id,
    name: spec.name,
    coordinator,
    createdAt: now,
    updatedAt: now,
    state: 'running',
    reason: null,
    spec,
    image,
    currentWave: 0,
    waves: sizes.map((size) => ({ size, state: 'waiting', failed: 0, succeeded: 0 })),
    devices,
  };
}

export function isInFlight(device: CampaignDevice): boolean {
  return device.state === 'assigned' || device.state === 'in-progress';
}

export function currentAssignment(device: CampaignDevice): CampaignDevice['assignments'][number] | undefined {
  const last = device.assignments[device.assignments.length - 1];
  return last && last.taskId === device.taskId ? last : undefined;
}

export function deviceResult(run: CampaignRun, device: CampaignDevice): DeviceResult {
  const installedFlag = run.runtime.get(device.address)?.installed;
  // After a restart the flag is gone: a device whose "before" already named the image installed nothing.
  const installed = device.state === 'succeeded' && (installedFlag ?? device.before?.sha256 !== run.record.image.sha256);
  return {
    campaign: run.record.id,
    device: { address: device.address, name: device.name },
    state: device.state,
    gateway: device.gateway,
    wave: device.wave,
    before: device.before,
    after: device.after,
    error: device.error,
    installed,
  };
}

/**
 * What is wrong with a retained record that would stop a resume from running it, or null. Its structure is
 * the campaignState schema's (the record was decoded with it); these are the cross-field rules it cannot say.
 */
export function resumeProblem(state: CampaignState): string | null {
  if (state.currentWave > state.waves.length) return 'currentWave is out of range';
  if (state.waves.length !== state.spec.waves.length) return 'its waves do not match its spec';
  for (const d of state.devices) if (d.wave >= state.waves.length) return `device ${d.address} has no valid wave`;
  return null;
}
