/**
 * The seed firmware (michael-angerer/esp32_ble_ota, shared/seed/seed-protocol.md) as its code behaves
 * on NimBLE and ESP-IDF, defects included.
 *
 * Seed model (sources read at michael-angerer/esp32_ble_ota 99ce5e0, espressif/esp-nimble 32b2124f,
 * espressif/esp-idf 10212290; docs/PROTOCOL.md §4.6 says what a client can and cannot know):
 * - GATT: Device Information (Manufacturer "Company 42", Model "ESP32") and the OTA service with
 *   Control (read, write, notify) and Data (write): esp/main/gatt_svr.c:15-16, :35-87. The service UUID
 *   registered is …-144a… (gatt_svr.h:28, octal 024); gatt-tables.ts.
 * - Advertisement: Flags 0x06 (LE General Discoverable | BR/EDR not supported), TX power level read
 *   from the controller, complete name "esp32", no service UUID: gap.c:15-24, gap.h:12;
 *   esp-nimble nimble/host/src/ble_hs_adv.c:331-338 reads the level (ESP32 default +3 dBm, esp-idf
 *   components/bt/include/esp32/include/esp_bt.h:363). Every seed device has this name: the fleet
 *   config name of a simulated seed device is only its lookup key (SimDevice.name).
 *   Advertising stops when a central connects and resumes on disconnect (gap.c:58-71: only
 *   BLE_GAP_EVENT_DISCONNECT calls advertise() again).
 * - Control write (gatt_svr.c:233-239): the value is copied only when it is exactly 1 byte
 *   (gatt_svr_chr_write, :112-128), but update_ota_control runs either way; the value it then sees
 *   is never REQUEST or DONE (it turns them into ACK/NAK), so a bad length is an ATT error and nothing
 *   else.
 * - REQUEST (:136-167): esp_ota_begin(next partition, OTA_WITH_SEQUENTIAL_WRITES) erases nothing;
 *   packet_size is read from the first 2 bytes of the Data buffer as they are now; REQUEST_ACK is
 *   notified inside the callback, so before the REQUEST write's response. A REQUEST while an update
 *   runs begins again at 0 (the old handle leaks; the esp-idf of 2021 had no conflict check:
 *   esp_ota_ops.c:190-193 ESP_ERR_OTA_ALREADY_IN_PROGRESS came in 2026, v6.1).
 * - Data write (:251-275): copied into the 512-byte buffer when 1..512 bytes, else an ATT error
 *   (INVALID_ATTR_VALUE_LEN) — and while updating, esp_ota_write(buffer, packet_size) runs whatever the
 *   copy said, so a short last packet drags stale bytes of the previous one into flash, and a failed
 *   copy writes the previous packet again. esp_ota_write errors are only logged (:265-268).
 * - esp_ota_write with sequential writes (esp-idf components/app_update/esp_ota_ops.c:336-432): a
 *   write that enters a new 4 KiB sector erases it first, inside the BLE callback, so that write's
 *   response waits; the first byte must be 0xE9 (:371-376); a write past the partition end fails whole
 *   (components/esp_partition/partition_target.c:70-75, erase :130-135).
 * - DONE (:169-212): esp_ota_end (fails when nothing was written, esp_ota_ops.c:629) and
 *   esp_ota_set_boot_partition, then DONE_ACK or DONE_NAK is notified. On success vTaskDelay(500 ms)
 *   and esp_restart() follow inside the access callback. NimBLE sends the Write Response only after
 *   the callback returns (esp-nimble nimble/host/src/ble_att_svr.c:2252-2315 ble_att_svr_rx_write ->
 *   :602 ble_att_svr_write_handle -> :570-599 access callback -> :2312 ble_att_svr_tx_rsp), so the
 *   DONE write of a successful update is never answered: onWrite returns a promise that never
 *   settles. The restart cuts the radio without LL_TERMINATE_IND: the central notices by its
 *   supervision timeout (PeripheralHost.loseConnection). After DONE_NAK there is no restart and the
 *   write is answered.
 * - Boot: a pending-verify image is marked valid before anything is checked (main.c:34-49,
 *   run_diagnostics() always true).
 * - ATT MTU 256 and 1 MiB OTA partitions: ESP-IDF defaults (settings.ts SEED_MAX_MTU,
 *   SEED_OTA_PARTITION_SIZE). Not modeled: the factory partition (the model has two app slots), the
 *   GAP/GATT services (gatt_svr.c:278-279), the time esp_ota_end takes to verify the image.
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
import { AttCode, LEGACY_SERVICE_UUID, legacyGatt } from './gatt-tables';
import type { Application, BootContext, Machine } from './machine';
import { SlotIndex, otherSlot } from './ota-data';
import type { DeviceSettings } from './settings';

export const SEED_MANUFACTURER_NAME = 'Company 42';
export const SEED_MODEL_NUMBER = 'ESP32';
/** gap.h:12: the name every seed device advertises. */
export const SEED_DEVICE_NAME = 'esp32';
/** BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP (gap.c:15). */
export const SEED_ADV_FLAGS = 0x06;
/** The ESP32 controller's default TX power, +3 dBm (esp_bt.h:363), as BLE_HS_ADV_TX_PWR_LVL_AUTO reads it. */
export const SEED_TX_POWER_DBM = 3;
const IMAGE_MAGIC = 0xe9;

