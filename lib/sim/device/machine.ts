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
import { BootChoice, chooseBootSlot } from './bootloader';
import { DeviceFlash } from './image-slots';
import { SLOT_LABELS } from './ota-data';
import { TimerGroup } from './timers';

/** esp_reset_reason_t values. */
export const ResetReason = { POWERON: 1, SW: 3 } as const;

/** From reset to the application advertising (ROM + bootloader + app start). */
export const BOOT_TIME_MS = 400;

export interface BootContext extends BootChoice {
  app: AppInfo;
  resetReason: number;
}

/** What runs on the device after a boot (one instance per boot). */
export interface Application {
  gatt(): VirtualService[];
  /** null: not advertising now (e.g. the seed while a central is connected). */
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

  constructor(
    readonly flash: DeviceFlash,
    readonly clock: Clock,
    private readonly factory: ApplicationFactory,
  ) {
    this.timers = new TimerGroup(clock);
  }

  attach(host: PeripheralHost): void {
    this.host = host;
  }

  /** First power-on: boots immediately (the device is "already running" when added to a radio). */
  powerOn(): void {
    this.boot(ResetReason.POWERON);
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
    this.power = 'booting';
    this.timers.set(() => this.boot(ResetReason.SW), BOOT_TIME_MS);
  }

  /** Power cut: RAM is lost now, flash is kept; power returns after offMs, then the device boots. */
  powerLoss(offMs: number): void {
    if (this.power === 'shutdown') return;
    this.restarts.push({ reason: 'power loss', at: this.clock.now() });
    this.powerDown('power loss');
    this.power = 'off';
    this.timers.set(() => {
      this.power = 'booting';
      this.timers.set(() => this.boot(ResetReason.POWERON), BOOT_TIME_MS);
    }, Math.max(0, offMs));
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

  private boot(resetReason: number): void {
    const choice = chooseBootSlot(this.flash.otadata, (slot) => this.flash.verifyImage(slot) === null);
    if (!choice) {
      this.power = 'bricked';
      this.host?.advertisingChanged();
      return;
    }
    const app = describeApp(this.flash.imageBytes(choice.slot), SLOT_LABELS[choice.slot]);
    this.power = 'running';
    this.app = this.factory(this, { ...choice, app, resetReason });
    this.app.start();
    if (this.power === 'running') this.host?.advertisingChanged();
  }
}
