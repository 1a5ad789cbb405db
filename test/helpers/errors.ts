/** The code a promise fails with: an OtaError with a sentence, or 'RESOLVED' when it did not fail. */
import { strict as assert } from 'assert';
import { OtaError } from '../../lib/errors';

export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OtaError, String(err));
    assert.ok(err.message.length > 15, `a sentence for ${err.code}`);
    return err.code;
  }
  return 'RESOLVED';
}

/** The code a call throws (its `code`, else the error as text), or 'no error' when it returns. */
export function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return 'no error';
}
