/**
 * Payloads of the plant topic tree v1 (topics.ts; docs/FLEET.md has a JSON schema for each, schemas.ts
 * holds them and validates every message received). Every JSON payload carries `v: 1`. Times are
 * milliseconds since the Unix epoch (the publisher's clock; a modeled plant uses its virtual clock).
 */

export const PLANT_MESSAGE_VERSION = 1;

export interface GatewayPresence {
  v: 1;
  gateway: string;
  state: 'online' | 'offline';
  at: number;
  /** Installs this gateway runs at once, and how many of those are free now. */
  slots: { total: number; free: number };
  adapter: { label: string; simulated: boolean };
  /** Package version of the gateway's nodes. */
  software: string;
}

export interface DeviceSighting {
  /** "aa:bb:cc:dd:ee:ff", lower case. */
  address: string;
  name: string;
  rssi: number;
  /** From the advertisement (PROTOCOL.md §8); null when the device does not say (legacy, unknown). */
  version: string | null;
  /** First bytes of the running image's SHA-256 as the advertisement carries them (hex), or null. */
  hashPrefix: string | null;
  protocol: 'v2' | 'legacy' | 'unknown';
  /** OTA state from the advertisement (valid, pending-verify, ...), or null. */
  otaState: string | null;
  sessionActive: boolean;
  lastSeen: number;
}

export interface GatewaySightings {
  v: 1;
  gateway: string;
  at: number;
  /** At most 1000, strongest first. */
  devices: DeviceSighting[];
}

export interface ImageRef {
  /** SHA-256 of the image file (hex, 64). */
  sha256: string;
  size: number;
  /** Signed manifest (base64) to send with BEGIN, if the release has one. */
  manifest?: string;
  /** What the image says of itself: the gateway checks the fetched image against these too. */
  version: string;
  chip: string;
  project?: string;
}

export interface InstallTask {
  v: 1;
  type: 'install';
  taskId: string;
  campaign: string;
  device: { address: string; name: string };
  image: ImageRef;
  /** The gateway fails the task with TASK_TIMEOUT after this long (ms) from its start. */
  timeoutMs: number;
  /** Flash + verify options the campaign sets. */
  options: {
    encoding: 'auto' | 'raw' | 'deflate' | 'delta';
    /** After the reboot: confirm when the checks pass, roll back when they fail (host confirm policy devices). */
    confirm: boolean;
    maxAttempts: number;
  };
}

export interface CancelTask {
  v: 1;
  type: 'cancel';
  taskId: string;
  campaign: string;
  reason: string;
}

export type TaskMessage = InstallTask | CancelTask;

export type ExecutionState = 'queued' | 'in-progress' | 'succeeded' | 'failed' | 'rolled-back' | 'cancelled';

export interface ExecutionStatus {
  v: 1;
  campaign: string;
  taskId: string;
  gateway: string;
  device: { address: string; name: string };
  state: ExecutionState;
  at: number;
  /** In progress: the flash node's phase and bytes. */
  progress?: { phase: string; percent: number; bytesSent: number; bytesTotal: number };
  /** Failed / rolled-back / cancelled: OtaError code and message. */
  error?: { code: string; message: string };
  /** Done: what ran before and what runs now (version, sha256), and whether this task installed anything. */
  before?: { version: string | null; sha256: string | null };
  after?: { version: string | null; sha256: string | null };
  /** False when the device already ran the image (an earlier, unreported install finished it). */
  installed?: boolean;
  seconds?: number;
  bytesOnAir?: number;
  encoding?: string;
}

export interface ImageRequest {
  v: 1;
  gateway: string;
  sha256: string;
}

/**
 * Binary frame on imageChunks(): magic "BOI1" (4), index u32 BE, count u32 BE, total size u32 BE, then the
 * chunk bytes (at most 64 KiB). The gateway checks the reassembled image's SHA-256 against the topic's.
 */
export const IMAGE_CHUNK_MAGIC = 'BOI1';
export const IMAGE_CHUNK_BYTES = 65536;

export interface DeviceClaim {
  v: 1;
  campaign: string;
  address: string;
  at: number;
}

