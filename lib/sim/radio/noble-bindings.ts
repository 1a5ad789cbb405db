/**
 * noble's bindings interface (what lib/noble.js calls and the events it listens to, as the hci-socket
 * bindings provide them) on the virtual radio. `require('@abandonware/noble/with-bindings')(bindings)`
 * then gives a real Noble whose Peripheral/Service/Characteristic objects run on the simulation.
 */
import { EventEmitter } from 'events';
import type { SimRadio } from './sim-radio';

export class SimBindings extends EventEmitter {
  constructor(private readonly radio: SimRadio) {
    super();
  }

  init(): void {
    this.radio.init();
  }

  setScanParameters(): void {
    this.emit('scanParametersSet');
  }

  startScanning(serviceUuids: string[] | undefined, allowDuplicates: boolean | undefined): void {
    this.radio.startScanning(serviceUuids ?? [], allowDuplicates === true);
  }

  stopScanning(): void {
    this.radio.stopScanning();
  }

  connect(peripheralUuid: string): void {
    this.radio.connect(peripheralUuid);
  }

  cancelConnect(peripheralUuid: string): void {
    this.radio.cancelConnect(peripheralUuid);
  }

  disconnect(peripheralUuid: string): void {
    this.radio.disconnect(peripheralUuid);
  }

  reset(): void {
    // Nothing to reset in a virtual controller.
  }

  updateRssi(peripheralUuid: string): void {
    const rssi = this.radio.rssi(peripheralUuid);
    if (rssi !== undefined) this.radio.clock.setTimer(() => this.emit('rssiUpdate', peripheralUuid, rssi), 0);
  }

  discoverServices(peripheralUuid: string, uuids: string[] | undefined): void {
    this.radio.gatt(peripheralUuid)?.discoverServices(uuids ?? []);
  }

  discoverIncludedServices(peripheralUuid: string, serviceUuid: string): void {
    if (this.radio.gatt(peripheralUuid)) this.radio.clock.setTimer(() => this.emit('includedServicesDiscover', peripheralUuid, serviceUuid, []), 0);
  }

  discoverCharacteristics(peripheralUuid: string, serviceUuid: string, characteristicUuids: string[] | undefined): void {
    this.radio.gatt(peripheralUuid)?.discoverCharacteristics(serviceUuid, characteristicUuids ?? []);
  }

  read(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    this.radio.gatt(peripheralUuid)?.read(serviceUuid, characteristicUuid);
  }

  write(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean): void {
    this.radio.gatt(peripheralUuid)?.write(serviceUuid, characteristicUuid, data, withoutResponse === true);
  }

  broadcast(): void {
    // Our devices have no broadcast (server characteristic configuration); like a server without it,
    // nothing is confirmed.
  }

  notify(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, notify: boolean): void {
    this.radio.gatt(peripheralUuid)?.setNotify(serviceUuid, characteristicUuid, notify);
  }

  discoverDescriptors(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    this.radio.gatt(peripheralUuid)?.discoverDescriptors(serviceUuid, characteristicUuid);
  }

  readValue(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, descriptorUuid: string): void {
    this.radio.gatt(peripheralUuid)?.readDescriptor(serviceUuid, characteristicUuid, descriptorUuid);
  }

  writeValue(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, descriptorUuid: string, data: Buffer): void {
    this.radio.gatt(peripheralUuid)?.writeDescriptor(serviceUuid, characteristicUuid, descriptorUuid, data);
  }

  readHandle(): void {
    // Raw handle access is not modelled: our clients address characteristics by UUID.
  }

  writeHandle(): void {
    // See readHandle.
  }
}
