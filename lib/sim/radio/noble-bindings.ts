/**
 * noble's bindings interface (what lib/noble.js calls and the events it listens to, as the hci-socket
 * bindings provide them) on the virtual radio. `require('@abandonware/noble/with-bindings')(bindings)`
 * then gives a real Noble whose Peripheral/Service/Characteristic objects run on the simulation.
 */
import { EventEmitter } from 'events';
import type { SimRadio } from './sim-radio';

export class SimBindings extends EventEmitter {
  constructor(
    private readonly radio: SimRadio,
    /** Which of the radio's centrals these bindings are (0: the radio's own adapter). */
    readonly central = 0,
  ) {
    super();
  }

  init(): void {
    this.radio.init(this.central);
  }

  setScanParameters(): void {
    this.emit('scanParametersSet');
  }

  startScanning(serviceUuids: string[] | undefined, allowDuplicates: boolean | undefined): void {
    this.radio.startScanning(serviceUuids ?? [], allowDuplicates === true, this.central);
  }

  stopScanning(): void {
    this.radio.stopScanning(this.central);
  }

  connect(peripheralUuid: string): void {
    this.radio.connect(peripheralUuid, this.central);
  }

  cancelConnect(peripheralUuid: string): void {
    this.radio.cancelConnect(peripheralUuid, this.central);
  }

  disconnect(peripheralUuid: string): void {
    this.radio.disconnect(peripheralUuid, this.central);
  }

  reset(): void {
    // Nothing to reset in a virtual controller.
  }

  updateRssi(peripheralUuid: string): void {
    const rssi = this.radio.rssi(peripheralUuid);
    if (rssi !== undefined) this.radio.clock.setTimer(() => this.emit('rssiUpdate', peripheralUuid, rssi), 0);
  }

  discoverServices(peripheralUuid: string, uuids: string[] | undefined): void {
    this.radio.gatt(peripheralUuid, this.central)?.discoverServices(uuids ?? []);
  }

  discoverIncludedServices(peripheralUuid: string, serviceUuid: string): void {
    if (this.radio.gatt(peripheralUuid, this.central)) this.radio.clock.setTimer(() => this.emit('includedServicesDiscover', peripheralUuid, serviceUuid, []), 0);
  }

  discoverCharacteristics(peripheralUuid: string, serviceUuid: string, characteristicUuids: string[] | undefined): void {
    this.radio.gatt(peripheralUuid, this.central)?.discoverCharacteristics(serviceUuid, characteristicUuids ?? []);
  }

  read(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    this.radio.gatt(peripheralUuid, this.central)?.read(serviceUuid, characteristicUuid);
  }

  write(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean): void {
    this.radio.gatt(peripheralUuid, this.central)?.write(serviceUuid, characteristicUuid, data, withoutResponse === true);
  }

  broadcast(): void {
    // Our devices have no broadcast (server characteristic configuration); like a server without it,
    // nothing is confirmed.
  }

  notify(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, notify: boolean): void {
    this.radio.gatt(peripheralUuid, this.central)?.setNotify(serviceUuid, characteristicUuid, notify);
  }

  discoverDescriptors(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    this.radio.gatt(peripheralUuid, this.central)?.discoverDescriptors(serviceUuid, characteristicUuid);
  }

  readValue(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, descriptorUuid: string): void {
    this.radio.gatt(peripheralUuid, this.central)?.readDescriptor(serviceUuid, characteristicUuid, descriptorUuid);
  }

  writeValue(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, descriptorUuid: string, data: Buffer): void {
    this.radio.gatt(peripheralUuid, this.central)?.writeDescriptor(serviceUuid, characteristicUuid, descriptorUuid, data);
  }

  readHandle(): void {
    // Raw handle access is not modelled: our clients address characteristics by UUID.
  }

  writeHandle(): void {
    // See readHandle.
  }
}
