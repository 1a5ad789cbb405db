/** One v2 update session in RAM (PROTOCOL.md §4): its parameters, owner, offsets and writer. */
import type { TimerHandle } from '../../clock';
import type { SlotIndex } from './ota-data';
import type { ReceiveWindow } from './receive-window';
import type { UpdateWriter } from './update-writer';

export type SessionPhase = 'receiving' | 'suspended' | 'finishing';

export interface V2Session {
  /** Connection that holds the session; null while suspended (or after the owner left during END). */
  owner: number | null;
  phase: SessionPhase;
  imageSize: number;
  transferSize: number;
  encoding: number;
  sha256: Buffer;
  /** Delta: running_sha256 of the base (zero otherwise). */
  baseSha256: Buffer;
  slot: SlotIndex;
  window: ReceiveWindow;
  writer: UpdateWriter;
  resumeTimer: TimerHandle | null;
}

/** Same image as a kept session (the §4.2 resume condition apart from the flag), the delta base included. */
export function sameImage(s: V2Session, b: { imageSize: number; transferSize: number; encoding: number; sha256: Buffer; baseSha256: Buffer }): boolean {
  return s.imageSize === b.imageSize && s.transferSize === b.transferSize && s.encoding === b.encoding && s.sha256.equals(b.sha256) && s.baseSha256.equals(b.baseSha256);
}
