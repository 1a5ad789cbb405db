/**
 * Status and log texts through Node-RED's RED._ (the node's locales/<lang>/<type>.json). A runtime
 * without our catalogues (node-red-node-test-helper returns the key) gets the en-US text, so a
 * status never shows a bare key. Texts shared by every node (adapter states, the SIM mark) live in
 * the adapter's catalogue and are reached with the namespaced key "<module>/ble-ota-adapter:...".
 */
import * as fs from 'fs';
import * as path from 'path';
import type { NodeAPI } from './node-red';

export type Translate = (key: string, substitutions?: Record<string, unknown>) => string;

const MODULE = 'node-red-contrib-esp32-ble-ota';
const catalogues = new Map<string, Record<string, unknown>>();

function englishCatalogue(type: string): Record<string, unknown> {
  let catalogue = catalogues.get(type);
  if (!catalogue) {
    const file = path.join(__dirname, '..', type, 'locales', 'en-US', `${type}.json`);
    catalogue = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    catalogues.set(type, catalogue);
  }
  return catalogue;
}

function lookup(catalogue: Record<string, unknown>, dotted: string): string | null {
  let at: unknown = catalogue;
  for (const part of dotted.split('.')) {
    if (!at || typeof at !== 'object') return null;
    at = (at as Record<string, unknown>)[part];
  }
  return typeof at === 'string' ? at : null;
}

function substitute(text: string, substitutions: Record<string, unknown> = {}): string {
  return text.replace(/__([A-Za-z0-9]+)__/g, (whole, name: string) => (name in substitutions ? String(substitutions[name]) : whole));
}

function make(RED: NodeAPI, type: string, fullKey: (key: string) => string): Translate {
  return (key, substitutions) => {
    const full = fullKey(key);
    const text = RED._(full, substitutions);
    if (typeof text === 'string' && text !== full && text !== `${type}.${key}`) return text;
    const english = lookup(englishCatalogue(type), `${type}.${key}`);
    return english === null ? `${type}.${key}` : substitute(english, substitutions);
  };
}

/** Texts of the node's own catalogue: t('status.done', {...}) reads "<type>.status.done". */
export function translator(RED: NodeAPI, type: string): Translate {
  return make(RED, type, (key) => `${type}.${key}`);
}

/** Texts every node shares, from the adapter's catalogue. */
export function sharedTranslator(RED: NodeAPI): Translate {
  return make(RED, 'ble-ota-adapter', (key) => `${MODULE}/ble-ota-adapter:ble-ota-adapter.${key}`);
}
