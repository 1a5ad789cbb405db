/**
 * The attribute table of a NimBLE peripheral, laid out as ble_gatts registers it (espressif/esp-nimble
 * nimble-1.6.0-idf, nimble/host/src/ble_gatts.c):
 * - handles count from 1 in registration order (ble_att_svr.c:106-111 ble_att_svr_next_id);
 * - per service: the service declaration 0x2800 whose value is the service UUID (ble_gatts.c:1282,
 *   187-208); per characteristic: the declaration 0x2803 = properties, value handle, UUID
 *   (ble_gatts.c:1155, 296-364), the value right after it (1165-1171), then a CCCD 0x2902 when the
 *   characteristic notifies or indicates (1186-1192, 246-259);
 * - a service's group ends at the last handle registered for it (ble_gatts.c:1355).
 * Both firmwares call ble_svc_gap_init() and ble_svc_gatt_init() before adding their services (seed:
 * esp/main/gatt_svr.c:277-281; ours: firmware/components/ble_ota/nimble/ble_ota.c), so the GAP service
 * (ble_svc_gap.c:56-110: Device Name, Appearance with ESP-IDF's default Kconfig: no PPCP, no Central
 * Address Resolution, neither writable) and the GATT service (ble_svc_gatt.c:58-98: Service Changed,
 * Server and Client Supported Features; no Database Hash as GATT caching is off by default) come first.
 * UUIDs go on the wire little-endian, 2 bytes for 16-bit UUIDs and 16 for 128-bit ones (ble_uuid_flat).
 */
import type { VirtualCharacteristic, VirtualService } from '../types';
import { GattType } from './att-codes';

export type AttributeKind = 'service' | 'characteristic' | 'value' | 'cccd';

/** Value of a characteristic the stack itself serves (GAP and GATT services). */
export interface BuiltinValue {
  read?: () => Buffer;
  /** Returns 0 or an ATT error code. */
  write?: (data: Buffer) => number;
}

export interface Attribute {
  handle: number;
  kind: AttributeKind;
  /** Attribute type as on the wire: 2 or 16 bytes. */
  type: Buffer;
  /** BLE_ATT_F_READ / BLE_ATT_F_WRITE (ble_gatts.c:262-293; declarations are read-only; the CCCD both, ble_gatts.c:30). */
  readable: boolean;
  writable: boolean;
  /** UUID (lower-case hex, no dashes) of the service the attribute belongs to. */
  serviceUuid: string;
  /** Declarations: their fixed value. */
  value?: Buffer;
  /** Characteristic declarations, values and CCCDs: the characteristic. */
  characteristic?: VirtualCharacteristic;
  /** Characteristic values of the GAP/GATT services: served by the stack, not by the device. */
  builtin?: BuiltinValue;
  /** Service declarations: last handle of the group. */
  groupEnd?: number;
}

/** BLE_GATT_CHR_PROP_* bits (ble_gatts.c:296-330). */
const PROPERTY_BITS: Record<VirtualCharacteristic['properties'][number], number> = {
  read: 0x02,
  writeWithoutResponse: 0x04,
  write: 0x08,
  notify: 0x10,
  indicate: 0x20,
};

export const GAP_SERVICE_UUID = '1800';
export const GATT_SERVICE_UUID = '1801';
const DEVICE_NAME_UUID = '2a00';
const APPEARANCE_UUID = '2a01';
const SERVICE_CHANGED_UUID = '2a05';
const SERVER_FEATURES_UUID = '2b3a';
const CLIENT_FEATURES_UUID = '2b29';
/** CONFIG_BT_NIMBLE_GAP_DEVICE_NAME_MAX_LEN default (esp-idf components/bt/host/nimble/Kconfig.in). */
const DEVICE_NAME_MAX = 31;
/** BLE_GATT_CHR_CLI_SUP_FEAT_MASK (ble_gatt_priv.h:98). */
const CLIENT_FEATURES_MASK = 0x07;
const ATT_ERR_VALUE_NOT_ALLOWED = 0x13;

/** On-the-wire bytes of a UUID given as hex (4 or 32 digits, dashes ignored). */
export function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '').toLowerCase();
  if (!/^([0-9a-f]{4}|[0-9a-f]{32})$/.test(hex)) throw new Error(`UUID ${uuid}: expected 4 or 32 hex digits`);
  return Buffer.from(hex, 'hex').reverse();
}

/** The hex form of on-the-wire UUID bytes. */
export function uuidHex(bytes: Buffer): string {
  return Buffer.from(bytes).reverse().toString('hex');
}

export function uuid16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value, 0);
  return b;
}

/** NimBLE's ble_uuid_cmp: same type (length) and same bytes. */
export function sameUuid(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.equals(b);
}

export function isUuid16(type: Buffer, value: number): boolean {
  return type.length === 2 && type.readUInt16LE(0) === value;
}

export function propertiesByte(c: VirtualCharacteristic): number {
  let p = 0;
  for (const name of c.properties) p |= PROPERTY_BITS[name];
  return p;
}

export function notifies(c: VirtualCharacteristic): boolean {
  return c.properties.includes('notify');
}

