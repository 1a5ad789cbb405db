/**
 * One simulated device (TS model or C twin) behind the virtual radio and a REAL noble (createSimFleet),
 * with the helpers the conformance suite needs: connect by scanning, reconnect after a reboot, record
 * every Control notification the device sends, raw Control exchanges for byte-level checks, and a second
 * central on the same air (BUSY).
 */
import * as fs from 'fs';
import type { BleCentral, BleConnection, DiscoveredDevice, GattServiceInfo } from '../../lib/ble/central';
import { sleep } from '../../lib/clock';
import { SimDevice } from '../../lib/sim/device';
import { createSimFleet, type SimFleet, type SimFleetOptions } from '../../lib/sim/fleet';
import { findTwinBinary } from '../../lib/sim/twin-device';
import type { SimDeviceConfig } from '../../lib/sim/types';
import { CONTROL_CHAR_UUID, DATA_CHAR_UUID, DATA_HEADER_SIZE, OTA_SERVICE_UUID, STAGING_OFFSET_FLAG } from '../../lib/protocol/constants';
import { V2Client, V2ClientOptions } from '../../lib/protocol/v2-client';
import { devBuild } from '../helpers/dev-build';
import { repoPath } from '../helpers/paths';

export type Implementation = 'model' | 'twin';

/** Whether firmware/test/Makefile has the twin target (then a missing binary is a failure, not a skip). */
export function twinTargetExists(): boolean {
  const makefile = repoPath('firmware', 'test', 'Makefile');
  return fs.existsSync(makefile) && /^twin:/m.test(fs.readFileSync(makefile, 'utf8'));
}

export function twinAvailable(): boolean {
  return findTwinBinary() !== null;
}

/**
 * A BleConnection wrapper that records every Control notification it passes on, every Control value
 * written and every manifest staging write on Data (offset bit31, revision 2.3); `beforeWrite` may hold
 * a write back (to let another link act in between).
 */
export class RecordingConnection {
  readonly control: Buffer[] = [];
  readonly controlWrites: Buffer[] = [];
  readonly stagingWrites: Buffer[] = [];
  beforeWrite: ((characteristic: string, data: Buffer) => Promise<void>) | null = null;

