/**
 * Who may update the device (PROTOCOL.md §7 and §E): the session key (NVS `device_key`, else the legacy
 * `fleet_key`), the release keys, the development opt-out and the provisioning window. One CHALLENGE
 * nonce per connection, spent by the next tagged command whatever its outcome, so a tag is accepted at
 * most once. Secure by default: without any key and without the opt-out, BEGIN and every tagged command
 * get NOT_PROVISIONED.
 */
import { randomBytes } from 'crypto';
import { beginTag, commandTag, tagsEqual } from '../../protocol/auth';
import { ErrorCode, NONCE_SIZE, type TaggedOp } from '../../protocol/constants';

export interface GuardFacts {
  /** The session key now (PROVISION may set one while the device runs). */
  sessionKey(): Buffer | null;
  hasReleaseKeys: boolean;
  allowUnauthenticated: boolean;
}

export class SessionGuard {
  private readonly nonces = new Map<number, Buffer>();

  constructor(private readonly facts: GuardFacts) {}

  get keyRequired(): boolean {
    return this.facts.sessionKey() !== null;
  }

  /** caps bit 9: nothing proves anything here, by the build's choice. */
  get unauthenticatedAllowed(): boolean {
    return !this.keyRequired && this.facts.allowUnauthenticated;
  }

  /** caps bit 10: no session key, no release key, no opt-out. */
  get notProvisioned(): boolean {
    return !this.keyRequired && !this.facts.hasReleaseKeys && !this.facts.allowUnauthenticated;
  }

  challenge(conn: number): Buffer {
    const nonce = randomBytes(NONCE_SIZE);
    this.nonces.set(conn, nonce);
    return nonce;
  }

  forget(conn: number): void {
    this.nonces.delete(conn);
  }

  /**
   * BEGIN: with a session key the tag over begin[1..76]; without one, release keys let it through to the
   * manifest check (caps bit 6), the opt-out lets anything through, else NOT_PROVISIONED.
   */
  checkBegin(conn: number, request: Buffer, given: Buffer): number {
    if (!this.keyRequired) return this.facts.hasReleaseKeys || this.facts.allowUnauthenticated ? ErrorCode.OK : ErrorCode.NOT_PROVISIONED;
    return this.check(conn, given, (key, nonce) => beginTag(key, nonce, request));
  }

  /** ABORT, CONFIRM, ROLLBACK, REBOOT: without a session key only the opt-out lets them through. */
  checkCommand(conn: number, op: TaggedOp, given: Buffer): number {
    if (!this.keyRequired) return this.facts.allowUnauthenticated ? ErrorCode.OK : ErrorCode.NOT_PROVISIONED;
    return this.check(conn, given, (key, nonce) => commandTag(key, nonce, op));
  }

  private check(conn: number, given: Buffer, expected: (key: Buffer, nonce: Buffer) => Buffer): number {
    const key = this.facts.sessionKey();
    if (!key) return ErrorCode.OK;
    const nonce = this.nonces.get(conn);
    if (!nonce) return ErrorCode.AUTH_REQUIRED;
    this.nonces.delete(conn);
    return tagsEqual(expected(key, nonce), given) ? ErrorCode.OK : ErrorCode.AUTH_FAILED;
  }
}
