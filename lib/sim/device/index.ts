/**
 * createSimDevice: a virtual ESP32 running our firmware (protocol v2) or the seed firmware (legacy),
 * with flash, partitions, otadata, NVS, boot/rollback and W25Q32-class flash timing.
 */
import { Clock, realClock } from '../../clock';
import { buildAppImage } from '../../image/builder';
import type { SimDeviceConfig } from '../types';
import { DeviceFlash } from './image-slots';
import { resolveSettings } from './settings';
import { SimDevice } from './sim-device';

/** Size of the synthetic factory image a new simulated device starts with. */
export const FACTORY_IMAGE_SIZE = 128 * 1024;

export interface CreateSimDeviceOptions {
  /** The image in ota_0 at power-on (default: buildAppImage for the config's chip and version). */
  factoryImage?: Buffer;
}

export function createSimDevice(config: SimDeviceConfig, clock: Clock = realClock, options: CreateSimDeviceOptions = {}): SimDevice {
  const settings = resolveSettings(config);
  const flash = new DeviceFlash(settings.partitionSize, settings.chip);
  const factory =
    options.factoryImage ??
    buildAppImage({
      chip: settings.chip,
      version: settings.version,
      secureVersion: settings.secureVersion,
      projectName: settings.protocol === 'legacy' ? 'esp32_ble_ota' : 'ble_ota_app',
      size: FACTORY_IMAGE_SIZE,
    });
  flash.writeFactoryImage(factory);
  return new SimDevice(settings, flash, clock);
}

export { SimDevice } from './sim-device';
export type { DeviceSettings } from './settings';
export { resolveSettings, addressFromName } from './settings';
export { flashTiming, SECTOR_ERASE_MS, BLOCK_ERASE_MS, PAGE_PROGRAM_MS } from './flash-timing';
export type { FlashTiming } from './flash-timing';
export { StreamInflater, InflateError } from './inflate';
export { ResetReason, BOOT_TIME_MS } from './machine';
