/**
 * Filler that compresses like real firmware: machine code (recurring idioms with varying registers
 * and immediates), string tables (log messages, paths), pointer tables, zero runs and incompressible
 * constants. Each generator returns exactly the requested number of bytes.
 */
import { Prng } from './prng';

const WORDS = [
  'wifi', 'ble', 'gatt', 'nimble', 'ota', 'flash', 'partition', 'mqtt', 'http', 'client', 'server', 'task',
  'queue', 'timer', 'event', 'handler', 'failed', 'error', 'init', 'start', 'stop', 'connect', 'disconnect',
  'read', 'write', 'erase', 'invalid', 'argument', 'state', 'memory', 'heap', 'alloc', 'config', 'nvs',
  'esp', 'driver', 'gpio', 'uart', 'spi', 'i2c', 'adc', 'rtc', 'clock', 'sleep', 'wake', 'reset', 'boot',
  'image', 'verify', 'sha256', 'checksum', 'buffer', 'length', 'offset', 'timeout', 'retry', 'socket',
];
const COMPONENTS = ['esp_wifi', 'bt', 'app_update', 'esp_partition', 'nvs_flash', 'freertos', 'lwip', 'mbedtls', 'esp_http_client', 'driver', 'spi_flash', 'esp_system'];
const FORMATS = ['%d', '%s', '0x%x', '%u', '%p', '%02x', '%.*s', '%ld'];

export function zeroBytes(size: number): Buffer {
  return Buffer.alloc(size);
}

export function randomBytes(rng: Prng, size: number): Buffer {
  return rng.fill(Buffer.alloc(size));
}

/** NUL-separated log formats, assert texts and source paths. */
export function stringTable(rng: Prng, size: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const words = Array.from({ length: 2 + rng.below(6) }, () => rng.pick(WORDS));
    let text: string;
    switch (rng.below(4)) {
      case 0: text = `/IDF/components/${rng.pick(COMPONENTS)}/src/${words[0]}_${words[1]}.c`; break;
      case 1: text = `${words.join(' ')} (${rng.pick(FORMATS)})`; break;
      case 2: text = `${words[0]}_${words[1]} ${rng.pick(FORMATS)} ${words.slice(2).join(' ')}`; break;
      default: text = `${rng.pick(COMPONENTS)}: ${words.join(' ')}: ${rng.pick(FORMATS)}, ${rng.pick(FORMATS)}`;
    }
    parts.push(text);
    length += text.length + 1;
  }
  return fitTo(Buffer.from(parts.join('\0') + '\0', 'latin1'), size);
}

/** u32 addresses into a window, mostly increasing (vtables, handler tables, relocations). */
export function pointerTable(rng: Prng, size: number, base: number): Buffer {
  const out = Buffer.alloc(size);
  let addr = base + rng.below(0x4000) * 4;
  for (let i = 0; i + 4 <= size; i += 4) {
    addr = rng.chance(0.2) ? base + rng.below(0x40000) * 4 : addr + 4 * (1 + rng.below(64));
    out.writeUInt32LE(addr >>> 0, i);
  }
  return out;
}

/**
 * Pseudo machine code: functions built from a pool of recurring instruction sequences (prologues,
 * loads/stores, calls) whose register and immediate bytes vary, fresh instructions, and literal pools.
 */
export function machineCode(rng: Prng, size: number, literalBase: number): Buffer {
  const idioms = Array.from({ length: 96 }, () => randomBytes(rng, 6 + rng.below(22)));
  const opcodes = Array.from({ length: 24 }, () => rng.next() & 0xff);
  const out = Buffer.alloc(size);
  // Written in place (no buffer per instruction): the same random draws in the same order.
  const idiom = Buffer.alloc(Math.max(...idioms.map((i) => i.length)));
  let at = 0;
  while (at < size) {
    const kind = rng.below(100);
    if (kind < 50) {
      const source = rng.pick(idioms);
      const length = source.copy(idiom);
      for (let m = rng.below(3); m > 0; m--) idiom[rng.below(length)] = rng.next() & 0xff;
      at += idiom.copy(out, at, 0, length);
    } else if (kind < 85) {
      const opcode = rng.pick(opcodes);
      const operand = rng.next() & 0xff;
      const register = rng.next() & 0x0f;
      out[at++] = opcode;
      if (at < size) out[at++] = operand;
      if (at < size) out[at++] = register;
    } else {
      const poolBytes = 4 * (1 + rng.below(4));
      for (let i = 0; i < poolBytes; i += 4) {
        const literal = (literalBase + rng.below(0x20000) * 4) >>> 0;
        for (let k = 0; k < 4 && at + i + k < size; k++) out[at + i + k] = (literal >>> (8 * k)) & 0xff;
      }
      at += Math.min(poolBytes, size - at);
    }
  }
  return out;
}

function fitTo(buf: Buffer, size: number): Buffer {
  return buf.length >= size ? buf.subarray(0, size) : Buffer.concat([buf, Buffer.alloc(size - buf.length)]);
}

/** Concatenates pieces made by `makers`, splitting `size` by the given weights (each piece a multiple of 4). */
export function mixture(size: number, parts: ReadonlyArray<readonly [number, (n: number) => Buffer]>): Buffer {
  const total = parts.reduce((s, [w]) => s + w, 0);
  const sizes = parts.map(([w]) => Math.floor((size * w) / total / 4) * 4);
  sizes[sizes.length - 1] += size - sizes.reduce((s, n) => s + n, 0);
  return Buffer.concat(parts.map(([, make], i) => make(sizes[i])));
}
