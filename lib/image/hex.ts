/** Formatting helpers shared by the parser's messages. */
export function hex(value: number, digits = 0): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

/** Up to `max` bytes as hex, for messages that show what was found instead of a magic number. */
export function hexBytes(buf: Buffer, offset: number, max: number): string {
  return buf.subarray(offset, offset + max).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** A NUL-terminated fixed-size C string field. */
export function cString(buf: Buffer, offset: number, size: number): string {
  const field = buf.subarray(offset, offset + size);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('latin1');
}
