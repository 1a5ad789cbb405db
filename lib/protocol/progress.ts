/**
 * Progress of one transfer as the protocol clients report it. lib/ota adds which device and which
 * attempt (its Progress); the phases are the whole update's, so that both layers speak of one list.
 */
export type FlashPhase =
  | 'checking'
  | 'waiting'
  | 'connecting'
  | 'authenticating'
  | 'transferring'
  | 'finishing'
  | 'rebooting'
  | 'reconnecting'
  | 'done'
  | 'failed';

export interface TransferProgress {
  phase: FlashPhase;
  /** Image bytes the device has acknowledged (decoded image bytes for deflate). */
  bytesDone: number;
  totalBytes: number;
  percent: number;
  /** Image bytes per second over the transfer so far, in KB/s (1 KB = 1000 B). */
  kBps: number;
  etaSeconds: number | null;
  /** Transfer (possibly compressed) bytes the device acknowledged, and the transfer's size. */
  transferBytesAcked: number;
  transferSize: number;
}