export function indicates(c: VirtualCharacteristic): boolean {
  return c.properties.includes('indicate');
}

export interface AttDatabaseOptions {
  /** GAP Device Name value (ble_svc_gap_device_name_set; a name over 31 bytes is refused: "nimble" stays). */
  deviceName: string;
  /** Register the GAP and GATT services first (default true, as both firmwares do). */
  standardServices?: boolean;
}

/** Per-connection state of the built-in characteristics (Client Supported Features). */
export interface BuiltinConnectionState {
  clientFeatures: number;
}

export class AttDatabase {
  readonly attributes: Attribute[] = [];
  private readonly byHandle = new Map<number, Attribute>();

  constructor(services: VirtualService[], o: AttDatabaseOptions, conn: BuiltinConnectionState) {
    if (o.standardServices !== false) {
      this.addStandardServices(o.deviceName, conn);
    }
    for (const s of services) this.addService(s.uuid, s.characteristics);
  }

  at(handle: number): Attribute | undefined {
    return this.byHandle.get(handle);
  }

  /** The value attribute of a characteristic. */
  valueOf(serviceUuid: string, characteristicUuid: string): Attribute | undefined {
    const s = serviceUuid.toLowerCase();
    const c = characteristicUuid.toLowerCase();
    return this.attributes.find((a) => a.kind === 'value' && a.serviceUuid === s && a.characteristic?.uuid === c);
  }

  private addStandardServices(name: string, conn: BuiltinConnectionState): void {
    const deviceName = Buffer.byteLength(name, 'utf8') > DEVICE_NAME_MAX ? 'nimble' : name;
    this.addService(
      GAP_SERVICE_UUID,
      [
        { uuid: DEVICE_NAME_UUID, properties: ['read'] },
        { uuid: APPEARANCE_UUID, properties: ['read'] },
      ],
      {
        [DEVICE_NAME_UUID]: { read: () => Buffer.from(deviceName, 'utf8') },
        // CONFIG_BT_NIMBLE_SVC_GAP_APPEARANCE default 0 (ble_svc_gap.c:152-161).
        [APPEARANCE_UUID]: { read: () => Buffer.from([0, 0]) },
      },
    );
    this.addService(
      GATT_SERVICE_UUID,
      [
        { uuid: SERVICE_CHANGED_UUID, properties: ['indicate'] },
        { uuid: SERVER_FEATURES_UUID, properties: ['read'] },
        { uuid: CLIENT_FEATURES_UUID, properties: ['read', 'write'] },
      ],
      {
        [SERVICE_CHANGED_UUID]: {},
        // ble_svc_gatt.c:101-111: one byte, no EATT.
        [SERVER_FEATURES_UUID]: { read: () => Buffer.from([0]) },
        // ble_svc_gatt.c:113-133 and ble_gatts.c:2196-2249: RFU bits cleared, enabled bits cannot be cleared.
        [CLIENT_FEATURES_UUID]: {
          read: () => Buffer.from([conn.clientFeatures]),
          write: (data) => {
            const feat = data.length > 0 ? data[0] & CLIENT_FEATURES_MASK : 0;
            if ((conn.clientFeatures & feat) !== conn.clientFeatures) return ATT_ERR_VALUE_NOT_ALLOWED;
            conn.clientFeatures = feat;
            return 0;
          },
        },
      },
    );
  }

  private addService(serviceUuid: string, characteristics: VirtualCharacteristic[], builtins?: Record<string, BuiltinValue>): void {
    const serviceId = serviceUuid.toLowerCase();
    const declaration = this.add({
      kind: 'service',
      type: uuid16(GattType.PRIMARY_SERVICE),
      readable: true,
      writable: false,
      serviceUuid: serviceId,
      value: uuidBytes(serviceId),
    });
    for (const c of characteristics) {
      const characteristic: VirtualCharacteristic = { uuid: c.uuid.toLowerCase(), properties: [...c.properties] };
      const valueHandle = this.attributes.length + 2;
      const declValue = Buffer.concat([Buffer.from([propertiesByte(characteristic)]), uuid16(valueHandle), uuidBytes(characteristic.uuid)]);
      this.add({ kind: 'characteristic', type: uuid16(GattType.CHARACTERISTIC), readable: true, writable: false, serviceUuid: serviceId, value: declValue, characteristic });
      const p = characteristic.properties;
      this.add({
        kind: 'value',
        type: uuidBytes(characteristic.uuid),
        readable: p.includes('read'),
        writable: p.includes('write') || p.includes('writeWithoutResponse'),
        serviceUuid: serviceId,
        characteristic,
        builtin: builtins?.[characteristic.uuid],
      });
      if (notifies(characteristic) || indicates(characteristic)) {
        this.add({ kind: 'cccd', type: uuid16(GattType.CCCD), readable: true, writable: true, serviceUuid: serviceId, characteristic });
      }
    }
    declaration.groupEnd = this.attributes.length;
  }

  private add(a: Omit<Attribute, 'handle'>): Attribute {
    const attribute: Attribute = { handle: this.attributes.length + 1, ...a };
    this.attributes.push(attribute);
    this.byHandle.set(attribute.handle, attribute);
    return attribute;
  }
}
