/**
 * The bench's delta rows (issue: delta updates): the synthetic 1.4 MB ESP32-C3 pair (images.ts, a small code
 * change) sent as full deflate and as a patch against the image the device runs, per scenario, through the
 * same pipeline as every other row (noble's HCI layer, the TS device model); and the fleet row: 8 devices on
 * one adapter updated at once, full deflate vs delta, total time. The patch is made once before the flashes
 * (as a gateway does when a release is published); its generation time is reported apart.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AdapterScheduler } from '../ble/scheduler';
import { ImageStore } from '../delta/image-store';
import { toOtaError } from '../errors';
import { appHash } from '../image';
import { flashDevice } from '../ota/flash';
import { prepareWholeImagePayload } from '../protocol/payload';
import { Caps } from '../protocol/constants';
import { deviceIdOf } from '../sim/device/device-id';
import { createSimFleet } from '../sim/fleet';
import { buildSyntheticPair, SYNTHETIC_PAIR_NAME, type BenchImage } from './images';
import { deviceConfig, flashOnce, type BenchRow } from './index';
import { ceilingSeconds, linkSeconds, type TransferStream } from './physics';
import { clientSecurity, fleetSecurity, type BenchSecurity } from './security-setup';

export interface FleetRow {
  scenario: string;
  devices: number;
  protocol: 'v2-deflate' | 'v2-delta';
  /** Image size. */
  bytes: number;
  /** From the first connection attempt until every device acknowledged END (modeled); null when it failed. */
  totalSeconds: number | null;
  /** ATT value bytes written to all devices together. */
  bytesOnAir: number | null;
  /**
   * The fleet's physical bound: every device's bytes through the one adapter's link, or one device's own
   * ceiling (its flash work), whichever is longer (connection setup not counted).
   */
  ceilingSeconds: number;
  /**
   * The fleet's bound with connection setup counted: in the same fleet (every device advertising), each
   * device updated alone, the slowest of them; null when one failed or it was not measured. No fleet can
   * finish before its slowest device would alone (its advertising phase, connect, discovery, Status,
   * CHALLENGE and BEGIN come on top of the flash work).
   */
  aloneSeconds?: number | null;
  error?: string;
}

export interface DeltaBenchResult {
  rows: BenchRow[];
  bytesOnAir: Map<BenchRow, number>;
  fleet: FleetRow[];
  notes: string[];
}

const PAIR_PROTOCOLS = ['v2-deflate', 'v2-delta'] as const;
const FLEET_SCENARIO = 'reference';
const round3 = (x: number) => Math.round(x * 1000) / 1000;

