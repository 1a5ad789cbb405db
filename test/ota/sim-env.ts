/**
 * A simulated fleet for the OTA tests: lib/sim's createSimFleet on the virtual clock (virtual radio,
 * TS device models, a real noble Noble on the radio's bindings, createNobleCentral), plus the
 * scheduler the operations run on.
 */
import type { AdapterState } from '../../lib/ble/central';
import { AdapterScheduler, type SchedulerOptions } from '../../lib/ble/scheduler';
import { createSimFleet } from '../../lib/sim/fleet';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { devBuild } from '../helpers/dev-build';

export async function simEnv(devices: SimDeviceConfig[], options: { link?: string; scheduler?: SchedulerOptions; adapterState?: AdapterState } = {}) {
  const fleet = await createSimFleet({ devices: devices.map(devBuild), link: options.link ?? 'reference', clock: 'virtual', adapterState: options.adapterState });
  const scheduler = new AdapterScheduler(fleet.central, { readyTimeoutMs: 2000, ...options.scheduler });
  const models = devices.map((d) => fleet.devices.get(d.name) as NonNullable<ReturnType<typeof fleet.devices.get>>);
  return {
    fleet,
    clock: fleet.clock,
    radio: fleet.radio,
    devices: models,
    scheduler,
    /** ATT value bytes the central wrote to a device so far. */
    bytesToDevice(address: string): number {
      return fleet.radio.stats().devices[address]?.gatt.valueBytesToPeripheral ?? 0;
    },
    async close() {
      await scheduler.close();
      await fleet.close();
    },
  };
}

export type SimEnv = Awaited<ReturnType<typeof simEnv>>;
