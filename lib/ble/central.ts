/**
 * The small BLE central interface everything above lib/ble uses. Implemented on @abandonware/noble
 * (lib/ble/noble-central.ts), whether noble drives a real HCI adapter or the simulator's virtual radio
 * (lib/sim), so the same code paths run in production, tests and the benchmark.
 * UUIDs are lower-case hex without dashes, as noble reports them ("180a", "5c4e0001...").
 */
import type { EventEmitter } from 'events';
import type { Clock } from '../clock';

/** A device as scans and selections name it: noble's id, its BD address, its advertised name. */
export interface DeviceRef {
  id: string;
  address: string;
  name: string;
}

export type AdapterState = 'unknown' | 'resetting' | 'unsupported' | 'unauthorized' | 'poweredOff' | 'poweredOn';

export interface Advertisement {
  localName?: string;
  /** Raw manufacturer-specific data, company id (little-endian) first, as noble gives it. */
  manufacturerData?: Buffer;
  serviceUuids: string[];
  txPowerLevel?: number;
}

export interface DiscoveredDevice {
  /** noble's peripheral id (stable per adapter). */
  id: string;
  /** BD address "aa:bb:cc:dd:ee:ff" (may be "" on platforms that hide it). */
  address: string;
  name: string;
  rssi: number;
  advertisement: Advertisement;
  /** Clock time of this sighting. */
  seenAt: number;
}

export interface ScanOptions {
  /** Only report devices advertising one of these services (empty: all). */
  services?: string[];
  /** Report every advertisement, not only the first per device. */
  allowDuplicates?: boolean;
}

export interface ScanHandle {
  stop(): Promise<void>;
}

export interface GattCharacteristicInfo {
  uuid: string;
  properties: string[]; // noble's names: read, write, writeWithoutResponse, notify, indicate
}

export interface GattServiceInfo {
  uuid: string;
  characteristics: GattCharacteristicInfo[];
}

export interface ConnectOptions {
  /** Give up connecting after this many ms (clock time). */
  timeoutMs?: number;
}

export interface BleConnection extends EventEmitter {
  /** Emits 'disconnect' (reason?: string) once when the link drops for any reason. */
  readonly deviceId: string;
  /** Negotiated ATT MTU (23 when nothing was negotiated). */
  readonly mtu: number;
  readonly connected: boolean;
  /** Discovers all services and characteristics once; later calls return the cached table. */
  discover(): Promise<GattServiceInfo[]>;
  read(service: string, characteristic: string): Promise<Buffer>;
  write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void>;
  subscribe(service: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void>;
  disconnect(): Promise<void>;
}

export interface BleCentral extends EventEmitter {
  /** Emits 'stateChange' (AdapterState). */
  readonly state: AdapterState;
  readonly clock: Clock;
  /** Resolves once poweredOn; rejects with OtaError ADAPTER_OFF / ADAPTER_MISSING after timeoutMs. */
  waitReady(timeoutMs: number): Promise<void>;
  startScan(options: ScanOptions, onDevice: (device: DiscoveredDevice) => void): Promise<ScanHandle>;
  /** Connects to a device seen in a scan (by id or address). Rejects DEVICE_NOT_FOUND when unknown. */
  connect(idOrAddress: string, options?: ConnectOptions): Promise<BleConnection>;
  close(): Promise<void>;
}
