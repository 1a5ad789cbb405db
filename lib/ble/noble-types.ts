/**
 * The parts of @abandonware/noble's objects (lib/noble.js, peripheral.js, service.js, characteristic.js)
 * that noble-central.ts uses, typed structurally so that noble on a real adapter and noble on the
 * simulator's virtual HCI controller both fit without pulling noble's own (looser) typings in.
 */
import type { EventEmitter } from 'events';

export interface NobleAdvertisement {
  localName?: string;
  manufacturerData?: Buffer;
  serviceUuids?: string[];
  txPowerLevel?: number;
}

export interface NobleCharacteristic extends EventEmitter {
  uuid: string;
  properties: string[];
  read(callback?: (error: unknown, data: Buffer) => void): void;
  write(data: Buffer, withoutResponse: boolean, callback?: (error: unknown) => void): void;
  subscribe(callback?: (error: unknown) => void): void;
}

export interface NobleService extends EventEmitter {
  uuid: string;
  characteristics: NobleCharacteristic[] | null;
  discoverCharacteristics(uuids: string[], callback?: (error: unknown, characteristics: NobleCharacteristic[]) => void): void;
}

export interface NoblePeripheral extends EventEmitter {
  id: string;
  address: string;
  advertisement: NobleAdvertisement;
  rssi: number;
  mtu: number | null;
  state: string;
  connectable?: boolean;
  connect(callback?: (error?: unknown) => void): void;
  cancelConnect(): void;
  disconnect(callback?: () => void): void;
  discoverServices(uuids: string[], callback?: (error: unknown, services: NobleService[]) => void): void;
}

export interface Noble extends EventEmitter {
  readonly state: string;
  startScanning(serviceUuids: string[], allowDuplicates: boolean, callback?: (error?: Error | null) => void): void;
  stopScanning(callback?: () => void): void;
}
