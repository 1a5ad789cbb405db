/**
 * The one place where the nodes reach into the core library: opening an adapter (a real HCI
 * adapter through noble, the simulated fleet, or a gateway of the simulated plant) and the OTA operations. Keeps the node files free
 * of library wiring details.
 */
import type { BleCentral } from '../../lib/ble/central';
import { createHciCentral } from '../../lib/ble/noble-central';
import { AdapterScheduler } from '../../lib/ble/scheduler';
import { createSimFleet } from '../../lib/sim/fleet';
import { createRemotePlantCentral, parsePlantAddress } from '../../lib/sim/plant';
import type { SimDeviceConfig } from '../../lib/sim/types';

export { flashDevice, verifyDevice, scanDevices, readDeviceStatus } from '../../lib/ota';
export { validateAppImage, appHash, fileSha256 } from '../../lib/image';
export { tryDecodeAdvertisement } from '../../lib/protocol/advertisement';
export { checkBeforeBegin } from '../../lib/security/check';
export { deriveDeviceKey } from '../../lib/security/keys';

export type SimFleet = Awaited<ReturnType<typeof createSimFleet>>;

export interface AdapterBackend {
  central: BleCentral;
  scheduler: AdapterScheduler;
  /** Set for a simulated fleet (tests and the demo reach its devices and radio through it). */
  fleet?: SimFleet;
  close(): Promise<void>;
}

export interface SimAdapterOptions {
  devices: SimDeviceConfig[];
  link: string;
  clock: 'real' | 'virtual';
  maxConnections: number;
}

export async function openSimAdapter(options: SimAdapterOptions): Promise<AdapterBackend> {
  const fleet = await createSimFleet({ devices: options.devices, link: options.link, clock: options.clock } as Parameters<typeof createSimFleet>[0]);
  const scheduler = new AdapterScheduler(fleet.central, { maxConnections: options.maxConnections });
  return {
    central: fleet.central,
    scheduler,
    fleet,
    async close() {
      await scheduler.close();
      await fleet.close();
    },
  };
}

export interface PlantAdapterOptions {
  /** The plant simulator's HCI server, "127.0.0.1:PORT" (loopback only). */
  plant: string;
  /** This gateway's id in the plant layout. */
  gateway: string;
  maxConnections: number;
}

/** The plant's address as "127.0.0.1:PORT"; throws BAD_OPTION naming what is wrong. */
export { parsePlantAddress };

/**
 * A gateway of the simulated plant (esp32-ble-ota plant-sim): noble's HCI layer over TCP to the plant,
 * which owns the devices (no fleet here). Fails PLANT_UNAVAILABLE when the plant is not running,
 * PLANT_UNKNOWN_GATEWAY / PLANT_GATEWAY_CONNECTED when it refuses the id.
 */
export async function openPlantAdapter(options: PlantAdapterOptions): Promise<AdapterBackend> {
  const { host, port } = parsePlantAddress(options.plant);
  return centralBackend(await createRemotePlantCentral({ host, port, gateway: options.gateway }), options.maxConnections);
}

export async function openHciAdapter(deviceId: number, maxConnections: number): Promise<AdapterBackend> {
  // One noble instance per adapter; the library loads it lazily and reports a missing adapter typed.
  return centralBackend(createHciCentral({ deviceId }), maxConnections);
}

/** A central and its scheduler as one backend (no simulated fleet behind it); closing closes both. */
function centralBackend(central: BleCentral & { close(): Promise<void> }, maxConnections: number): AdapterBackend {
  const scheduler = new AdapterScheduler(central, { maxConnections });
  return {
    central,
    scheduler,
    async close() {
      await scheduler.close();
      await central.close();
    },
  };
}
