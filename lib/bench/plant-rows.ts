/**
 * The bench's plant rows (issue 12): plant throughput in devices per hour (modeled) for 1, 2 and 4 gateways,
 * the same devices and image each time. Everything is the product except the broker and the radio: one
 * SimRadio carries N simulated devices (TS model, keyed as the other rows: security-setup.ts, signed
 * manifest); each gateway is a central of its own on it (`ownAir`, per-gateway range and RSSI,
 * docs/LINK-MODEL.md §10a) seen through the real noble (createHciNoble → createNobleCentral) and the real
 * AdapterScheduler, driven by a real GatewayAgent; one real RolloutCoordinator runs the campaign; all of them
 * talk over the in-process MemoryBroker with the real schema codec and image transfer (ImageServer /
 * ImageCache), on one virtual clock.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AdapterScheduler } from '../ble/scheduler';
import { createNobleCentral, type NobleBleCentral } from '../ble/noble-central';
import type { Clock } from '../clock';
import { toOtaError } from '../errors';
import { appHash, buildAppImage } from '../image';
import { GatewayAgent, presenceWill } from '../plant/gateway/agent';
import { sha256Hex } from '../plant/image-transfer';
import { MemoryBroker } from '../plant/memory-bus';
import type { CampaignState, GatewaySightings, WaveSpec } from '../plant/messages';
import { RolloutCoordinator } from '../plant/coordinator/coordinator';
import { parsePlantMessage } from '../plant/schemas';
import { PlantTopics } from '../plant/topics';
import { addressFromName, createSimDevice, type SimDevice } from '../sim/device';
import { createHciNoble } from '../sim/hci/noble-hci-loader';
import { createSimRadio } from '../sim/radio';
import { VirtualClock } from '../sim/virtual-clock';
import { deviceIdOf } from '../sim/device/device-id';
import { clientSecurity, fleetSecurity } from './security-setup';
import { deriveDeviceKey } from '../security/keys';

/**
 * Defaults of `npm run bench`: 48 devices (3 rounds of 4 slots on each of 4 gateways), a 512 KiB image, both
 * campaign shapes; about 40 s of CPU for the six plants on a small machine.
 */
export const PLANT_DEFAULTS = { devices: 48, imageBytes: 512 * 1024, gateways: [1, 2, 4], slots: 4, brokerLatencyMs: 5, overlap: 0.125, canary: true } as const;
/** The issue's target: 4 gateways move at least this many times the devices per hour of one. */
export const PLANT_TARGET_RATIO = 3.6;
const PLANT_LINK = 'reference';
const CHIP = 'esp32';
/** Devices in the campaign's canary wave (the optional second figure). */
const CANARY_DEVICES = 1;

export interface PlantRow {
  gateways: number;
  devices: number;
  /** 'one wave of 100 %' or 'canary of 1, then 100 %'. */
  waves: string;
  /** Campaign start (startCampaign called) to its end (its 'campaign' event), modeled; null when it failed. */
  modeledMinutes: number | null;
  /** The same in seconds (ms resolution). */
  modeledSeconds: number | null;
  devicesPerHour: number | null;
  /** devicesPerHour over the 1-gateway row of the same waves. */
  ratio: number | null;
  /** Whole PDUs on air, both directions, all airs (radio stats). */
  bytesOnAir: number | null;
  /** Data PDUs lost on air (collisions between gateways' airs; the reference link loses none by itself). */
  lostPdus: number | null;
  /** Data PDUs sent on air in all (the share lost is lostPdus / dataPdus). */
  dataPdus: number | null;
  succeeded: number;
  /** Devices each gateway installed (the coordinator's choice). */
  perGateway: Record<string, number>;
  error?: string;
}

export interface PlantBenchOptions {
  devices?: number;
  imageBytes?: number;
  gateways?: readonly number[];
  /** Installs per gateway at once = its adapter's connection budget (default 4). */
  slots?: number;
  brokerLatencyMs?: number;
  /** How far a gateway hears into a neighbour's stretch, as a share of a stretch (default 1/8). */
  overlap?: number;
  /** Also run every plant with a canary wave first (default true). */
  canary?: boolean;
  log?: (line: string) => void;
}

