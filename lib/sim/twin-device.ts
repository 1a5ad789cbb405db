/**
 * The firmware twin on the virtual radio: firmware/build/ble_ota_twin (the C firmware core + host port,
 * docs/TWIN.md) as a child process, adapted to VirtualPeripheral. One JSON request line at a time;
 * while a request is out the virtual clock is held, so the twin's answers and notifications happen at
 * the clock time of the request. Device time is forwarded with tick requests: before every request,
 * and periodically (every 2 ms while connected, for flash timing; every 100 ms for a while after a
 * disconnect or reboot, for resume timeouts and boot). Each radio link's connectionId goes to the twin as
 * its "conn" field (left out for connection 0, the twin's default).
 *
 * Flash timing (docs/TWIN.md "flash"): the twin reports every flash operation with its modeled duration.
 * An erase, program or delta base read stops the device's BLE host for that long (the cache is off:
 * host.hostStall); every operation, the image verification of esp_ota_end / set boot and the manifest's
 * signature verify keep the device's writer busy, so the
 * notifications it produces after them go out when it is done; a boot keeps the device off the air.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import type { Clock, TimerHandle } from '../clock';
import { OtaError } from '../errors';
import { buildAppImage } from '../image';
import { CONTROL_CHAR_UUID, DATA_CHAR_UUID, FIRMWARE_REVISION_UUID, MANUFACTURER_NAME_UUID, MODEL_NUMBER_UUID, OTA_SERVICE_UUID, STATUS_CHAR_UUID } from '../protocol/constants';
import { resolveSettings } from './device';
import { advertisedName, v2Gatt } from './device/gatt-tables';
import type { StorageFault, StorageFaultTarget } from './faults';
import { AttError, type ChipName, type PeripheralHost, type SimDeviceConfig, type VirtualAdvertisement, type VirtualPeripheral, type VirtualService } from './types';
import { isVirtualClock } from './virtual-clock';

const TWIN_RELATIVE_PATH = path.join('firmware', 'build', 'ble_ota_twin');

const READ_NAMES: Record<string, string> = {
  [STATUS_CHAR_UUID]: 'status',
  [MANUFACTURER_NAME_UUID]: 'manufacturer',
  [MODEL_NUMBER_UUID]: 'model',
  [FIRMWARE_REVISION_UUID]: 'fw_rev',
};
const NOTIFY_UUIDS: Record<string, string> = { control: CONTROL_CHAR_UUID, status: STATUS_CHAR_UUID };

/** The radio's host with the optional stall hook (lib/sim/types.ts PeripheralHost.hostStall). */
type StallingHost = PeripheralHost & { hostStall?(durationMs: number): void };

interface TwinLine {
  ev?: string;
  char?: string;
  conn?: number;
  data?: string;
  reason?: string;
  ok?: boolean;
  att?: number;
  error?: string;
  op?: string;
  ms?: number;
  /** On "done": ms of device time until the core's armed timer fires (absent: none armed). */
  timer?: number;
}

/** The request field naming a connection (docs/TWIN.md "conn"; 0 is the twin's default). */
function connField(connectionId: number | undefined): { conn?: number } {
  return connectionId ? { conn: connectionId } : {};
}

/** The twin executable: $BLE_OTA_TWIN, else firmware/build/ble_ota_twin in the package this file belongs to. */
export function findTwinBinary(): string | null {
  const fromEnv = process.env.BLE_OTA_TWIN;
  if (fromEnv) return fs.existsSync(fromEnv) ? fromEnv : null;
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, TWIN_RELATIVE_PATH);
    if (fs.existsSync(candidate)) return candidate;
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'firmware'))) return null;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

interface DoneLine {
  ev: 'done';
  ok: boolean;
  att?: number;
  error?: string;
  data?: string;
  advertising?: boolean;
  name?: string;
  mfg?: string;
}

interface Pending {
  line: string;
  /** Device time (on the clock's scale) once the twin has run this request: the ticks before it included. */
  deviceTime: number;
  resolve: (d: DoneLine) => void;
  reject: (e: Error) => void;
}

