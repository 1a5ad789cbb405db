/**
 * The plant simulator's HCI link to a gateway process, over TCP on loopback: the gateway sends one hello
 * line `{"gateway":"gw-a"}\n`, the plant answers one line `{"ok":true,"address":"..."}\n` (or
 * `{"ok":false,"error":{"code","message"}}\n` and closes), then both sides send HCI packets, each framed
 * as a u16 big-endian length and the packet (HCI packet indicator first), as a UART H4 transport carries
 * them after the indicator. docs/PLANT-SIM.md describes it.
 */
import { OtaError } from '../../errors';

/** The largest HCI packet either side sends (an event is at most 2 + 255 bytes, ACL data is limited by the buffers). */
export const MAX_HCI_PACKET = 4096;
/** A hello or answer line longer than this is not one. */
export const MAX_LINE = 1024;

export function frame(packet: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + packet.length);
  out.writeUInt16BE(packet.length, 0);
  packet.copy(out, 2);
  return out;
}

/**
 * Reads the line, then the frames, of one TCP stream: push() the chunks as they come; onLine gets the
 * first line (without the newline), onPacket every packet after it. A malformed stream throws OtaError
 * PLANT_PROTOCOL (the caller closes the connection).
 */
export class PlantStreamReader {
  private buffer: Buffer = Buffer.alloc(0);
  private lineDone = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onPacket: (packet: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (!this.lineDone) {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) {
        if (this.buffer.length > MAX_LINE) throw new OtaError('PLANT_PROTOCOL', `the first line is longer than ${MAX_LINE} bytes`);
        return;
      }
      const line = this.buffer.subarray(0, nl).toString('utf8');
      this.buffer = this.buffer.subarray(nl + 1);
      this.lineDone = true;
      this.onLine(line);
    }
    while (this.buffer.length >= 2) {
      const length = this.buffer.readUInt16BE(0);
      if (length === 0 || length > MAX_HCI_PACKET) throw new OtaError('PLANT_PROTOCOL', `an HCI frame of ${length} bytes (1..${MAX_HCI_PACKET})`);
      if (this.buffer.length < 2 + length) return;
      const packet = Buffer.from(this.buffer.subarray(2, 2 + length));
      this.buffer = this.buffer.subarray(2 + length);
      this.onPacket(packet);
    }
  }
}

/** "127.0.0.1:PORT" (or "localhost:PORT", "[::1]:PORT") -> host and port; the plant is reached on loopback only. */
export function parsePlantAddress(text: string): { host: string; port: number } {
  const m = /^\s*(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})\s*$/.exec(String(text ?? ''));
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new OtaError('BAD_OPTION', `the simulated plant's address must be 127.0.0.1:PORT (loopback, port 1..65535), got "${String(text)}"`);
  }
  return { host: m[1] === '[::1]' ? '::1' : m[1], port };
}
