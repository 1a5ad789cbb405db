/**
 * Public API of the core library (no Node-RED imports): BLE central and adapter scheduler, OTA
 * operations, image checks, protocol codecs, the simulated fleet and the benchmark.
 */
export { OtaError, isOtaError, toOtaError } from './errors';
export { realClock, sleep, withTimeout } from './clock';
export type { Clock, TimerHandle } from './clock';
export type {
  AdapterState,
  Advertisement,
  BleCentral,
  BleConnection,
  ConnectOptions,
  DiscoveredDevice,
  GattCharacteristicInfo,
  GattServiceInfo,
  ScanHandle,
  ScanOptions,
} from './ble/central';
export { createNobleCentral, createHciCentral, loadRealNoble } from './ble/noble-central';
export type { NobleCentralOptions, NobleSource, NobleBleCentral } from './ble/noble-central';
export { AdapterScheduler } from './ble/scheduler';
export type { SchedulerOptions, SessionOptions, DeviceSession, FindOptions, ScanRequest } from './ble/scheduler';
export * from './ota';
export { inspectImage, parseImage, validateAppImage, checkImageForTarget, appHash, fileSha256, buildAppImage } from './image';
export type { ParsedImage, InspectResult, TargetInfo } from './image';
export { decodeStatus } from './protocol/status';
export type { DeviceStatus } from './protocol/status';
export { tryDecodeAdvertisement, decodeAdvertisement } from './protocol/advertisement';
export type { AdvertisedStatus } from './protocol/advertisement';
export { createSimFleet } from './sim/fleet';
export type { ChipName, SimDeviceConfig } from './sim/types';
export { runBenchmark, formatBenchTable } from './bench';
export type { BenchReport, BenchRow } from './bench';
