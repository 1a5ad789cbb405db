/**
 * createSimDevice: a virtual ESP32 running our firmware (protocol v2) or the seed firmware (legacy),
 * with flash, partitions, otadata, NVS, boot/rollback and W25Q32-class flash timing.
 */
import { Clock, realClock } from '../../clock';
import { buildAppImage } from '../../image/builder';
import type { ChipName, SimDeviceConfig } from '../types';
import { DeviceFlash } from './image-slots';
import { ModelTuning, resolveSettings } from './settings';
import { SimDevice } from './sim-device';

/** Size of the synthetic factory image a new simulated device starts with. */
export const FACTORY_IMAGE_SIZE = 128 * 1024;

export interface CreateSimDeviceOptions {
  /** The image in ota_0 at power-on (default: buildAppImage for the config's chip and version). */
  factoryImage?: Buffer;
  /** Facts of this device the fleet config does not carry (settings.ts ModelTuning). */
  model?: Partial<ModelTuning>;
}

export function createSimDevice(config: SimDeviceConfig, clock: Clock = realClock, options: CreateSimDeviceOptions = {}): SimDevice {
  const settings = resolveSettings(config, options.model);
  const flash = new DeviceFlash(settings.partitionSize, settings.chip, settings.model.chipRevision, (fn) => clock.setTimer(fn, 0));
  flash.writeFactoryImage(options.factoryImage ?? defaultFactoryImage(settings.chip, settings.version, settings.secureVersion, settings.protocol));
  // Factory provisioning: the keys and the floor are in NVS before the first boot.
  flash.nvs.deviceKey = settings.deviceKey ? Buffer.from(settings.deviceKey) : null;
  flash.nvs.fleetKey = settings.fleetKey ? Buffer.from(settings.fleetKey) : null;
  flash.nvs.releaseFloor = settings.releaseFloor;
  return new SimDevice(settings, flash, clock);
}

/** The last default factory image built: a fleet of alike devices builds it once (flash copies it). */
let lastDefault: { key: string; image: Buffer } | null = null;

function defaultFactoryImage(chip: ChipName, version: string, secureVersion: number, protocol: 'v2' | 'legacy'): Buffer {
  const projectName = protocol === 'legacy' ? 'esp32_ble_ota' : 'ble_ota_app';
  const key = JSON.stringify([chip, version, secureVersion, projectName]);
  if (lastDefault?.key !== key) {
    lastDefault = { key, image: buildAppImage({ chip, version, secureVersion, projectName, size: FACTORY_IMAGE_SIZE }) };
  }
  return lastDefault.image;
}

export { SimDevice } from './sim-device';
export type { DeviceSettings, ModelTuning } from './settings';
export { resolveSettings, addressFromName, DEFAULT_MODEL_TUNING } from './settings';
export { flashTiming, SECTOR_ERASE_MS, BLOCK_ERASE_MS, PAGE_PROGRAM_MS, VERIFY_READ_BYTES_PER_MS } from './flash-timing';
export type { FlashTiming } from './flash-timing';
export { StreamInflater, InflateError } from './inflate';
export { ResetReason, BOOT_TIME_MS, bootTimeMs } from './machine';
export { deviceChunkSize } from './chunk-size';
