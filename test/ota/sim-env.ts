/**
 * A simulated fleet for the OTA tests, assembled the way lib/sim's createSimFleet does it: virtual
 * clock, virtual radio (noble bindings + link model), TS device models, and a real noble Noble on the
 * radio's bindings wrapped by createNobleCentral; plus the scheduler the operations run on.
 */
import type { AdapterState } from '../../lib/ble/central';
import { createNobleCentral } from '../../lib/ble/noble-central';
import type { Noble } from '../../lib/ble/noble-types';
import { AdapterScheduler, type SchedulerOptions } from '../../lib/ble/scheduler';
import { createSimDevice } from '../../lib/sim/device';
import { createSimRadio } from '../../lib/sim/radio';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { VirtualClock } from '../../lib/sim/virtual-clock';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const withBindings = require('@abandonware/noble/with-bindings') as (b: unknown) => Noble;

export async function simEnv(devices: SimDeviceConfig[], options: { link?: string; scheduler?: SchedulerOptions; adapterState?: AdapterState } = {}) {
  const clock = new VirtualClock();
  const radio = createSimRadio({ clock, link: (options.link ?? 'reference') as 'reference', adapterState: options.adapterState });
  const models = devices.map((config) => createSimDevice(config, clock));
  for (const m of models) radio.addDevice(m);
  const central = createNobleCentral(withBindings(radio.bindings), { clock, adapterName: 'simulated adapter' });
  const scheduler = new AdapterScheduler(central, { readyTimeoutMs: 2000, ...options.scheduler });
  return {
    clock,
    radio,
    devices: models,
    central,
    scheduler,
    /** ATT value bytes the central wrote to a device so far. */
    bytesToDevice(address: string): number {
      return radio.stats().devices[address]?.gatt.valueBytesToPeripheral ?? 0;
    },
    async close() {
      await scheduler.close();
      await central.close();
      await Promise.all(models.map((m) => m.shutdown()));
    },
  };
}

export type SimEnv = Awaited<ReturnType<typeof simEnv>>;
