/**
 * One simulated ESP32 over time: power, reset, the bootloader, and the application that runs after each
 * boot. The application (our v2 firmware or the seed firmware) is created fresh on every boot, so all
 * its RAM state (session, nonces, timers) is gone after a reboot or a power loss, while DeviceFlash
 * (partitions, otadata, NVS) is kept.
 */
import type { Clock } from '../../clock';
import type { PeripheralHost, VirtualAdvertisement, VirtualService } from '../types';
import { AttError } from '../types';
import { describeApp, AppInfo } from './app-info';
import { BootChoice, BootWork, chooseBootSlot } from './bootloader';
import { parseImage } from '../../image/parse';
import { FlashTiming, flashTiming, verifyTimeMs, writeWindowsMs } from './flash-timing';
import { nvsWriteMs } from './flash-work';
import { DeviceFlash } from './image-slots';
import { NVS_APP_HASH_BLOB_BYTES } from './nvs';
import { SLOT_LABELS, SlotIndex } from './ota-data';
import { TimerGroup } from './timers';

/** esp_reset_reason_t values. */
export const ResetReason = { POWERON: 1, SW: 3 } as const;

/**
 * The fixed part of a boot, from reset to the application advertising, without the flash work:
 * ROM, second-stage bootloader, app start-up and NimBLE up to the first advertisement. ESP-IDF's
 * startup_time example reaches app_main in about 37 ms with every boot-time option minimised
 * (examples/system/startup_time/README.md:42-47); a default build logs at INFO over 115200 baud
 * and starts NimBLE, which this model does not time exactly: a pessimistic 300 ms.
 */
export const BOOT_TIME_MS = 300;

/** What one boot does to flash, in the order the device does it. */
export interface BootLoad {
  /** Bytes of each image the bootloader loads and verifies. */
  verifiedBytes: number[];
  /** otadata sector writes the bootloader makes (erase + program each). */
  otadataWrites: number;
  /**
   * The running-app hash the application computes for Status: the image bytes read, and the NVS
   * entries used before its app_sha cache write; null when the cache already names the app.
   */
  hash: { bytes: number; usedEntries: number } | null;
}

/**
 * Reset to application start, the same formula as the firmware twin (firmware/host/host_device.c boot):
 * BOOT_TIME_MS, plus each image the bootloader loads and verifies (the whole app is read and hashed on
 * every boot unless CONFIG_BOOTLOADER_SKIP_VALIDATE_ON_POWER_ON, default n,
 * components/bootloader/Kconfig.projbuild:407-414), its otadata writes (erase + program each), and, on
 * the first boot of an app only, the running image's SHA-256 (esp_partition_get_sha256 reads the whole
 * image, bootloader_common.c:143-166) and the NVS write that caches it: the firmware keeps it in NVS
 * `app_sha` keyed by the app's ELF SHA-256 and partition (firmware/components/ble_ota/port/esp_idf/esp_port_app.c).
 */
export function bootTimeMs(timing: FlashTiming, load: BootLoad): number {
  const otadataWriteMs = timing.sectorEraseMs + writeWindowsMs(timing, 0, 32).reduce((a, b) => a + b, 0);
  const hashMs = load.hash ? verifyTimeMs(timing, load.hash.bytes) + nvsWriteMs(timing, load.hash.usedEntries, NVS_APP_HASH_BLOB_BYTES) : 0;
  return BOOT_TIME_MS + load.verifiedBytes.reduce((sum, b) => sum + verifyTimeMs(timing, b), 0) + load.otadataWrites * otadataWriteMs + hashMs;
}

export interface BootContext extends BootChoice {
  app: AppInfo;
  resetReason: number;
}

/** What runs on the device after a boot (one instance per boot). */
export interface Application {
  gatt(): VirtualService[];
  /** null: not advertising now (the seed while a central is connected; a BLE stack that did not start). */
  advertisement(): VirtualAdvertisement | null;
  onConnect(conn: number, mtu: number): void;
  onMtu(conn: number, mtu: number): void;
  onDisconnect(conn: number): void;
  onRead(conn: number, service: string, characteristic: string): Buffer | Promise<Buffer>;
  onWrite(conn: number, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void | Promise<void>;
  /** Called once right after construction (first-boot work such as diagnostics may reboot). */
  start(): void;
}

export type ApplicationFactory = (machine: Machine, boot: BootContext) => Application;

type PowerState = 'running' | 'booting' | 'off' | 'bricked' | 'shutdown';

export class Machine {
  private host: PeripheralHost | null = null;
  private timers: TimerGroup;
  private app: Application | null = null;
  private power: PowerState = 'booting';
  private readonly links = new Set<number>();
  /** Every restart (for tests and logs): why, and when on the clock. */
  readonly restarts: Array<{ reason: string; at: number }> = [];
  /** Reset-to-advertising time of the last boot (ms). */
  lastBootMs = 0;
  /** The app image running now, as the last boot described it (null before the first boot or when bricked). */
  runningApp: AppInfo | null = null;
  private pending: { choice: BootChoice | null; resetReason: number } | null = null;

  constructor(
    readonly flash: DeviceFlash,
    readonly clock: Clock,
    private readonly factory: ApplicationFactory,
    readonly timing: FlashTiming = flashTiming(1),
  ) {
    this.timers = new TimerGroup(clock);
  }

  attach(host: PeripheralHost): void {
    this.host = host;
  }

  /** First power-on: boots immediately (the device is "already running" when added to a radio). */
  powerOn(): void {
    this.lastBootMs = this.runBootloader(ResetReason.POWERON);
    this.startApp();
  }

  get state(): PowerState {
    return this.power;
  }

