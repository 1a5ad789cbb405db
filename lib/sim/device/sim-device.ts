/**
 * The VirtualPeripheral the radio hosts: a Machine (power, boot, flash) running our v2 firmware or the
 * seed firmware. Methods map one to one onto the radio contract in lib/sim/types.ts.
 */
import type { Clock } from '../../clock';
import type { PeripheralHost, VirtualAdvertisement, VirtualPeripheral, VirtualService } from '../types';
import { legacyGatt, v2Gatt } from './gatt-tables';
import { DeviceFlash } from './image-slots';
import { LegacyFirmware } from './legacy-firmware';
import { Application, ApplicationFactory, Machine } from './machine';
import type { DeviceSettings } from './settings';
import { V2Firmware } from './v2-firmware';

const DEFAULT_CONNECTION = 0;

export class SimDevice implements VirtualPeripheral {
  readonly address: string;
  readonly name: string;
  readonly maxMtu: number;
  readonly machine: Machine;

  constructor(
    readonly settings: DeviceSettings,
    readonly flash: DeviceFlash,
    clock: Clock,
  ) {
    this.address = settings.address;
    this.name = settings.name;
    this.maxMtu = settings.maxMtu;
    const factory: ApplicationFactory =
      settings.protocol === 'legacy' ? (m, boot) => new LegacyFirmware(m, boot, settings) : (m, boot) => new V2Firmware(m, boot, settings);
    this.machine = new Machine(flash, clock, factory, settings.timing);
    this.machine.powerOn();
  }

  /** The application running now (null while rebooting or off). */
  get application(): Application | null {
    return this.machine.application;
  }

  /** Successful boot switches into a newly written image since power-on of the model (Machine.installs). */
  get installs(): number {
    return this.machine.installs;
  }

  attach(host: PeripheralHost): void {
    this.machine.attach(host);
  }

  advertisement(): VirtualAdvertisement | null {
    return this.machine.application?.advertisement() ?? null;
  }

  /** The GATT table is fixed by the firmware build, so it is known even while the device reboots. */
  gatt(): VirtualService[] {
    return this.settings.protocol === 'legacy' ? legacyGatt() : v2Gatt();
  }

  onConnect(mtu: number, connectionId = DEFAULT_CONNECTION): void {
    this.machine.connect(connectionId, Math.min(mtu, this.maxMtu));
  }

  onMtu(mtu: number, connectionId = DEFAULT_CONNECTION): void {
    this.machine.mtuChanged(connectionId, Math.min(mtu, this.maxMtu));
  }

  onDisconnect(connectionId = DEFAULT_CONNECTION): void {
    this.machine.disconnect(connectionId);
  }

  onRead(serviceUuid: string, characteristicUuid: string, connectionId = DEFAULT_CONNECTION): Buffer | Promise<Buffer> {
    return this.machine.read(connectionId, serviceUuid.toLowerCase(), characteristicUuid.toLowerCase());
  }

  onWrite(serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean, connectionId = DEFAULT_CONNECTION): void | Promise<void> {
    return this.machine.write(connectionId, serviceUuid.toLowerCase(), characteristicUuid.toLowerCase(), data, withoutResponse);
  }

  powerLoss(offMs: number): void {
    this.machine.powerLoss(offMs);
  }

  async shutdown(): Promise<void> {
    this.machine.shutdown();
  }
}