export interface PlantBenchResult {
  rows: PlantRow[];
  devices: number;
  imageBytes: number;
  slots: number;
  brokerLatencyMs: number;
  overlap: number;
  notes: string[];
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * The floor: N devices evenly along one line, G gateways at the middles of G equal stretches. A gateway hears
 * the devices of its stretch and those up to `overlap` of a stretch into its neighbours' (where two lines
 * meet a device is heard by two gateways); its RSSI falls with the distance (-45 dBm beside it, -80 dBm at
 * the edge of its stretch). With one gateway its stretch is the whole line: every device is heard by it.
 */
export function plantFloor(devices: number, gateways: number, overlap: number = PLANT_DEFAULTS.overlap): Array<Map<number, number>> {
  const stretch = 1 / gateways;
  const reach = stretch / 2 + stretch * overlap;
  return Array.from({ length: gateways }, (_, g) => {
    const centre = (g + 0.5) * stretch;
    const heard = new Map<number, number>();
    for (let i = 0; i < devices; i++) {
      const distance = Math.abs((i + 0.5) / devices - centre);
      if (distance <= reach + 1e-9) heard.set(i, Math.round(-45 - (35 * distance) / (stretch / 2)));
    }
    return heard;
  });
}

function deviceName(i: number): string {
  return `plant-${String(i + 1).padStart(3, '0')}`;
}