class TwinDevice implements VirtualPeripheral, StorageFaultTarget {
  readonly maxMtu: number;
  readonly address: string;
  readonly name: string;
  private host: StallingHost | null = null;
  /** Until then the device's writer is busy with flash work: its notifications wait. */
  private busyUntil = Number.NEGATIVE_INFINITY;
  /** Counts boots: a notification delayed past a reboot is never sent. */
  private bootGeneration = 0;
  private readonly queue: Pending[] = [];
  /** Requests written to the twin, answered in order (it runs them one after another). */
  private readonly inflight: Pending[] = [];
  private pumpQueued = false;
  private releaseHold: (() => void) | null = null;
  private lastTickAt: number;
  private adv: VirtualAdvertisement | null = null;
  /** Open links by connectionId. */
  private readonly links = new Set<number>();
  private offUntil = Number.NEGATIVE_INFINITY;
  /** When the core's armed timer fires (clock time), null: none armed. The twin is ticked then, not polled. */
  private timerAt: number | null = null;
  private tickTimer: { at: number; handle: TimerHandle } | null = null;
  /** The first boot is the power-on before the fleet's time starts: the device is running when added (as the model). */
  private poweredOn = false;
  /** The armed storage cut's handler (fleet: power the device off through the radio). */
  private onCut: (() => void) | null = null;
  private exited = false;
  private stderr = '';
  /** Reset-to-application time of the last boot the twin reported (its "boot" event), ms. */
  lastBootMs = 0;

  constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly clock: Clock,
    readonly stateDir: string,
    settings: { name: string; address: string; maxMtu: number },
  ) {
    this.name = settings.name;
    this.address = settings.address;
    this.maxMtu = settings.maxMtu;
    this.lastTickAt = clock.now();
    readline.createInterface({ input: proc.stdout }).on('line', (line) => this.onLine(line));
    proc.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-2000)));
    proc.on('exit', (code, signal) => this.onExit(code, signal));
    proc.on('error', (err) => {
      this.stderr += err.message;
      if (!this.exited) this.onExit(null, null);
    });
    proc.stdin.on('error', () => undefined); // a dead twin is reported through 'exit'
  }

  attach(host: StallingHost): void {
    this.host = host;
    this.scheduleTick();
  }

  advertisement(): VirtualAdvertisement | null {
    return this.exited || this.clock.now() < this.offUntil ? null : this.adv;
  }

  gatt(): VirtualService[] {
    return v2Gatt();
  }

  onConnect(mtu: number, connectionId = 0): void {
    this.links.add(connectionId);
    // The twin stops advertising when its connection table is full.
    void this.request({ op: 'connect', mtu, ...connField(connectionId) })
      .then(() => this.refreshAdvertisement())
      .catch(() => undefined);
    this.scheduleTick();
  }

  /** The MTU exchange completed (after onConnect at 23): the firmware core learns it (ble_ota_core_on_mtu). */
  onMtu(mtu: number, connectionId = 0): void {
    void this.request({ op: 'mtu', mtu, ...connField(connectionId) }).catch(() => undefined);
  }

  onDisconnect(connectionId = 0): void {
    this.links.delete(connectionId);
    void this.request({ op: 'disconnect', ...connField(connectionId) })
      .then(() => this.refreshAdvertisement())
      .catch(() => undefined);
    this.scheduleTick();
  }

  async onRead(_service: string, characteristic: string, connectionId = 0): Promise<Buffer> {
    const name = READ_NAMES[characteristic];
    if (!name) throw new AttError(0x02, `characteristic ${characteristic} is not readable`);
    const done = await this.request({ op: 'read', char: name, ...connField(connectionId) });
    if (!done.ok) throw new AttError(done.att ?? 0x0e, done.error ?? `twin refused to read ${name}`);
    return Buffer.from(done.data ?? '', 'hex');
  }

  onWrite(_service: string, characteristic: string, data: Buffer, withoutResponse: boolean, connectionId = 0): void | Promise<void> {
    const char = characteristic === CONTROL_CHAR_UUID ? 'control' : characteristic === DATA_CHAR_UUID ? 'data' : null;
    if (!char) throw new AttError(0x03, `characteristic ${characteristic} is not writable`);
    const sent = this.request({ op: 'write', char, data: data.toString('hex'), ...connField(connectionId) }).then((done) => {
      if (!done.ok) throw new AttError(done.att ?? 0x0e, done.error ?? `twin refused the ${char} write`);
    });
    if (withoutResponse) {
      sent.catch(() => undefined);
      return;
    }
    return sent;
  }

  /** docs/TWIN.md "fault": counted by the twin from the moment the request reaches it (before any later one). */
  armStorageFault(fault: StorageFault, onCut: () => void): void {
    if (fault.kind === 'cut' || fault.kind === 'diag_cut') this.onCut = onCut;
    void this.request({ op: 'fault', ...fault }).catch(() => undefined);
  }

  powerLoss(offMs: number): void {
    this.links.clear();
    this.offUntil = this.clock.now() + offMs;
    void this.request({ op: 'power_loss' }).catch(() => undefined);
    this.clock.setTimer(() => {
      void this.refreshAdvertisement().catch(() => undefined);
      this.scheduleTick();
    }, offMs);
  }

  async shutdown(): Promise<void> {
    this.tickTimer?.handle.cancel();
    this.tickTimer = null;
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
      this.request({ op: 'quit' }).catch(() => undefined);
      const killer = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(killer);
    }
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** Asks for the advertisement and tells the radio when it changed. */
  async refreshAdvertisement(): Promise<void> {
    const done = await this.request({ op: 'adv' });
    const next: VirtualAdvertisement | null =
      done.ok && done.advertising !== false
        ? { localName: advertisedName(done.name ?? this.name), manufacturerData: Buffer.from(done.mfg ?? '', 'hex'), serviceUuids: [OTA_SERVICE_UUID] }
        : null;
    const changed = JSON.stringify(next) !== JSON.stringify(this.adv);
    this.adv = next;
    if (changed) this.host?.advertisingChanged();
  }

  private request(req: Record<string, unknown>): Promise<DoneLine> {
    if (this.exited) return Promise.reject(this.deadError());
    // Device time catches up with the clock before anything else happens.
    const elapsed = Math.floor(this.clock.now() - this.lastTickAt);
    if (req.op !== 'tick' && elapsed > 0) {
      this.lastTickAt += elapsed;
      this.enqueue(JSON.stringify({ op: 'tick', ms: elapsed })).catch(() => undefined);
    }
    return this.enqueue(JSON.stringify(req));
  }

  private enqueue(line: string): Promise<DoneLine> {
    return new Promise<DoneLine>((resolve, reject) => {
      this.queue.push({ line, deviceTime: this.lastTickAt, resolve, reject });
      // Time stops until the twin has answered; the requests of one turn (a tick and what follows it) go in one write.
      if (!this.releaseHold && isVirtualClock(this.clock)) this.releaseHold = this.clock.hold();
      if (!this.pumpQueued) {
        this.pumpQueued = true;
        queueMicrotask(() => this.pump());
      }
    });
  }

  private pump(): void {
    this.pumpQueued = false;
    if (this.queue.length === 0 || this.exited) return;
    const batch = this.queue.splice(0);
    this.inflight.push(...batch);
    this.proc.stdin.write(batch.map((p) => `${p.line}\n`).join(''));
  }

  private onLine(line: string): void {
    let msg: TwinLine;
    try {
      msg = JSON.parse(line);
    } catch {
      return; // not a protocol line
    }
    if (msg.ev === 'notify' && msg.char && NOTIFY_UUIDS[msg.char]) {
      this.deliverNotification(NOTIFY_UUIDS[msg.char], Buffer.from(msg.data ?? '', 'hex'), typeof msg.conn === 'number' ? msg.conn : undefined);
    } else if (msg.ev === 'flash' && typeof msg.ms === 'number' && msg.ms > 0) {
      this.onFlash(msg.op ?? '', msg.ms);
    } else if (msg.ev === 'cut') {
      // The device is dead from here; the radio powers it off on the next clock step (as the model's flash-faults.ts).
      const cut = this.onCut;
      this.onCut = null;
      if (cut) this.clock.setTimer(cut, 0);
    } else if (msg.ev === 'reboot') {
      this.bootGeneration += 1;
      this.busyUntil = Number.NEGATIVE_INFINITY;
      if (this.links.size > 0) this.host?.dropConnection(`reboot: ${msg.reason ?? ''}`);
      this.links.clear();
      void this.refreshAdvertisement().catch(() => undefined);
    } else if (msg.ev === 'done') {
      const p = this.inflight.shift();
      if (p) {
        this.timerAt = typeof msg.timer === 'number' ? p.deviceTime + msg.timer : null;
        this.scheduleTick();
        if (msg.ok === false && msg.error && msg.att === undefined) p.reject(new OtaError('TWIN_PROTOCOL', `the firmware twin rejected ${p.line}: ${msg.error}`));
        else p.resolve(msg as DoneLine);
      }
      if (this.inflight.length === 0 && this.queue.length === 0 && !this.pumpQueued) this.release();
    }
  }

  /** Control goes to its connection; Status (no connectionId) to every subscribed link; after the writer's flash work. */
  private deliverNotification(uuid: string, data: Buffer, connectionId: number | undefined): void {
    const delay = this.busyUntil - this.clock.now();
    if (delay <= 0) {
      this.host?.notify(OTA_SERVICE_UUID, uuid, data, connectionId);
      return;
    }
    const generation = this.bootGeneration;
    this.clock.setTimer(() => {
      if (generation === this.bootGeneration) this.host?.notify(OTA_SERVICE_UUID, uuid, data, connectionId);
    }, delay);
  }

  private onFlash(op: string, ms: number): void {
    const now = this.clock.now();
    if (op === 'boot') {
      this.lastBootMs = ms;
      if (!this.poweredOn) {
        this.poweredOn = true;
        return;
      }
      // Reset to advertising: off the air meanwhile (advertisement() is null until then).
      this.offUntil = Math.max(this.offUntil, now + ms);
      this.clock.setTimer(() => {
        this.host?.advertisingChanged();
        void this.refreshAdvertisement().catch(() => undefined);
      }, this.offUntil - now);
      return;
    }
    // The bootloader's otadata writes and the first-boot record writes are part of the boot time.
    if (now < this.offUntil) return;
    this.busyUntil = Math.max(this.busyUntil, now) + ms;
    // Erase, program and the delta base reads (esp_flash_read) run with the flash cache disabled: the NimBLE
    // host task cannot run meanwhile. The manifest's ECDSA verify ("crypto") runs in the writer task, below
    // the host task's priority: writer-busy time only (docs/TWIN.md "Manifest check time").
    if (op === 'erase' || op === 'program' || op === 'nvs' || op === 'read') this.host?.hostStall?.(ms);
  }

  private release(): void {
    const r = this.releaseHold;
    this.releaseHold = null;
    r?.();
  }

  private onExit(code: number | null, signal: string | null): void {
    this.exited = true;
    this.tickTimer?.handle.cancel();
    const err = this.deadError(code, signal);
    for (const p of [...this.inflight.splice(0), ...this.queue.splice(0)]) p.reject(err);
    this.release();
    if (this.links.size > 0) this.host?.dropConnection('twin exited');
    this.host?.advertisingChanged();
  }

  private deadError(code?: number | null, signal?: string | null): OtaError {
    const how = signal ? `signal ${signal}` : `exit code ${code ?? '?'}`;
    return new OtaError('TWIN_EXITED', `the firmware twin of ${this.name} is not running (${how})${this.stderr ? `: ${this.stderr.trim()}` : ''}`);
  }

  /**
   * Device time reaches the twin with every request (a tick first); between requests only the core's
   * timer (resume timeout, delayed reboot) needs it: one tick exactly when that timer is due.
   */
  private scheduleTick(): void {
    const at = this.exited ? null : this.timerAt;
    if (this.tickTimer?.at === at) return;
    this.tickTimer?.handle.cancel();
    this.tickTimer = null;
    if (at === null) return;
    const handle = this.clock.setTimer(
      () => {
        this.tickTimer = null;
        if (this.exited) return;
        const elapsed = Math.max(0, Math.floor(this.clock.now() - this.lastTickAt + 1e-6));
        this.lastTickAt += elapsed;
        const tick = this.enqueue(JSON.stringify({ op: 'tick', ms: elapsed }));
        (this.links.size > 0 ? tick : tick.then(() => this.refreshAdvertisement())).catch(() => undefined);
      },
      Math.max(0, at - this.clock.now()),
    );
    this.tickTimer = { at, handle };
  }
}