  get application(): Application | null {
    return this.power === 'running' ? this.app : null;
  }

  /** Timers of the current power period (cancelled by reboot / power loss). */
  get appTimers(): TimerGroup {
    return this.timers;
  }

  notify(service: string, characteristic: string, data: Buffer, conn?: number): void {
    if (this.power !== 'running') return;
    if (conn !== undefined && !this.links.has(conn)) return;
    this.host?.notify(service, characteristic, data, conn);
  }

  advertisingChanged(): void {
    this.host?.advertisingChanged();
  }

  /** A flash erase/program with the cache disabled: the BLE host stops for ms (flash-timing.ts). */
  stallHost(ms: number): void {
    if (this.power !== 'running' || ms <= 0) return;
    this.host?.hostStall?.(ms);
  }

  isConnected(conn: number): boolean {
    return this.links.has(conn);
  }

  /**
   * esp_restart(): links drop, no advertising while booting, then the bootloader runs. `terminateLinks`
   * false: the reset cuts the radio mid-link (no LL_TERMINATE_IND), the peers time out.
   */
  restart(reason: string, options: { terminateLinks?: boolean } = {}): void {
    if (this.power !== 'running') return;
    this.restarts.push({ reason, at: this.clock.now() });
    this.powerDown(reason, options.terminateLinks !== false);
    this.reset(ResetReason.SW);
  }

  /** Power cut: RAM is lost now, flash is kept; power returns after offMs, then the device boots. */
  powerLoss(offMs: number): void {
    if (this.power === 'shutdown') return;
    this.restarts.push({ reason: 'power loss', at: this.clock.now() });
    this.powerDown('power loss');
    this.power = 'off';
    this.timers.set(() => this.reset(ResetReason.POWERON), Math.max(0, offMs));
  }

  shutdown(): void {
    this.powerDown('shutdown');
    this.power = 'shutdown';
  }

  // ---- links (the radio's view) ----

  connect(conn: number, mtu: number): void {
    if (this.power !== 'running') return;
    this.links.add(conn);
    this.app?.onConnect(conn, mtu);
  }

  mtuChanged(conn: number, mtu: number): void {
    if (this.links.has(conn)) this.app?.onMtu(conn, mtu);
  }

  disconnect(conn: number): void {
    if (!this.links.delete(conn)) return;
    if (this.power === 'running') this.app?.onDisconnect(conn);
  }

  read(conn: number, service: string, characteristic: string): Buffer | Promise<Buffer> {
    const app = this.liveApp(conn);
    return app.onRead(conn, service, characteristic);
  }

  write(conn: number, service: string, characteristic: string, data: Buffer, withoutResponse: boolean): void | Promise<void> {
    if (withoutResponse && (this.power !== 'running' || !this.links.has(conn))) return;
    const app = this.liveApp(conn);
    return app.onWrite(conn, service, characteristic, data, withoutResponse);
  }

  private liveApp(conn: number): Application {
    if (this.power !== 'running' || !this.app) throw new AttError(0x0e, 'device is not running (rebooting or off)');
    if (!this.links.has(conn)) this.links.add(conn); // a radio that never called onConnect
    return this.app;
  }

  private powerDown(reason: string, terminateLinks = true): void {
    this.timers.cancelAll();
    this.timers = new TimerGroup(this.clock);
    this.app = null;
    const hadLinks = this.links.size > 0;
    this.links.clear();
    if (hadLinks && !terminateLinks && this.host?.loseConnection) this.host.loseConnection(reason);
    else if (hadLinks) this.host?.dropConnection(reason);
    this.host?.advertisingChanged();
  }

  /** The bootloader runs at once (its otadata writes land early); the application starts after the boot time. */
  private reset(resetReason: number): void {
    this.power = 'booting';
    const ms = this.runBootloader(resetReason);
    this.lastBootMs = ms;
    this.timers.set(() => this.startApp(), ms);
  }

  private runBootloader(resetReason: number): number {
    this.flash.nvs.reloadRecord();
    const work: BootWork = { verified: [], otadataWrites: 0 };
    const choice = chooseBootSlot(this.flash.otadata, (slot) => this.flash.verifyImage(slot) === null, work);
    this.pending = { choice, resetReason };
    const load: BootLoad = { verifiedBytes: work.verified.map((slot) => this.flash.imageExtent(slot)), otadataWrites: work.otadataWrites, hash: null };
    if (choice) load.hash = this.cacheRunningHash(choice.slot);
    return bootTimeMs(this.timing, load);
  }

  /** The application's first start of an app computes its hash and caches it in NVS (lands at once). */
  private cacheRunningHash(slot: SlotIndex): BootLoad['hash'] {
    const { nvs } = this.flash;
    const desc = parseImage(this.flash.imageBytes(slot)).appDesc;
    const cache = { label: SLOT_LABELS[slot], elfSha256: desc?.appElfSha256 ?? '' };
    if (nvs.hasAppHash(cache)) return null;
    const hash = { bytes: this.flash.imageExtent(slot), usedEntries: nvs.usedEntries };
    nvs.commitAppHash(cache);
    return hash;
  }

  private startApp(): void {
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    const { choice, resetReason } = pending;
    if (!choice) {
      this.power = 'bricked';
      this.host?.advertisingChanged();
      return;
    }
    const app = describeApp(this.flash.imageBytes(choice.slot), SLOT_LABELS[choice.slot]);
    this.runningApp = app;
    this.power = 'running';
    this.app = this.factory(this, { ...choice, app, resetReason });
    this.app.start();
    if (this.power === 'running') this.host?.advertisingChanged();
  }
}
