/**
 * MANIFEST (op 0x09, PROTOCOL.md §2.4): a signed manifest sent alone before BEGIN, kept for the connection
 * that sent it until its BEGIN takes it over, a new MANIFEST of its own replaces it, or its link drops. One
 * slot, as in the firmware core (firmware/components/ble_ota/core/ble_ota_manifest.c ota_stage_manifest).
 * Its ECDSA verify starts in the writer at once (the writer is idle before BEGIN) and lasts
 * manifestCheckMs; the response goes out as the write is handled, not after the verify. A BEGIN that takes
 * it over gets the verify's remainder as the writer's first job: its verdict gates the first flash write.
 */
import { ErrorCode } from '../../protocol/constants';
import type { ChipName } from '../types';
import { checkManifestAlone, manifestSignatureValid, type AcceptedManifest, type DeviceManifestContext } from './manifest';
import { manifestCheckMs } from './manifest-timing';

export interface StagedManifest {
  conn: number;
  accepted: AcceptedManifest;
  /** Device time at which the writer's verify of it is done. */
  verifiedAt: number;
  /** Its verdict (known to the device only from verifiedAt). */
  valid: boolean;
}

/** What MANIFEST's state check needs to know about a live session. */
export interface SessionView {
  owner: number | null;
  phase: 'receiving' | 'suspended' | 'finishing';
}

export type WriterJob = { ms: number; run(): { err: number; message: string } | null };

export class ManifestStage {
  private staged: StagedManifest | null = null;

  constructor(
    private readonly now: () => number,
    private readonly chip: ChipName,
  ) {}

  /** MANIFEST: its checks, then the slot; returns the response's err. */
  stage(conn: number, raw: Buffer, device: DeviceManifestContext, session: SessionView | null): number {
    const others = this.staged !== null && this.staged.conn !== conn;
    if (!others) this.forget(conn); // a new MANIFEST replaces the connection's last one, refused or not
    const verdict = checkManifestAlone(raw, device);
    if (!('accepted' in verdict)) return verdict.err;
    // The verify would hold the writer: not while another connection's session needs it, nor while this
    // connection's session finishes; another connection's manifest waits for its BEGIN.
    const active = session !== null && session.phase !== 'suspended';
    if (active && session.owner === conn && session.phase === 'finishing') return ErrorCode.INVALID_STATE;
    if ((active && session.owner !== conn) || others) return ErrorCode.BUSY;
    const accepted = verdict.accepted;
    this.staged = { conn, accepted, verifiedAt: this.now() + manifestCheckMs(this.chip, accepted.manifest.body.length), valid: manifestSignatureValid(accepted) };
    return ErrorCode.OK;
  }

  /** The manifest conn staged, if any. */
  of(conn: number): StagedManifest | null {
    return this.staged && this.staged.conn === conn ? this.staged : null;
  }

  /** Drop conn's staged manifest (link lost, or its BEGIN took it over). */
  forget(conn: number): void {
    if (this.staged?.conn === conn) this.staged = null;
  }

  /**
   * The writer job of a session that took `staged` over: what is left of its verify, then the verdict
   * (SESSION_ABORTED MANIFEST_INVALID before anything is written). None when it already verified.
   */
  writerJob(staged: StagedManifest): WriterJob | undefined {
    const ms = Math.max(0, staged.verifiedAt - this.now());
    if (ms === 0 && staged.valid) return undefined;
    return { ms, run: () => (staged.valid ? null : { err: ErrorCode.MANIFEST_INVALID, message: 'manifest signature does not verify' }) };
  }
}