/** The twin's security options (docs/TWIN.md "options") from the device config; device_id = the BLE address bytes. */
export function securityArgs(config: SimDeviceConfig, address: string): string[] {
  const bad = (what: string): OtaError => new OtaError('BAD_PARAMETER', `Simulated device ${config.name}: ${what}.`);
  const deviceId = address.replace(/:/g, '');
  if (!/^[0-9a-f]{12}$/i.test(deviceId)) throw bad(`address ${address} is not six bytes`);
  const args = ['--device-id', deviceId];
  if (config.deviceKey !== undefined) {
    if (!Buffer.isBuffer(config.deviceKey) || config.deviceKey.length !== 32) throw bad('deviceKey must be 32 bytes');
    args.push('--device-key', config.deviceKey.toString('hex'));
  }
  const releaseKeys = config.releaseKeys ?? [];
  if (releaseKeys.length > 4) throw bad('at most 4 releaseKeys (key_id 0..3)');
  releaseKeys.forEach((key, keyId) => {
    if (key === undefined) return; // a sparse array: no key with this key_id
    if (!Buffer.isBuffer(key) || key.length !== 65 || key[0] !== 0x04) throw bad(`releaseKeys[${keyId}] must be a 65-byte uncompressed SEC1 point`);
    args.push('--release-key', `${keyId}:${key.toString('hex')}`);
  });
  if (config.allowUnauthenticated) args.push('--allow-unauthenticated');
  if (config.provisioningWindowMs !== undefined) {
    if (!Number.isInteger(config.provisioningWindowMs) || config.provisioningWindowMs < 0) throw bad('provisioningWindowMs must be a non-negative integer');
    if (config.provisioningWindowMs > 0) args.push('--provisioning-window-ms', String(config.provisioningWindowMs));
  }
  if (config.signedImagesRequired) args.push('--signed-required');
  if (config.releaseFloor !== undefined) {
    if (!Number.isInteger(config.releaseFloor) || config.releaseFloor < 0 || config.releaseFloor > 0xffffffff) throw bad('releaseFloor must be a u32');
    if (config.releaseFloor > 0) args.push('--release-floor', String(config.releaseFloor));
  }
  return args;
}