interface OtaHandle {
  slot: SlotIndex;
  wrote: number;
}

export class LegacyFirmware implements Application {
  private readonly dataBuffer = Buffer.alloc(LEGACY_MAX_PACKET);
  private controlValue = LegacyOp.NOP as number;
  private updating = false;
  private packetSize = 0;
  private handle: OtaHandle | null = null;
  private readonly links = new Set<number>();
  /** What the seed logs with ESP_LOGE (its only error reporting). */
  readonly log: string[] = [];

  constructor(
    private readonly machine: Machine,
    private readonly boot: BootContext,
    private readonly settings: DeviceSettings,
  ) {}

  start(): void {
    // main.c:34-49: a new image is confirmed as soon as it runs.
    const otadata = this.machine.flash.otadata;
    if (otadata.state(this.boot.slot) === OtaStateCode.PENDING_VERIFY) otadata.setState(this.boot.slot, OtaStateCode.VALID);
  }

  gatt(): VirtualService[] {
    return legacyGatt();
  }

  advertisement(): VirtualAdvertisement | null {
    if (this.links.size > 0) return null;
    return { flags: SEED_ADV_FLAGS, txPowerLevel: SEED_TX_POWER_DBM, localName: SEED_DEVICE_NAME, serviceUuids: [] };
  }

  onConnect(conn: number): void {
    this.links.add(conn);
  }

  onMtu(): void {}

  onDisconnect(conn: number): void {
    // The seed keeps `updating` and its handle: a later REQUEST begins again. gap.c:65-71 advertises again.
    this.links.delete(conn);
    this.machine.advertisingChanged();
  }