export async function runDeltaBench(options: { scenarios: readonly string[]; security?: BenchSecurity; fleetDevices: number; log: (line: string) => void }): Promise<DeltaBenchResult> {
  const { log } = options;
  const security = options.security ?? 'keyed';
  const pair = buildSyntheticPair();
  const dir = mkdtempSync(join(tmpdir(), 'ble-ota-bench-bases-'));
  const out: DeltaBenchResult = { rows: [], bytesOnAir: new Map(), fleet: [], notes: [] };
  try {
    const store = new ImageStore(dir);
    store.add(pair.base);
    const started = process.hrtime.bigint();
    const made = store.delta(appHash(pair.base), pair.image);
    if (!made) throw new Error('the bench base image is not in its store');
    const generationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const wholeStream = (await prepareWholeImagePayload(pair.image, 'deflate', Caps.DEFLATE)).transfer;
    const deflated = wholeStream.length;
    out.notes.push(
      `delta pair "${SYNTHETIC_PAIR_NAME}": ${pair.image.length} B image, deflated ${deflated} B, patch (zlib) ${made.transfer.length} B (${(deflated / made.transfer.length).toFixed(1)}x fewer); patch generated once in ${generationSeconds.toFixed(2)} s wall on this machine (not in the modeled times)`,
      'delta rows for real image pairs: none, the shared vectors hold no two builds of one app (only unrelated hello_world builds for different chips and a signed copy)',
    );
    const image: BenchImage = { name: SYNTHETIC_PAIR_NAME, chip: pair.chip, data: pair.image };
    const streams: Record<(typeof PAIR_PROTOCOLS)[number], TransferStream> = {
      'v2-deflate': { transfer: wholeStream, deflate: true },
      'v2-delta': { transfer: made.transfer, deflate: false, delta: { base: pair.base, imageSize: pair.image.length } },
    };
    for (const scenario of options.scenarios) {
      for (const protocol of PAIR_PROTOCOLS) {
        const ceiling = (air: number) => round3(ceilingSeconds(air, pair.image.length, scenario, streams[protocol]));
        try {
          const run = await flashOnce(scenario, image, protocol, { security, factoryImage: pair.base, baseImages: store });
          if (run.result.encoding !== (protocol === 'v2-delta' ? 'delta' : 'deflate')) throw new Error(`the flash sent ${run.result.encoding}`);
          const row: BenchRow = { scenario, image: image.name, bytes: pair.image.length, protocol, modeledSeconds: round3(run.transferSeconds), ceilingSeconds: ceiling(run.result.bytesOnAir), setupSeconds: round3(run.setupSeconds) };
          out.rows.push(row);
          out.bytesOnAir.set(row, run.result.bytesOnAir);
          log(`${scenario} ${image.name} ${protocol}: ${row.modeledSeconds} s (ceiling ${row.ceilingSeconds} s)`);
        } catch (err) {
          const e = toOtaError(err);
          out.rows.push({ scenario, image: image.name, bytes: pair.image.length, protocol, modeledSeconds: null, ceilingSeconds: ceiling(streams[protocol].transfer.length), setupSeconds: null, error: `${e.code}: ${e.message}` });
          log(`${scenario} ${image.name} ${protocol}: FAILED ${e.code}: ${e.message}`);
        }
      }
    }
    if (options.fleetDevices > 0) {
      for (const protocol of PAIR_PROTOCOLS) {
        const row = await runFleet(protocol, options.fleetDevices, pair.base, pair.image, security, store, streams[protocol]);
        if (protocol === 'v2-delta') row.aloneSeconds = await slowestAlone(options.fleetDevices, pair.base, pair.image, security, store, streams[protocol]);
        out.fleet.push(row);
        log(`fleet ${row.devices} x ${protocol}: ${row.totalSeconds === null ? `FAILED ${row.error}` : `${row.totalSeconds} s`}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** aloneSeconds of FleetRow: every device of the fleet updated alone (the others powered and advertising), the slowest. */
async function slowestAlone(devices: number, base: Buffer, image: Buffer, security: BenchSecurity, store: ImageStore, stream: TransferStream): Promise<number | null> {
  let slowest = 0;
  for (let i = 0; i < devices; i++) {
    const row = await runFleet('v2-delta', devices, base, image, security, store, stream, i);
    if (row.totalSeconds === null) return null;
    slowest = Math.max(slowest, row.totalSeconds);
  }
  return slowest;
}

/** `devices` devices running `base` on one adapter, all updated to `image` at once (or only device `only`). */
async function runFleet(protocol: (typeof PAIR_PROTOCOLS)[number], devices: number, base: Buffer, image: Buffer, security: BenchSecurity, store: ImageStore, stream: TransferStream, only?: number): Promise<FleetRow> {
  const configs = Array.from({ length: devices }, (_, i) => deviceConfig(`fleet-${String(i + 1).padStart(2, '0')}`, 'esp32c3', protocol, FLEET_SCENARIO, undefined, security));
  const { masterKey, releaseKeys } = fleetSecurity(security);
  const fleet = await createSimFleet({ devices: configs, link: FLEET_SCENARIO, clock: 'virtual', masterKey, releaseKeys, factoryImage: base });
  const scheduler = new AdapterScheduler(fleet.central, { maxConnections: devices });
  const startedAt = fleet.clock.now();
  // Data writes of 240-byte chunks with their 4-byte offsets (the reference link's chunk), per device.
  const perDeviceAir = stream.transfer.length + 4 * Math.ceil(stream.transfer.length / 240);
  const ceiling = Math.max(linkSeconds(devices * perDeviceAir, FLEET_SCENARIO), ceilingSeconds(perDeviceAir, image.length, FLEET_SCENARIO, stream));
  const row: FleetRow = { scenario: FLEET_SCENARIO, devices, protocol, bytes: image.length, totalSeconds: null, bytesOnAir: null, ceilingSeconds: round3(ceiling) };
  try {
    const results = await Promise.all(
      configs.filter((_, i) => only === undefined || i === only).map((c) => {
        const address = (fleet.devices.get(c.name) as { address: string }).address;
        return flashDevice(scheduler, {
          device: address,
          image,
          ...clientSecurity(security, deviceIdOf(address), image),
          protocol: 'v2',
          encoding: protocol === 'v2-delta' ? 'delta' : 'deflate',
          baseImages: protocol === 'v2-delta' ? store : undefined,
          preventDowngrade: false,
          reboot: false,
          maxAttempts: 3,
          findTimeoutMs: 30000,
        });
      }),
    );
    row.totalSeconds = round3((fleet.clock.now() - startedAt) / 1000);
    row.bytesOnAir = results.reduce((s, r) => s + r.bytesOnAir, 0);
  } catch (err) {
    const e = toOtaError(err);
    row.error = `${e.code}: ${e.message}`;
  } finally {
    await scheduler.close();
    await fleet.close();
  }
  return row;
}

/** Markdown lines of the fleet rows and the issue's target (delta >= 10x faster than full deflate). */
export function fleetLines(fleet: FleetRow[]): string[] {
  if (!fleet.length) return [];
  const lines = ['', '| fleet (one adapter) | devices | protocol | image bytes | bytes on air (all) | total s | ceiling s |', '|---|---:|---|---:|---:|---:|---:|'];
  for (const r of fleet) {
    lines.push(`| ${r.scenario} | ${r.devices} | ${r.protocol} | ${r.bytes} | ${r.bytesOnAir ?? ''} | ${r.totalSeconds === null ? `failed: ${r.error}` : r.totalSeconds.toFixed(2)} | ${r.ceilingSeconds.toFixed(2)} |`);
  }
  const full = fleet.find((r) => r.protocol === 'v2-deflate');
  const delta = fleet.find((r) => r.protocol === 'v2-delta');
  if (full?.totalSeconds && delta?.totalSeconds) {
    const ratio = full.totalSeconds / delta.totalSeconds;
    lines.push(`- fleet: delta ${ratio.toFixed(1)}x faster than full deflate (target >= 10x): ${ratio >= 10 ? 'met' : 'NOT met'}`);
  } else lines.push('- fleet: delta vs full deflate not measured (a fleet row failed; see above)');
  if (full?.totalSeconds && delta) {
    lines.push(`  the most physics allows: ${(full.totalSeconds / delta.ceilingSeconds).toFixed(1)}x (full deflate as measured over the delta fleet's ceiling, which is one device's flash work)`);
  }
  if (full?.totalSeconds && delta?.aloneSeconds) {
    lines.push(
      `  with connection setup counted: ${(full.totalSeconds / delta.aloneSeconds).toFixed(2)}x (full deflate over ${delta.aloneSeconds.toFixed(2)} s, the slowest device of the delta fleet updated alone: its first advertisement, connect, discovery, Status, CHALLENGE and BEGIN before its flash work)`,
    );
  }
  lines.push('');
  return lines;
}

export function deltaNoteLines(): string[] {
  return ['v2-delta rows: the ceiling counts the patch on air, erase + program of the whole new image and the base reads of its diff parts (physics.ts baseReadSeconds).'];
}
