/**
 * Manifest staging on Data (revision 2.3, PROTOCOL.md §3, caps bit12): before BEGIN, a client whose
 * MANIFEST would not fit one Write Request writes the manifest in Data Write Commands at offsets
 * `0x80000000 | manifest_offset`, then commits it with MANIFEST `0x09` alone (§2.4). One buffer of the
 * largest manifest (416 bytes) per device, owned by the connection that last wrote manifest offset 0, as
 * in the firmware core (firmware/components/ble_ota/core/ble_ota_manifest.c ota_stage_write).
 */
import { MANIFEST_MAX_SIZE, STAGING_OFFSET_FLAG } from '../../protocol/constants';

export class ManifestStaging {
  private readonly bytes = Buffer.alloc(MANIFEST_MAX_SIZE);
  private owner: number | null = null;
  private length = 0;
  /** A fragment out of order or past 416 bytes dropped the staged bytes; the commit is refused. */
  private broken = false;

  /**
   * One staging write of conn. Returns the `expected_offset` of the DATA_NAK BAD_LENGTH to answer (the
   * first fragment that breaks staging: `0x80000000 | staged length before it`), or null (no answer).
   */
  write(conn: number, manifestOffset: number, payload: Buffer): number | null {
    if (manifestOffset === 0) {
      // (re)starts staging: the buffer is this connection's now, another's bytes are dropped
      this.owner = conn;
      this.length = 0;
      this.broken = false;
    } else if (this.owner !== conn || this.broken) {
      return null; // not this connection's buffer, or already broken (one NAK per break): dropped silently
    }
    if (manifestOffset !== this.length || this.length + payload.length > MANIFEST_MAX_SIZE) {
      const before = this.length;
      this.length = 0;
      this.broken = true;
      return (STAGING_OFFSET_FLAG | before) >>> 0;
    }
    payload.copy(this.bytes, this.length);
    this.length += payload.length;
    return null;
  }

  /**
   * The commit (MANIFEST with an empty body): conn's staged bytes, or null when conn staged nothing or
   * its staging broke. They are consumed whatever the commit's result.
   */
  take(conn: number): Buffer | null {
    if (this.owner !== conn) return null;
    const staged = this.broken || this.length === 0 ? null : Buffer.from(this.bytes.subarray(0, this.length));
    this.drop(conn);
    return staged;
  }

  /** conn's link dropped, or it sent MANIFEST or BEGIN: its staged bytes go. */
  drop(conn: number): void {
    if (this.owner !== conn) return;
    this.owner = null;
    this.length = 0;
    this.broken = false;
  }
}
