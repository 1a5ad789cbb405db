/**
 * Fleet-key gate (PROTOCOL.md §7): one CHALLENGE nonce per connection, spent by the next tagged
 * command whatever its outcome, so a tag is accepted at most once. Without a key every tag is ignored.
 */
import { randomBytes } from 'crypto';
import { beginTag, commandTag, tagsEqual } from '../../protocol/auth';
import { ErrorCode, NONCE_SIZE, TaggedOp } from '../../protocol/constants';

export class AuthGate {
  private readonly nonces = new Map<number, Buffer>();

  constructor(private readonly fleetKey: Buffer | undefined) {}

  get keyRequired(): boolean {
    return this.fleetKey !== undefined;
  }

  challenge(conn: number): Buffer {
    const nonce = randomBytes(NONCE_SIZE);
    this.nonces.set(conn, nonce);
    return nonce;
  }

  forget(conn: number): void {
    this.nonces.delete(conn);
  }

  /** OK, AUTH_REQUIRED or AUTH_FAILED for a BEGIN request (61 bytes). */
  checkBegin(conn: number, request: Buffer, tag: Buffer): number {
    return this.check(conn, tag, (key, nonce) => beginTag(key, nonce, request));
  }

  checkCommand(conn: number, op: TaggedOp, tag: Buffer): number {
    return this.check(conn, tag, (key, nonce) => commandTag(key, nonce, op));
  }

  private check(conn: number, tag: Buffer, expected: (key: Buffer, nonce: Buffer) => Buffer): number {
    if (!this.fleetKey) return ErrorCode.OK;
    const nonce = this.nonces.get(conn);
    if (!nonce) return ErrorCode.AUTH_REQUIRED;
    this.nonces.delete(conn);
    return tagsEqual(expected(this.fleetKey, nonce), tag) ? ErrorCode.OK : ErrorCode.AUTH_FAILED;
  }
}