/** One plant of `gateways` gateways over the devices, one campaign to `image`; the row it gives. */
async function runPlant(gateways: number, devices: number, image: Buffer, waves: WaveSpec[], wavesText: string, o: Required<Omit<PlantBenchOptions, 'gateways' | 'canary' | 'log'>>, firmwareDir: string): Promise<PlantRow> {
  const clock = new VirtualClock();
  const row: PlantRow = { gateways, devices, waves: wavesText, modeledMinutes: null, modeledSeconds: null, devicesPerHour: null, ratio: null, bytesOnAir: null, lostPdus: null, dataPdus: null, succeeded: 0, perGateway: {} };
  const { masterKey, releaseKeys } = fleetSecurity('keyed');
  const radio = createSimRadio({ clock, link: PLANT_LINK });
  // The radio's own adapter (central 0) is nobody's: powered off, it never listens.
  radio.setPowered(false);
  const models: SimDevice[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < devices; i++) {
    const address = addressFromName(deviceName(i));
    const device = createSimDevice({ name: deviceName(i), address, chip: CHIP, version: '1.0.0', protocol: 'v2', confirmPolicy: 'host', deviceKey: deriveDeviceKey(masterKey as Buffer, deviceIdOf(address)), releaseKeys }, clock);
    models.push(device);
    addresses.push(address);
    radio.addDevice(device);
  }
  const broker = new MemoryBroker(clock, { latencyMs: o.brokerLatencyMs });
  const topics = new PlantTopics();
  const adapter = { label: 'simulated adapter', simulated: true };
  const centrals: NobleBleCentral[] = [];
  const schedulers: AdapterScheduler[] = [];
  const agents: GatewayAgent[] = [];
  const warnings: string[] = [];
  let coordinator: RolloutCoordinator | null = null;
  try {
    const floor = plantFloor(devices, gateways, o.overlap);
    for (let g = 0; g < gateways; g++) {
      const id = `gw-${g + 1}`;
      const heard = new Map([...floor[g]].map(([i, rssi]) => [addresses[i], rssi]));
      const controller = radio.addCentral({ hears: (address) => heard.get(address) ?? null, ownAir: true });
      const central = createNobleCentral(createHciNoble(controller), { clock, adapterName: `gateway ${id}` });
      centrals.push(central);
      const scheduler = new AdapterScheduler(central, { maxConnections: o.slots });
      schedulers.push(scheduler);
      const bus = broker.connect(id, presenceWill(topics, id, adapter, o.slots, 0));
      const agent = new GatewayAgent({
        bus,
        topics,
        gatewayId: id,
        scheduler,
        clock,
        slots: o.slots,
        adapter,
        keys: { masterKey },
        log: (level, text) => level !== 'info' && warnings.push(`${id}: ${text}`),
      });
      agents.push(agent);
      await agent.start();
    }
    coordinator = new RolloutCoordinator({
      bus: broker.connect('bench-coordinator'),
      topics,
      clock,
      coordinatorId: 'bench-coordinator',
      images: { firmwareDir },
      log: (level, text) => level !== 'info' && warnings.push(`coordinator: ${text}`),
    });
    await coordinator.start();
    // The campaign starts once the gateways' sightings together name every device (a plant at rest).
    await untilAllSighted(broker, topics, clock, addresses, 120_000);
    const sha256 = sha256Hex(image);
    const manifest = (clientSecurity('keyed', Buffer.alloc(6), image).manifest as Buffer).toString('base64');
    const ended = new Promise<CampaignState>((resolve) => coordinator!.on('campaign', (s: CampaignState) => resolve(s)));
    const startedAt = clock.now();
    await coordinator.startCampaign({ id: `bench-${gateways}gw`, image: { sha256, file: 'bench.bin', manifest }, target: { namePrefix: 'plant-', chip: CHIP }, waves, maxConcurrent: gateways * o.slots, confirm: true });
    const end = await withLimit(ended, clock, 4 * 3_600_000, 'the campaign did not end within 4 modeled hours');
    const seconds = (clock.now() - startedAt) / 1000;
    row.succeeded = end.devices.filter((d) => d.state === 'succeeded').length;
    for (const d of end.devices) if (d.gateway) row.perGateway[d.gateway] = (row.perGateway[d.gateway] ?? 0) + 1;
    const stats = radio.stats();
    row.bytesOnAir = stats.bytesOnAir.toPeripheral + stats.bytesOnAir.toCentral;
    row.lostPdus = stats.totals.toPeripheral.lost + stats.totals.toCentral.lost;
    row.dataPdus = stats.totals.toPeripheral.dataPdus + stats.totals.toCentral.dataPdus;
    if (end.state !== 'completed' || row.succeeded !== devices) {
      const failed = end.devices.find((d) => d.state !== 'succeeded');
      throw new Error(`campaign ${end.state}${end.reason ? ` (${end.reason})` : ''}: ${row.succeeded} of ${devices} succeeded${failed ? `; ${failed.name || failed.address} ${failed.state} ${failed.error ? `${failed.error.code}: ${failed.error.message}` : ''}` : ''}`);
    }
    // Every device runs the image now (the model's own record, not the coordinator's report).
    const appSha = appHash(image).toString('hex');
    const wrong = models.filter((m) => m.machine.state !== 'running' || m.machine.runningApp?.sha256.toString('hex') !== appSha);
    if (wrong.length) throw new Error(`${wrong.length} devices do not run the new image after the campaign (e.g. ${wrong[0].name})`);
    row.modeledSeconds = round(seconds, 3);
    row.modeledMinutes = round(seconds / 60, 2);
    row.devicesPerHour = round((devices / seconds) * 3600, 1);
  } catch (err) {
    const e = toOtaError(err);
    row.error = `${e.code}: ${e.message}${warnings.length ? ` (first warning: ${warnings[0]})` : ''}`;
  } finally {
    await coordinator?.stop().catch(() => undefined);
    for (const a of agents) await a.stop().catch(() => undefined);
    for (const s of schedulers) await s.close().catch(() => undefined);
    for (const c of centrals) await c.close().catch(() => undefined);
    await Promise.all(models.map((m) => m.shutdown().catch(() => undefined)));
    radio.close();
    clock.stop();
  }
  return row;
}