  onRead(conn: number, service: string, characteristic: string): Buffer {
    this.links.add(conn);
    if (service === DIS_SERVICE_UUID && characteristic === MANUFACTURER_NAME_UUID) return Buffer.from(SEED_MANUFACTURER_NAME);
    if (service === DIS_SERVICE_UUID && characteristic === MODEL_NUMBER_UUID) return Buffer.from(SEED_MODEL_NUMBER);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_CONTROL_UUID) return Buffer.from([this.controlValue]);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_DATA_UUID) throw new AttError(AttCode.READ_NOT_PERMITTED, 'not readable');
    throw new AttError(AttCode.ATTRIBUTE_NOT_FOUND, `no characteristic ${characteristic} in service ${service}`);
  }

  onWrite(conn: number, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void | Promise<void> {
    this.links.add(conn);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_DATA_UUID) return this.onData(data);
    if (service === LEGACY_SERVICE_UUID && characteristic === LEGACY_CONTROL_UUID) return this.onControl(conn, data);
    if (withoutResponse) return;
    throw new AttError(AttCode.WRITE_NOT_PERMITTED, `characteristic ${characteristic} does not take writes`);
  }

  private onControl(conn: number, data: Buffer): void | Promise<void> {
    if (data.length !== 1) throw new AttError(AttCode.INVALID_ATTRIBUTE_VALUE_LENGTH, 'control values are exactly 1 byte');
    this.controlValue = data[0];
    if (data[0] === LegacyOp.REQUEST) {
      // esp_ota_begin(next partition, OTA_WITH_SEQUENTIAL_WRITES): nothing erased yet.
      const slot = otherSlot(this.boot.slot);
      this.handle = { slot, wrote: 0 };
      this.machine.flash.resetExtent(slot);
      this.packetSize = this.dataBuffer.readUInt16LE(0);
      this.updating = true;
      this.notifyControl(conn, LegacyOp.REQUEST_ACK);
    } else if (data[0] === LegacyOp.DONE) {
      const ok = this.finish();
      this.notifyControl(conn, ok ? LegacyOp.DONE_ACK : LegacyOp.DONE_NAK);
      if (!ok) return;
      // vTaskDelay(500 ms) then esp_restart(), inside the callback: the write is never answered.
      this.machine.appTimers.set(() => this.machine.restart('seed firmware restarts after DONE_ACK', { terminateLinks: false }), LEGACY_RESTART_DELAY_MS);
      return new Promise<void>(() => undefined);
    }
  }

  /** esp_ota_end + esp_ota_set_boot_partition. */
  private finish(): boolean {
    const handle = this.handle;
    this.updating = false;
    this.handle = null;
    if (!handle) {
      this.log.push('esp_ota_end failed (ESP_ERR_NOT_FOUND)!');
      return false;
    }
    if (handle.wrote === 0) {
      this.log.push('esp_ota_end failed (ESP_ERR_INVALID_ARG)!');
      return false;
    }
    const invalid = this.machine.flash.verifyImage(handle.slot);
    if (invalid !== null) {
      this.log.push(`Image validation failed, image is corrupted! (${invalid.message})`);
      return false;
    }
    if (this.machine.flash.otadata.setBoot(handle.slot)) this.machine.installs++;
    return true;
  }

  private onData(data: Buffer): void | Promise<void> {
    const copied = data.length >= 1 && data.length <= LEGACY_MAX_PACKET;
    if (copied) data.copy(this.dataBuffer, 0);
    let busyMs = 0;
    if (this.updating && this.handle) busyMs = this.otaWrite(this.handle, this.packet());
    if (!copied) {
      const error = new AttError(AttCode.INVALID_ATTRIBUTE_VALUE_LENGTH, `${data.length} bytes: the data buffer takes 1 to ${LEGACY_MAX_PACKET}`);
      if (busyMs <= 0) throw error;
      return new Promise((_resolve, reject) => this.machine.appTimers.set(() => reject(error), busyMs));
    }
    if (busyMs <= 0) return;
    return new Promise((resolve) => this.machine.appTimers.set(resolve, busyMs));
  }

  /** The packet_size bytes esp_ota_write is given: the buffer, and past its 512 bytes whatever RAM follows (zeros here). */
  private packet(): Buffer {
    if (this.packetSize <= LEGACY_MAX_PACKET) return this.dataBuffer.subarray(0, this.packetSize);
    return Buffer.concat([this.dataBuffer, Buffer.alloc(this.packetSize - LEGACY_MAX_PACKET)]);
  }

  /**
   * esp_ota_write with sequential writes (esp_ota_ops.c:355-368): a write starting on a sector boundary
   * erases every sector it touches, else the sectors after the one it starts in. Returns the flash time.
   */
  private otaWrite(handle: OtaHandle, bytes: Buffer): number {
    const flash = this.machine.flash;
    if (bytes.length === 0) return 0;
    if (handle.wrote + bytes.length > flash.partitionSize) {
      this.log.push('esp_ota_write failed (ESP_ERR_INVALID_SIZE)!');
      return 0;
    }
    const first = Math.floor(handle.wrote / SECTOR_SIZE);
    const last = Math.floor((handle.wrote + bytes.length - 1) / SECTOR_SIZE);
    const from = handle.wrote % SECTOR_SIZE === 0 ? first : first + 1;
    let ms = 0;
    for (let sector = from; sector <= last; sector++) {
      flash.slots[handle.slot].erase(sector * SECTOR_SIZE, SECTOR_SIZE);
      ms += this.settings.timing.sectorEraseMs;
    }
    if (handle.wrote === 0 && bytes[0] !== IMAGE_MAGIC) {
      this.log.push('esp_ota_write failed (ESP_ERR_OTA_VALIDATE_FAILED)!');
      return ms;
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
