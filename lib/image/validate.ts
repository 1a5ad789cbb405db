/** validateAppImage: an image fit to be sent as an OTA update, or an OtaError naming the first problem. */
import { problemToError } from './error-codes';
import { parseImage } from './parse';
import type { ParsedImage } from './types';

export function validateAppImage(buf: Buffer): ParsedImage {
  const parsed = parseImage(buf);
  if (parsed.problems.length > 0) throw problemToError(parsed.problems[0]);
  return parsed;
}
