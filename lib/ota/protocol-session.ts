/**
 * What flashDevice needs from a protocol client on one connection, whichever protocol the device
 * speaks. The adapters in v2-session.ts and legacy-session.ts map lib/protocol's clients onto it, so
 * the retry/resume/progress logic of flash.ts does not depend on a client's exact API.
 */
import type { ChipName } from '../image/chips';
import type { TransferPayload } from '../protocol/payload';
import type { DeviceSecurityState } from '../security/check';
import type { OtaState } from './types';

export interface DeviceFacts {
  chip: ChipName | null;
  version: string | null;
  secureVersion: number | null;
  state: OtaState;
  runningSha256: string | null;
  projectName: string | null;
  /** v2 capability bits as decoded by lib/protocol/status.ts. */
  deflate: boolean;
  /** caps bit 7: takes delta patches (encoding 2). */
  delta: boolean;
  resume: boolean;
  fleetKeyRequired: boolean;
  /** v2: caps and the Status fields the security checks before BEGIN read; null for the legacy protocol. */
  security: DeviceSecurityState | null;
  /** The full decoded Status (v2) or what the legacy device info says. */
  raw: Record<string, unknown>;
}

export interface TransferRequest {
  /** The decoded image (what lands in the partition). */
  image: Buffer;
  encoding: 'raw' | 'deflate' | 'delta';
  /** A payload prepared before (a delta: transfer-choice.ts); the same object on every attempt. */
  payload?: TransferPayload;
  /** Ask to continue a session the device kept (v2 BEGIN flag bit0). */
  resume: boolean;
  reboot: boolean;
  /** The signed manifest to send with BEGIN (v2, a device that holds release keys), on every attempt. */
  manifest?: Buffer;
  /** Aborting it stops the transfer; the v2 client then sends ABORT itself before the link closes. */
  signal: AbortSignal;
  /** Image bytes the device has acknowledged (decoded bytes). */
  onProgress(imageBytesDone: number): void;
  /** The device accepted the begin (after auth); the transfer proper starts. */
  onTransferStart?(resumedFromImageBytes: number): void;
}

export interface TransferOutcome {
  /** Image bytes the device already had when this attempt started (v2 resume; 0 for legacy). */
  resumedFrom: number;
}

export interface ProtocolSession {
  readonly protocol: 'v2' | 'legacy';
  /** Subscriptions etc. */
  open(): Promise<void>;
  deviceFacts(): Promise<DeviceFacts>;
  /** v2: the session key for BEGIN and tagged commands, once the device's id is known (Status). */
  setSessionKey?(key: Buffer | undefined): void;
  /**
   * v2: offer the signed manifest before BEGIN (MANIFEST, revision 2.2; staged on Data first when it does
   * not fit one write, revision 2.3) so the device verifies it while the session is set up; true when the
   * device stored it. The transfer request still names the manifest.
   */
  stageManifest?(manifest: Buffer): Promise<boolean>;
  transfer(request: TransferRequest): Promise<TransferOutcome>;
  /** v2 only: CONFIRM / ROLLBACK of a pending-verify image (with a fresh CHALLENGE when keyed). */
  confirm?(): Promise<void>;
  rollback?(): Promise<void>;
}