export interface CampaignControl {
  v: 1;
  action: 'pause' | 'resume' | 'cancel';
  reason?: string;
}

// ---- campaigns -------------------------------------------------------------------------------------

export interface TargetSelector {
  /** Device name starts with / matches (regular expression). */
  namePrefix?: string;
  nameRegex?: string;
  /** Chip the devices must be (else the image's chip is assumed and others are refused at install). */
  chip?: string;
  /** Only devices whose advertised version is older than this ("1.2.3"). */
  versionOlderThan?: string;
  /** Explicit device addresses or names (all must be seen, or they are reported failed DEVICE_NOT_SEEN). */
  devices?: string[];
}

export interface WaveSpec {
  /** Devices in this wave: a count, or a percentage of the selected devices (rounded up). */
  count?: number;
  percent?: number;
  /** Abort the campaign when this many devices of the wave failed (default: no count limit). */
  maxFailures?: number;
  /** Abort when this share of the wave failed (0..100, default 100: never). */
  maxFailurePercent?: number;
}

export interface CampaignSpec {
  /** Campaign id (topic level): given, or generated. */
  id?: string;
  name?: string;
  image: {
    sha256: string;
    /** Where the coordinator reads the image: a file name in its firmware directory, or base64. */
    file?: string;
    base64?: string;
    /** Signed manifest (base64); default: <file>.manifest next to the file when it exists. */
    manifest?: string;
  };
  target: TargetSelector;
  /** Canary first (e.g. [{count: 1}, {percent: 25}, {percent: 100}]); the last wave takes what is left. */
  waves: WaveSpec[];
  /** Per device: from the task's start at the gateway to its end (ms, default 300000). */
  deviceTimeoutMs?: number;
  /** Devices installing at once plant-wide (default 20). */
  maxConcurrent?: number;
  encoding?: 'auto' | 'raw' | 'deflate' | 'delta';
  confirm?: boolean;
  maxAttempts?: number;
  /** Re-assignments of one device after a gateway loss or timeout before it is failed (default 2). */
  maxReassignments?: number;
}

export type DeviceCampaignState = 'pending' | 'assigned' | 'in-progress' | 'succeeded' | 'skipped' | 'failed' | 'rolled-back' | 'cancelled';

export interface CampaignDevice {
  address: string;
  name: string;
  wave: number;
  state: DeviceCampaignState;
  gateway: string | null;
  taskId: string | null;
  /** Every gateway it was given to, in order (a re-assignment appends). */
  assignments: Array<{ gateway: string; taskId: string; at: number; ended: string | null }>;
  before: { version: string | null; sha256: string | null } | null;
  after: { version: string | null; sha256: string | null } | null;
  progress: number | null;
  error: { code: string; message: string } | null;
  startedAt: number | null;
  endedAt: number | null;
}

export type CampaignRunState = 'running' | 'paused' | 'completed' | 'aborted' | 'cancelled';

export interface CampaignState {
  v: 1;
  id: string;
  name: string;
  coordinator: string;
  createdAt: number;
  updatedAt: number;
  state: CampaignRunState;
  /** Why it aborted / was cancelled. */
  reason: string | null;
  spec: CampaignSpec;
  image: ImageRef;
  currentWave: number;
  waves: Array<{ size: number; state: 'waiting' | 'running' | 'done' | 'aborted'; failed: number; succeeded: number }>;
  devices: CampaignDevice[];
}

export interface CampaignProgress {
  v: 1;
  campaign: string;
  state: CampaignRunState;
  at: number;
  wave: number;
  counts: Record<DeviceCampaignState, number>;
  total: number;
  /** Devices finished per minute over the last 10 minutes, and the estimated ms to the end (null: unknown). */
  devicesPerMinute: number;
  etaMs: number | null;
}

/** One device's end in a campaign: the rollout node's first output. */
export interface DeviceResult {
  campaign: string;
  device: { address: string; name: string };
  state: DeviceCampaignState;
  gateway: string | null;
  wave: number;
  before: { version: string | null; sha256: string | null } | null;
  after: { version: string | null; sha256: string | null } | null;
  error: { code: string; message: string } | null;
  /** True when this campaign's task installed the image (false: it was already there). */
  installed: boolean;
}