/** Resolves when the retained sightings of all gateways together name every address (checked each modeled second). */
async function untilAllSighted(broker: MemoryBroker, topics: PlantTopics, clock: Clock, addresses: string[], limitMs: number): Promise<void> {
  const seen = new Map<string, Set<string>>();
  const probe = broker.connect('bench-probe');
  await probe.subscribe(topics.allSightings, (m) => {
    const s = parsePlantMessage('sightings', m.payload) as GatewaySightings;
    seen.set(s.gateway, new Set(s.devices.map((d) => d.address.toLowerCase())));
  });
  const deadline = clock.now() + limitMs;
  try {
    for (;;) {
      const all = new Set([...seen.values()].flatMap((s) => [...s]));
      const missing = addresses.filter((a) => !all.has(a));
      if (!missing.length) return;
      if (clock.now() > deadline) throw new Error(`${missing.length} devices were not in any gateway's sightings after ${limitMs / 1000} s (e.g. ${missing[0]})`);
      await new Promise<void>((resolve) => clock.setTimer(resolve, 1000));
    }
  } finally {
    await probe.close();
  }
}

function withLimit<T>(promise: Promise<T>, clock: Clock, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(() => reject(new Error(message)), ms);
    promise.then(
      (v) => {
        timer.cancel();
        resolve(v);
      },
      (e: unknown) => {
        timer.cancel();
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export async function runPlantBench(options: PlantBenchOptions = {}): Promise<PlantBenchResult> {
  const log = options.log ?? (() => undefined);
  const o = {
    devices: options.devices ?? PLANT_DEFAULTS.devices,
    imageBytes: options.imageBytes ?? PLANT_DEFAULTS.imageBytes,
    slots: options.slots ?? PLANT_DEFAULTS.slots,
    brokerLatencyMs: options.brokerLatencyMs ?? PLANT_DEFAULTS.brokerLatencyMs,
    overlap: options.overlap ?? PLANT_DEFAULTS.overlap,
  };
  const gatewayCounts = options.gateways ?? PLANT_DEFAULTS.gateways;
  const image = buildAppImage({ chip: CHIP, version: '2.0.0', projectName: 'plant-bench', size: o.imageBytes, seed: 12 });
  const firmwareDir = mkdtempSync(join(tmpdir(), 'ble-ota-bench-plant-'));
  const result: PlantBenchResult = { rows: [], devices: o.devices, imageBytes: image.length, slots: o.slots, brokerLatencyMs: o.brokerLatencyMs, overlap: o.overlap, notes: [] };
  const plans: Array<{ waves: WaveSpec[]; text: string }> = [{ waves: [{ percent: 100 }], text: 'one wave of 100 %' }];
  if (options.canary ?? PLANT_DEFAULTS.canary) plans.push({ waves: [{ count: CANARY_DEVICES }, { percent: 100 }], text: `canary of ${CANARY_DEVICES}, then 100 %` });
  try {
    writeFileSync(join(firmwareDir, 'bench.bin'), image);
    for (const plan of plans) {
      let base: number | null = null;
      for (const gateways of gatewayCounts) {
        const wallStarted = process.hrtime.bigint();
        const row = await runPlant(gateways, o.devices, image, plan.waves, plan.text, o, firmwareDir);
        if (gateways === 1) base = row.devicesPerHour;
        if (base && row.devicesPerHour !== null) row.ratio = round(row.devicesPerHour / base, 2);
        result.rows.push(row);
        const wall = Number(process.hrtime.bigint() - wallStarted) / 1e9;
        log(`plant ${gateways} gateway(s), ${o.devices} devices, ${plan.text}: ${row.error ? `FAILED ${row.error}` : `${row.modeledMinutes} min modeled, ${row.devicesPerHour} devices/hour`} (${wall.toFixed(1)} s wall)`);
      }
    }
  } finally {
    rmSync(firmwareDir, { recursive: true, force: true });
  }
  return result;
}

/** Markdown lines: the plant table, the issue's target, what the model is. */
export function plantLines(result: PlantBenchResult): string[] {
  const lines = [
    '',
    `| plant | gateways | devices | waves | modeled min | devices/hour | ratio to 1 gateway | bytes on air | PDUs lost | installs per gateway |`,
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of result.rows) {
    const per = Object.entries(r.perGateway)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([g, n]) => `${g} ${n}`)
      .join(', ');
    if (r.error) lines.push(`| ${PLANT_LINK} | ${r.gateways} | ${r.devices} | ${r.waves} | failed: ${r.error} | | | | | |`);
    else lines.push(`| ${PLANT_LINK} | ${r.gateways} | ${r.devices} | ${r.waves} | ${r.modeledMinutes?.toFixed(2)} | ${r.devicesPerHour?.toFixed(1)} | ${r.ratio?.toFixed(2) ?? ''} | ${r.bytesOnAir} | ${r.lostPdus}${r.dataPdus ? ` (${((100 * (r.lostPdus ?? 0)) / r.dataPdus).toFixed(2)} %)` : ''} | ${per} |`);
  }
  lines.push(...plantTargetLines(result));
  lines.push(...plantNoteLines(result));
  return lines;
}

export function plantTargetLines(result: PlantBenchResult): string[] {
  const one = result.rows.find((r) => r.gateways === 1 && r.waves === 'one wave of 100 %');
  const four = result.rows.find((r) => r.gateways === 4 && r.waves === 'one wave of 100 %');
  if (!one?.devicesPerHour || !four?.devicesPerHour) return ['- plant: 4 gateways vs 1 not measured (a plant row failed or was not run; see above)'];
  const ratio = four.devicesPerHour / one.devicesPerHour;
  return [`- plant: 4 gateways ${four.devicesPerHour.toFixed(1)} devices/hour vs 1 gateway ${one.devicesPerHour.toFixed(1)}: ${ratio.toFixed(2)}x (target >= ${PLANT_TARGET_RATIO}x): ${ratio >= PLANT_TARGET_RATIO ? 'met' : 'NOT met'}`];
}

function plantNoteLines(result: PlantBenchResult): string[] {
  return [
    `plant rows: ${result.devices} simulated ESP32 devices (TS model, per-device keys from the plant master key, release key, signed manifest) updated from 1.0.0 to a ${result.imageBytes}-byte synthetic image (lib/image builder), the same devices and image for every gateway count; devices/hour = devices / (campaign end - start, modeled) x 3600, start = startCampaign called once every device is in a gateway's sightings, end = the coordinator's 'campaign' event.`,
    `  the floor: the devices along one line, G gateways at the middles of G equal stretches, each hearing its stretch and ${result.overlap} of a stretch into each neighbour's (devices where two stretches meet are heard by two gateways), RSSI -45 dBm beside the gateway to -80 dBm at its stretch's edge; with 1 gateway its stretch is the whole line (assumption: the same devices are reachable from each configuration's gateways).`,
    `  real: the RolloutCoordinator, one GatewayAgent per gateway (${result.slots} slots = its AdapterScheduler's connection budget), the schema codec (lib/plant/schemas.ts), image transfer over the bus (ImageServer / ImageCache, SHA-256 checked), noble's hci-socket layer on each gateway's virtual controller, lib/ota flash + verify + confirm, the device model; maxConcurrent = gateways x slots.`,
    `  modeled: the radio (link "${PLANT_LINK}", docs/LINK-MODEL.md; each gateway a central of its own with its own air and per-gateway range/RSSI, §10a), the device's flash timing, and the MQTT broker (lib/plant/memory-bus.ts MemoryBroker: every message reaches every subscriber ${result.brokerLatencyMs} ms after it was published, one FIFO, retained messages and wills as MQTT 3.1.1), all on one virtual clock.`,
    '  collisions (§10a): two gateways\' exchanges overlapping in time on the same data channel (about 1 event in 37) both lose their PDUs (capture effect ignored: pessimistic) and are retransmitted; "PDUs lost" counts them (share of all data PDUs sent), the reference link loses nothing by itself. A device is not limited by its own radio when two gateways could reach it; in a plant one gateway updates it at a time.',
    '  the canary rows: one device installed alone before the rest, the same for every gateway count, so their ratio is lower; the target is judged on the one-wave rows. With 1 gateway its 4 links share one air; each further gateway brings an air of its own (§10a), so what is left between the ratio and G is the collisions and the campaign\'s tail (the last round of installs on each gateway).',
  ];
}
