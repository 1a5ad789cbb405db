/**
 * The transfer benchmark (issue 3 point 7): for every link scenario, image and protocol, the modeled
 * transfer time through the real stack (simulated fleet on the virtual clock, real noble objects,
 * real protocol clients), next to the physical ceiling; plus host throughput on the zero-latency link
 * and peak RSS with 8 concurrent sessions.
 */
import { AdapterScheduler } from '../ble/scheduler';
import { toOtaError } from '../errors';
import { flashDevice } from '../ota/flash';
import { createSimFleet } from '../sim/fleet';
import type { ChipName, SimDeviceConfig } from '../sim/types';
import { loadBenchImages, type BenchImage } from './images';
import { ceilingSeconds, flashSeconds } from './physics';

export const BENCH_SCENARIOS = ['reference', 'seed-mac', '2m-phy', 'no-dle', 'mtu-23', 'capped-4'] as const;
export const BENCH_PROTOCOLS = ['seed', 'v2', 'v2-deflate'] as const;
export type BenchProtocol = (typeof BENCH_PROTOCOLS)[number];

export interface BenchRow {
  scenario: string;
  image: string;
  bytes: number;
  protocol: BenchProtocol;
  /** null when the stack could not do this combination (the reason is in the Markdown output). */
  modeledSeconds: number | null;
  ceilingSeconds: number;
}

export interface BenchReport {
  rows: BenchRow[];
  host: { throughputMBps: number; peakRssMB: number };
}

export interface BenchOptions {
  scenarios?: readonly string[];
  protocols?: readonly BenchProtocol[];
  /** Image names to keep (vector file names, "synthetic-1.5MB"). */
  images?: string[];
  vectorsDir?: string;
  /** Sessions of the RSS measurement (default 8). */
  concurrentSessions?: number;
  /** Skip the host measurements (tests). */
  skipHost?: boolean;
  onLog?: (line: string) => void;
}

/** Extra facts for the Markdown output only (the JSON shape is fixed). */
interface BenchExtras {
  bytesOnAir: Map<BenchRow, number>;
  failures: Map<BenchRow, string>;
  notes: string[];
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function deviceConfig(name: string, chip: ChipName, protocol: BenchProtocol): SimDeviceConfig {
  return { name, chip, version: '0.0.1', protocol: protocol === 'seed' ? 'legacy' : 'v2', confirmPolicy: 'auto' };
}

/** One flash through the whole stack; returns the FlashResult. */
async function flashOnce(scenario: string, image: BenchImage, protocol: BenchProtocol) {
  const fleet = await createSimFleet({ devices: [deviceConfig('bench-01', image.chip, protocol)], link: scenario, clock: 'virtual' });
  const scheduler = new AdapterScheduler(fleet.central, { maxConnections: 1 });
  try {
    return await flashDevice(scheduler, {
      device: 'bench-01',
      image: image.data,
      protocol: protocol === 'seed' ? 'legacy' : 'v2',
      encoding: protocol === 'v2-deflate' ? 'deflate' : 'raw',
      preventDowngrade: false,
      maxAttempts: 1,
      findTimeoutMs: 10000,
    });
  } finally {
    await scheduler.close();
    await fleet.close();
  }
}

async function measureHostThroughput(image: BenchImage): Promise<number> {
  const started = performance.now();
  await flashOnce('zero', image, 'v2');
  const seconds = (performance.now() - started) / 1000;
  return image.data.length / 1e6 / seconds;
}

async function measurePeakRss(image: BenchImage, sessions: number): Promise<number> {
  const devices = Array.from({ length: sessions }, (_v, i) => deviceConfig(`rss-${String(i + 1).padStart(2, '0')}`, image.chip, 'v2'));
  // The zero-latency link: all sessions move data at once (no air-time sharing stretches them out), so
  // the host holds every session's buffers, clients and device models at the same time.
  const fleet = await createSimFleet({ devices, link: 'zero', clock: 'virtual' });
  const scheduler = new AdapterScheduler(fleet.central, { maxConnections: sessions });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    await Promise.all(
      devices.map((d) =>
        flashDevice(scheduler, { device: d.name, image: image.data, encoding: 'deflate', preventDowngrade: false, maxAttempts: 1, onProgress: () => (peak = Math.max(peak, process.memoryUsage().rss)) }),
      ),
    );
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    await scheduler.close();
    await fleet.close();
  }
  return peak / (1024 * 1024);
}

