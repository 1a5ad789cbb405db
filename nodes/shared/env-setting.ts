/**
 * Node-RED replaces a setting of the form "${VAR}" with the variable's value, and leaves it as it is when VAR
 * is unset: that means "not configured", never a path or a host (the flash node reads its settings the same way).
 */
export function settingOrEmpty(value: unknown): string {
  const text = value === undefined || value === null ? '' : String(value).trim();
  return /^\$\{\S+\}$/.test(text) ? '' : text;
}