  static wrap(inner: BleConnection, record: RecordingConnection): BleConnection {
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'subscribe') {
          return (service: string, characteristic: string, onValue: (data: Buffer) => void) =>
            target.subscribe(service, characteristic, (data: Buffer) => {
              if (characteristic === CONTROL_CHAR_UUID) record.control.push(Buffer.from(data));
              onValue(data);
            });
        }
        if (prop === 'write') {
          return (service: string, characteristic: string, data: Buffer, withoutResponse: boolean) => {
            const write = () => {
              if (characteristic === CONTROL_CHAR_UUID) record.controlWrites.push(Buffer.from(data));
              if (characteristic === DATA_CHAR_UUID && data.length > DATA_HEADER_SIZE && data.readUInt32LE(0) >= STAGING_OFFSET_FLAG) record.stagingWrites.push(Buffer.from(data));
              return target.write(service, characteristic, data, withoutResponse);
            };
            const hold = record.beforeWrite?.(characteristic, data);
            return hold ? hold.then(write) : write();
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

export class ConformanceEnv {
  conn!: BleConnection;
  recorder = new RecordingConnection();
  table: GattServiceInfo[] = [];
  lastSeen: DiscoveredDevice | null = null;

  private constructor(
    readonly fleet: SimFleet,
    readonly config: SimDeviceConfig,
  ) {}

  /** `fleetKeys`: the fleet-level masterKey / releaseKeys of createSimFleet (a device's own keys win). */
  static async create(impl: Implementation, config: Partial<SimDeviceConfig> = {}, link = 'reference', fleetKeys: Pick<SimFleetOptions, 'masterKey' | 'releaseKeys'> = {}): Promise<ConformanceEnv> {
    const keyed = fleetKeys.masterKey !== undefined || (fleetKeys.releaseKeys?.length ?? 0) > 0;
    const base = { name: 'dut', chip: 'esp32c3' as const, version: '1.0.0', implementation: impl, ...config };
    const full: SimDeviceConfig = keyed ? { allowUnauthenticated: false, ...base } : devBuild(base);
    const fleet = await createSimFleet({ devices: [full], link, clock: 'virtual', ...fleetKeys });
    const env = new ConformanceEnv(fleet, full);
    const device = fleet.devices.get(full.name);
    if (device && !(device instanceof SimDevice)) env.countTwinFlashOps(device);
    await fleet.central.waitReady(2000);
    await env.connect();
    return env;
  }

  private twinFlashOps = 0;

  /**
   * The twin reports each flash operation as a line ("flash" event, docs/TWIN.md) that lib/sim's
   * TwinDevice turns into timing; this counts the erase and program ones on their way there.
   */
  private countTwinFlashOps(device: object): void {
    const twin = device as { onFlash?: (op: string, ms: number) => void };
    const original = twin.onFlash;
    if (typeof original !== 'function') throw new Error('the twin device has no flash event handler to count');
    twin.onFlash = (op: string, ms: number) => {
      if (op === 'erase' || op === 'program') this.twinFlashOps += 1;
      original.call(device, op, ms);
    };
  }

  /** Flash erase/program operations so far: the model's flash counter, or the twin's reported operations. */
  flashOps(): number {
    const device = this.device;
    return device instanceof SimDevice ? device.flash.opCount : this.twinFlashOps;
  }

  get clock() {
    return this.fleet.clock;
  }

  get address(): string {
    return this.lastSeen?.address ?? '';
  }

  get device() {
    return this.fleet.devices.get(this.config.name);
  }

  /** Scans until the device advertises (after a reboot it takes a moment), then connects. */
  async connect(timeoutMs = 20000): Promise<BleConnection> {
    const deadline = this.clock.now() + timeoutMs;
    let found: DiscoveredDevice | null = null;
    const scan = await this.fleet.central.startScan({ allowDuplicates: true }, (d) => {
      if (d.name === this.config.name) found = d;
    });
    while (!found && this.clock.now() < deadline) await sleep(this.clock, 50);
    await scan.stop();
    if (!found) throw new Error(`device ${this.config.name} did not advertise within ${timeoutMs} ms`);
    this.lastSeen = found;
    this.recorder = new RecordingConnection();
    this.rawSubscribed = false; // a new link: rawControl subscribes on it again
    this.conn = RecordingConnection.wrap(await this.fleet.central.connect((found as DiscoveredDevice).id), this.recorder);
    this.table = await this.conn.discover();
    return this.conn;
  }

  /**
   * A second central (another adapter on the same air, lib/sim fleet.addCentral) scans for the device
   * and connects while the first may hold its own link; Control notifications on it are recorded apart.
   */
  async connectSecondCentral(timeoutMs = 5000): Promise<{ central: BleCentral; conn: BleConnection; recorder: RecordingConnection }> {
    const central = await this.fleet.addCentral();
    const deadline = this.clock.now() + timeoutMs;
    let found: DiscoveredDevice | null = null;
    const scan = await central.startScan({}, (d) => {
      if (d.name === this.config.name) found = d;
    });
    while (!found && this.clock.now() < deadline) await sleep(this.clock, 20);
    await scan.stop();
    if (!found) throw new Error(`the second central did not see ${this.config.name} within ${timeoutMs} ms`);
    const recorder = new RecordingConnection();
    const conn = RecordingConnection.wrap(await central.connect((found as DiscoveredDevice).id), recorder);
    await conn.discover();
    return { central, conn, recorder };
  }

  /** Waits for the link to drop (device reboot), then reconnects. */
  async reconnectAfterReboot(): Promise<BleConnection> {
    const deadline = this.clock.now() + 10000;
    while (this.conn.connected && this.clock.now() < deadline) await sleep(this.clock, 20);
    await sleep(this.clock, 200);
    return this.connect();
  }

  client(options: Partial<V2ClientOptions> = {}): V2Client {
    return new V2Client(this.conn, { clock: this.clock, ...options });
  }

  /** Control notifications recorded on the current connection, as hex. */
  controlHex(): string[] {
    return this.recorder.control.map((b) => b.toString('hex'));
  }

  /** Subscribes once (raw) and writes a Control value; returns the next notification. */
  async rawControl(value: Buffer, timeoutMs = 3000): Promise<Buffer> {
    const before = this.recorder.control.length;
    if (!this.rawSubscribed) {
      await this.conn.subscribe(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, () => undefined);
      this.rawSubscribed = true;
    }
    await this.conn.write(OTA_SERVICE_UUID, CONTROL_CHAR_UUID, value, false);
    const deadline = this.clock.now() + timeoutMs;
    while (this.recorder.control.length === before && this.clock.now() < deadline) await sleep(this.clock, 5);
    if (this.recorder.control.length === before) throw new Error(`no Control notification after ${value.toString('hex')}`);
    return this.recorder.control[before];
  }

  private rawSubscribed = false;

  async close(): Promise<void> {
    await this.fleet.close();
  }
}