/** The synthetic running image, kept for the next twin of the same settings (a fleet, a campaign). */
let lastRunningImage: { key: string; image: Buffer } | null = null;
function runningImage(chip: string, version: string, secureVersion: number | undefined): Buffer {
  const key = `${chip}/${version}/${secureVersion ?? ''}`;
  if (lastRunningImage?.key !== key) lastRunningImage = { key, image: buildAppImage({ chip: chip as ChipName, version, secureVersion, projectName: 'ble_ota_app', size: 128 * 1024 }) };
  return lastRunningImage.image;
}

/** Starts the twin for a device config, with a synthetic running image in a fresh state directory. */
export async function createTwinDevice(config: SimDeviceConfig, clock: Clock): Promise<VirtualPeripheral> {
  const settings = resolveSettings(config);
  const binary = findTwinBinary();
  if (!binary) {
    throw new OtaError('TWIN_NOT_BUILT', 'the firmware twin (firmware/build/ble_ota_twin) is not built: run `make -C firmware/test twin`');
  }
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ble-ota-twin-'));
  const image = runningImage(settings.chip, settings.version, settings.secureVersion);
  const imagePath = path.join(stateDir, 'running.bin');
  fs.writeFileSync(imagePath, image);
  const args = ['--state-dir', stateDir, '--chip', settings.chip, '--running-image', imagePath, '--name', settings.name];
  args.push('--policy', settings.hostPolicy ? 'host' : 'auto', '--diagnostics', settings.diagnosticsPass ? 'pass' : 'fail');
  args.push('--partition-size', String(settings.partitionSize), '--resume-timeout-ms', String(settings.resumeTimeoutMs));
  if (settings.fleetKey) args.push('--fleet-key', settings.fleetKey.toString('hex'));
  if (settings.allowDowngrade) args.push('--allow-downgrade');
  args.push(...securityArgs(config, settings.address));
  const proc = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const device = new TwinDevice(proc, clock, stateDir, settings);
  try {
    await device.refreshAdvertisement();
  } catch (err) {
    await device.shutdown().catch(() => undefined);
    throw err;
  }
  return device;
}
