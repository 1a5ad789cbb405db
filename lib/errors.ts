/**
 * One error type for the whole library: a stable machine-readable `code` (UPPER_SNAKE, documented in
 * docs/ERRORS.md) and a sentence a technician understands. Node-RED glue copies `code` to msg.error.code.
 */
export class OtaError extends Error {
  readonly code: string;
  readonly details?: Record<string, unknown>;

  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'OtaError';
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isOtaError(err: unknown): err is OtaError {
  return err instanceof OtaError;
}

/** Wraps anything thrown into an OtaError, keeping OtaErrors as they are. */
export function toOtaError(err: unknown, fallbackCode = 'INTERNAL'): OtaError {
  if (err instanceof OtaError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OtaError(fallbackCode, message);
}
