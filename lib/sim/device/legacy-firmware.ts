/**
 * The seed firmware (michael-angerer/esp32_ble_ota, shared/seed/seed-protocol.md) as it behaves,
 * defects included:
 * - every Data write is copied into a 512-byte buffer and `packet_size` bytes of that buffer go to
 *   esp_ota_write, so a short last packet drags stale bytes from the previous one into flash;
 * - a Data value over 512 bytes fails at ATT level (so packet_size 514 at MTU 517 fails every write);
 * - esp_ota_write runs inside the BLE callback with OTA_WITH_SEQUENTIAL_WRITES: entering a new 4 KiB
 *   sector erases it there, so that write's response waits for the erase (and the page programs);
 * - esp_ota_write errors are only logged; only DONE_NAK reveals a bad image;
 * - no resume: a disconnect leaves it "updating", a new REQUEST starts over at 0;
 * - DONE answers DONE_ACK / DONE_NAK, then the device restarts after 500 ms;
 * - the new image is marked valid at boot before anything is checked.
 */
import {
  DIS_SERVICE_UUID,
  LEGACY_CONTROL_UUID,
  LEGACY_DATA_UUID,
  LEGACY_MAX_PACKET,
  LEGACY_RESTART_DELAY_MS,
  LegacyOp,
  MANUFACTURER_NAME_UUID,
  MODEL_NUMBER_UUID,
  OtaStateCode,
} from '../../protocol/constants';
import { AttError, VirtualAdvertisement, VirtualService } from '../types';
import { SECTOR_SIZE, programTimeMs } from './flash-timing';
import { AttCode, LEGACY_SERVICE_UUID, advertisedName, legacyGatt } from './gatt-tables';
import type { Application, BootContext, Machine } from './machine';
import { SlotIndex, otherSlot } from './ota-data';
import type { DeviceSettings } from './settings';

export const SEED_MANUFACTURER_NAME = 'Company 42';
export const SEED_MODEL_NUMBER = 'ESP32';
const IMAGE_MAGIC = 0xe9;

interface OtaHandle {
  slot: SlotIndex;
  wrote: number;
  erasedEnd: number;
}

export class LegacyFirmware implements Application {
  private readonly dataBuffer = Buffer.alloc(LEGACY_MAX_PACKET);
  private controlValue = LegacyOp.NOP as number;
  private updating = false;
  private packetSize = 0;
  private handle: OtaHandle | null = null;
  /** esp_ota_write failures the seed only logs (for tests and curious users). */
  readonly log: string[] = [];

  constructor(
    private readonly machine: Machine,
    private readonly boot: BootContext,
    private readonly settings: DeviceSettings,
  ) {}

  start(): void {
    // The seed confirms a new image as soon as it runs.
    const otadata = this.machine.flash.otadata;
    if (otadata.state(this.boot.slot) === OtaStateCode.PENDING_VERIFY) otadata.setState(this.boot.slot, OtaStateCode.VALID);
  }

  gatt(): VirtualService[] {
    return legacyGatt();
  }

  advertisement(): VirtualAdvertisement {
    return { localName: advertisedName(this.settings.name), serviceUuids: [LEGACY_SERVICE_UUID] };
  }

  onConnect(): void {}

  onMtu(): void {}

  onDisconnect(): void {
    // The seed keeps `updating` and its handle: a later REQUEST begins again.
  }