export async function runBenchmark(options: BenchOptions = {}): Promise<BenchReport> {
  const log = options.onLog ?? (() => undefined);
  const { images, notes } = loadBenchImages({ vectorsDir: options.vectorsDir, only: options.images });
  for (const n of notes) log(n);
  const extras: BenchExtras = { bytesOnAir: new Map(), failures: new Map(), notes };
  let host = { throughputMBps: 0, peakRssMB: 0 };
  const largest = images.reduce((a, b) => (b.data.length > a.data.length ? b : a), images[0]);
  if (!options.skipHost && largest) {
    // RSS first, before the long series grows the heap for reasons unrelated to concurrency.
    const peakRssMB = await measurePeakRss(largest, options.concurrentSessions ?? 8);
    const throughputMBps = await measureHostThroughput(largest);
    host = { throughputMBps: round3(throughputMBps), peakRssMB: round3(peakRssMB) };
    log(`host: ${host.throughputMBps} MB/s on the zero link, peak RSS ${host.peakRssMB} MB with ${options.concurrentSessions ?? 8} sessions`);
  }
  const rows: BenchRow[] = [];
  for (const scenario of options.scenarios ?? BENCH_SCENARIOS) {
    for (const image of images) {
      for (const protocol of options.protocols ?? BENCH_PROTOCOLS) {
        let result: Awaited<ReturnType<typeof flashOnce>>;
        try {
          result = await flashOnce(scenario, image, protocol);
        } catch (err) {
          // A combination the stack cannot do is a finding, not a reason to lose the other rows.
          const e = toOtaError(err);
          const row: BenchRow = { scenario, image: image.name, bytes: image.data.length, protocol, modeledSeconds: null, ceilingSeconds: round3(ceilingSeconds(image.data.length, image.data.length, scenario)) };
          rows.push(row);
          extras.failures.set(row, `${e.code}: ${e.message}`);
          log(`${scenario} ${image.name} ${protocol}: FAILED ${e.code}: ${e.message}`);
          continue;
        }
        const row: BenchRow = {
          scenario,
          image: image.name,
          bytes: image.data.length,
          protocol,
          modeledSeconds: round3(result.seconds),
          ceilingSeconds: round3(ceilingSeconds(result.bytesOnAir, image.data.length, scenario)),
        };
        rows.push(row);
        extras.bytesOnAir.set(row, result.bytesOnAir);
        log(`${scenario} ${image.name} ${protocol}: ${row.modeledSeconds} s (ceiling ${row.ceilingSeconds} s)`);
      }
    }
  }
  const report: BenchReport = { rows, host };
  lastExtras.set(report, extras);
  return report;
}

const lastExtras = new WeakMap<BenchReport, BenchExtras>();

function fmt(x: number, digits = 2): string {
  return x.toFixed(digits);
}

/** Markdown: one table of rows, the targets of the issue evaluated, the host figures. */
export function formatBenchTable(report: BenchReport): string {
  const extras = lastExtras.get(report);
  const lines: string[] = [];
  lines.push('| scenario | image | bytes | protocol | bytes on air | modeled s | ceiling s | % of ceiling | KB/s |');
  lines.push('|---|---|---:|---|---:|---:|---:|---:|---:|');
  for (const r of report.rows) {
    const air = extras?.bytesOnAir.get(r);
    if (r.modeledSeconds === null) {
      lines.push(`| ${r.scenario} | ${r.image} | ${r.bytes} | ${r.protocol} | | failed | ${fmt(r.ceilingSeconds)} | | |`);
      continue;
    }
    const pct = r.modeledSeconds > 0 ? (r.ceilingSeconds / r.modeledSeconds) * 100 : 0;
    lines.push(`| ${r.scenario} | ${r.image} | ${r.bytes} | ${r.protocol} | ${air ?? ''} | ${fmt(r.modeledSeconds)} | ${fmt(r.ceilingSeconds)} | ${fmt(pct, 1)} | ${fmt(r.bytes / r.modeledSeconds / 1000, 1)} |`);
  }
  lines.push('');
  lines.push(...targetLines(report));
  lines.push('');
  lines.push(`host: ${fmt(report.host.throughputMBps)} MB/s through the real noble objects on the zero-latency link (target >= 20); peak RSS ${fmt(report.host.peakRssMB, 1)} MB with 8 concurrent sessions (target < 64)`);
  for (const n of extras?.notes ?? []) lines.push(`note: ${n}`);
  const failed = new Map<string, string>();
  for (const [row, why] of extras?.failures ?? []) failed.set(`${row.scenario} ${row.protocol}`, why);
  for (const [what, why] of failed) lines.push(`failed: ${what}: ${why}`);
  return lines.join('\n');
}

function targetLines(report: BenchReport): string[] {
  const out: string[] = ['targets:'];
  const find = (scenario: string, protocol: BenchProtocol, image?: string) =>
    report.rows.filter((r): r is BenchRow & { modeledSeconds: number } => r.modeledSeconds !== null && r.scenario === scenario && r.protocol === protocol && (!image || r.image === image));
  const seed = find('seed-mac', 'seed');
  if (seed.length) {
    const rate = seed.reduce((s, r) => s + r.bytes, 0) / seed.reduce((s, r) => s + r.modeledSeconds, 0);
    const for500 = 500000 / rate;
    out.push(`- seed protocol on seed-mac: ${fmt(rate / 1000)} KB/s, i.e. ${fmt(for500, 1)} s for 500 KB (author measured ~90 s; ±35 % = 58.5..121.5 s): ${for500 >= 58.5 && for500 <= 121.5 ? 'met' : 'NOT met'}`);
  }
  const v2ref = find('reference', 'v2');
  if (v2ref.length) {
    const worst = Math.min(...v2ref.map((r) => r.ceilingSeconds / r.modeledSeconds));
    out.push(`- v2 raw on reference: worst row at ${fmt(worst * 100, 1)} % of the ceiling (target >= 90 %): ${worst >= 0.9 ? 'met' : 'NOT met'}`);
  }
  const big = report.rows.filter((r) => r.scenario === 'reference').reduce<BenchRow | null>((a, r) => (!a || r.bytes > a.bytes ? r : a), null);
  if (big) {
    const s = find('reference', 'seed', big.image)[0];
    const d = find('reference', 'v2-deflate', big.image)[0];
    if (s && d) out.push(`- v2 deflate vs seed on reference, ${big.image} (${big.bytes} B): ${fmt(s.modeledSeconds / d.modeledSeconds, 1)}x faster (target >= 20x): ${s.modeledSeconds / d.modeledSeconds >= 20 ? 'met' : 'NOT met'}`);
  }
  out.push(`- flash floor for the largest image: ${fmt(flashSeconds(big?.bytes ?? 0))} s (erase + program at the datasheet's typical times)`);
  return out;
}
