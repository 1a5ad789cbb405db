/**
 * Advertising data and scan response bytes of a device, as AD structures (Core Supplement Part A 1;
 * Core Vol 3 Part C 11: length, type, data; at most 31 bytes each for legacy advertising, Vol 6 Part B
 * 2.3.1.1). Laid out as our firmware sets them with NimBLE (firmware/components/ble_ota/nimble/ble_ota_gap.c:
 * ble_gap_adv_set_fields with flags and the complete name; ble_gap_adv_rsp_set_fields with the complete
 * 128-bit service UUID list and the manufacturer data). A field that does not fit is left out, as
 * ble_hs_adv_set_fields fails with BLE_HS_EMSGSIZE rather than sending a truncated structure.
 */
import type { VirtualAdvertisement } from '../types';

export const LEGACY_ADV_MAX = 31;
const AD = { flags: 0x01, uuid16Complete: 0x03, uuid128Complete: 0x07, completeName: 0x09, txPower: 0x0a, manufacturer: 0xff } as const;
/** LE General Discoverable, BR/EDR not supported (BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP). */
const FLAGS = 0x06;

export interface AdvertisingPayload {
  advData: Buffer;
  scanResponse: Buffer;
}

function structure(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length + 1, type]), data]);
}

function uuidBytes(uuid: string): Buffer {
  // UUIDs are written little-endian on air.
  return Buffer.from(uuid.replace(/-/g, ''), 'hex').reverse();
}

function pack(fields: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let used = 0;
  for (const f of fields) {
    if (used + f.length > LEGACY_ADV_MAX) continue;
    out.push(f);
    used += f.length;
  }
  return Buffer.concat(out);
}

export function encodeAdvertising(adv: VirtualAdvertisement): AdvertisingPayload {
  const advFields = [structure(AD.flags, Buffer.from([adv.flags ?? FLAGS]))];
  if (adv.localName) advFields.push(structure(AD.completeName, Buffer.from(adv.localName, 'utf8')));
  if (adv.txPowerLevel !== undefined) advFields.push(structure(AD.txPower, Buffer.from([adv.txPowerLevel & 0xff])));
  const rspFields: Buffer[] = [];
  const short = adv.serviceUuids.filter((u) => u.replace(/-/g, '').length === 4);
  const long = adv.serviceUuids.filter((u) => u.replace(/-/g, '').length === 32);
  if (short.length) rspFields.push(structure(AD.uuid16Complete, Buffer.concat(short.map(uuidBytes))));
  if (long.length) rspFields.push(structure(AD.uuid128Complete, Buffer.concat(long.map(uuidBytes))));
  if (adv.manufacturerData) rspFields.push(structure(AD.manufacturer, Buffer.from(adv.manufacturerData)));
  return { advData: pack(advFields), scanResponse: pack(rspFields) };
}