  onRead(_conn: number, service: string, characteristic: string): Buffer {
    if (service === DIS_SERVICE_UUID && characteristic === MANUFACTURER_NAME_UUID) return Buffer.from(SEED_MANUFACTURER_NAME);
    if (service === DIS_SERVICE_UUID && characteristic === MODEL_NUMBER_UUID) return Buffer.from(SEED_MODEL_NUMBER);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_CONTROL_UUID) return Buffer.from([this.controlValue]);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_DATA_UUID) throw new AttError(AttCode.READ_NOT_PERMITTED, 'not readable');
    throw new AttError(AttCode.ATTRIBUTE_NOT_FOUND, `no characteristic ${characteristic} in service ${service}`);
  }

  onWrite(conn: number, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void | Promise<void> {
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_DATA_UUID) return this.onData(data);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_CONTROL_UUID) return this.onControl(conn, data);
    if (withoutResponse) return;
    throw new AttError(AttCode.WRITE_NOT_PERMITTED, `characteristic ${characteristic} does not take writes`);
  }

  private onControl(conn: number, data: Buffer): void {
    if (data.length !== 1) throw new AttError(AttCode.INVALID_ATTRIBUTE_VALUE_LENGTH, 'control values are exactly 1 byte');
    this.controlValue = data[0];
    if (data[0] === LegacyOp.REQUEST) {
      // esp_ota_begin(next partition, OTA_WITH_SEQUENTIAL_WRITES): nothing erased yet.
      const slot = otherSlot(this.boot.slot);
      this.handle = { slot, wrote: 0, erasedEnd: 0 };
      this.machine.flash.resetExtent(slot);
      this.packetSize = this.dataBuffer.readUInt16LE(0);
      this.updating = true;
      this.notifyControl(conn, LegacyOp.REQUEST_ACK);
    } else if (data[0] === LegacyOp.DONE) {
      this.notifyControl(conn, this.finish() ? LegacyOp.DONE_ACK : LegacyOp.DONE_NAK);
      this.machine.appTimers.set(() => this.machine.restart('seed firmware restarts after DONE'), LEGACY_RESTART_DELAY_MS);
    }
  }

  /** esp_ota_end + esp_ota_set_boot_partition. */
  private finish(): boolean {
    const handle = this.handle;
    this.updating = false;
    this.handle = null;
    if (!handle || handle.wrote === 0) return false;
    if (this.machine.flash.verifyImage(handle.slot) !== null) return false;
    this.machine.flash.otadata.setBoot(handle.slot);
    return true;
  }

  private onData(data: Buffer): void | Promise<void> {
    if (data.length > LEGACY_MAX_PACKET) throw new AttError(AttCode.INVALID_ATTRIBUTE_VALUE_LENGTH, `${data.length} bytes > ${LEGACY_MAX_PACKET}-byte buffer`);
    data.copy(this.dataBuffer, 0);
    if (!this.updating || !this.handle) return;
    const busyMs = this.otaWrite(this.handle, this.dataBuffer.subarray(0, Math.min(this.packetSize, LEGACY_MAX_PACKET)));
    if (busyMs <= 0) return;
    return new Promise((resolve) => this.machine.appTimers.set(resolve, busyMs));
  }

  /** esp_ota_write with sequential writes: erases each new sector on the way. Returns the flash time. */
  private otaWrite(handle: OtaHandle, bytes: Buffer): number {
    const flash = this.machine.flash;
    if (bytes.length === 0) return 0;
    if (handle.wrote === 0 && bytes[0] !== IMAGE_MAGIC) {
      this.log.push('esp_ota_write: ESP_ERR_OTA_VALIDATE_FAILED (first byte is not 0xE9)');
      return 0;
    }
    if (handle.wrote + bytes.length > flash.partitionSize) {
      this.log.push('esp_ota_write: ESP_ERR_INVALID_SIZE');
      return 0;
    }
    let ms = 0;
    while (handle.erasedEnd < handle.wrote + bytes.length) {
      flash.slots[handle.slot].erase(handle.erasedEnd, SECTOR_SIZE);
      handle.erasedEnd += SECTOR_SIZE;
      ms += this.settings.timing.sectorEraseMs;
    }
    flash.program(handle.slot, handle.wrote, bytes);
    ms += programTimeMs(this.settings.timing, handle.wrote, bytes.length);
    handle.wrote += bytes.length;
    return ms;
  }

  private notifyControl(conn: number, value: number): void {
    this.controlValue = value;
    this.machine.notify(LEGACY_SERVICE_UUID, LEGACY_CONTROL_UUID, Buffer.from([value]), conn);
  }
}
