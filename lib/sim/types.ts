/**
 * Contract between the virtual radio (lib/sim/radio: the air, the link layer and the gateway's virtual
 * HCI controllers noble's own HCI layer drives) and the virtual devices it hosts: the TypeScript model of our firmware (lib/sim/device), the
 * seed-firmware model (legacy protocol), and the C firmware twin (lib/sim/twin, which drives the real
 * firmware core over stdio). The radio owns timing on air; a device owns its flash timing.
 */
import type { Clock } from '../clock';

import type { ChipName } from '../image/chips';

export type { ChipName };

export interface VirtualCharacteristic {
  /** lower-case hex, no dashes */
  uuid: string;
  properties: Array<'read' | 'write' | 'writeWithoutResponse' | 'notify' | 'indicate'>;
}

export interface VirtualService {
  uuid: string;
  characteristics: VirtualCharacteristic[];
}

export interface VirtualAdvertisement {
  /** AD type 0x01 Flags; omitted: the radio's default. */
  flags?: number;
  localName?: string;
  manufacturerData?: Buffer;
  serviceUuids: string[];
  txPowerLevel?: number;
}

/** An ATT-level failure a device returns for a read or a write with response. */
export class AttError extends Error {
  constructor(readonly attCode: number, message: string) {
    super(message);
    this.name = 'AttError';
  }
}

/** What the radio gives a device when it is added. */
export interface PeripheralHost {
  readonly clock: Clock;
  /**
   * Device-side notification on a characteristic; the radio puts it on air in link order.
   * connectionId (optional, see VirtualPeripheral.onConnect): only that connection; omitted: every
   * subscribed connection.
   */
  notify(serviceUuid: string, characteristicUuid: string, data: Buffer, connectionId?: number): void;
  /** The device drops the link (reboot, power loss, timeout); connectionId omitted: every link. */
  dropConnection(reason: string, connectionId?: number): void;
  /**
   * Optional: the device stops transmitting on its links without an LL_TERMINATE_IND (a reset such as
   * esp_restart() inside a GATT callback), so each peer notices by its supervision timeout. Devices
   * call it as `host.loseConnection ?? host.dropConnection`; a radio without it terminates instead.
   */
  loseConnection?(reason: string, connectionId?: number): void;
  /** Advertising data or advertising on/off changed (after reboot, status change). */
  advertisingChanged(): void;
  /**
   * From now, the device's BLE host cannot process anything for durationMs (flash erase/program with the
   * cache disabled stop the NimBLE host task); it may be called again while stalled: stalls add up back
   * to back. Received PDUs wait in the device controller's RX buffers, beyond their count the controller
   * NAKs and the central's link layer retransmits; notifications the device queued wait too.
   */
  hostStall?(durationMs: number): void;
}

export interface VirtualPeripheral {
  readonly address: string;
  readonly name: string;
  attach(host: PeripheralHost): void;
  /** Current advertisement + scan response merged; null while not advertising (rebooting, off, busy). */
  advertisement(): VirtualAdvertisement | null;
  gatt(): VirtualService[];
  /** ATT MTU the device supports (the radio negotiates min(central, device)). */
  readonly maxMtu: number;
  /**
   * connectionId (optional, added for several centrals on one device, e.g. the BUSY case): a radio that
   * lets more than one central connect to a device passes a distinct id per link to onConnect and the
   * same id to onDisconnect/onRead/onWrite/onMtu; a radio with one link per device may omit it (id 0).
   */
  onConnect(mtu: number, connectionId?: number): void;
  onDisconnect(connectionId?: number): void;
  /** Optional: the ATT MTU of a link changed after onConnect (MTU exchange). */
  onMtu?(mtu: number, connectionId?: number): void;
  /** Returns the value or throws AttError. May be async (device work takes clock time). */
  onRead(serviceUuid: string, characteristicUuid: string, connectionId?: number): Buffer | Promise<Buffer>;
  /**
   * A write from the central. For a write with response the returned promise settling is the ATT
   * response (AttError -> error response). Writes without response are fire-and-forget for the radio.
   */
  onWrite(serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean, connectionId?: number): void | Promise<void>;
  /** Fault injection: cut power now (flash kept, RAM lost), then boot again after offMs. */
  powerLoss(offMs: number): void;
  /** Stops the device (process for the twin); no more events. */
  shutdown(): Promise<void>;
}

/** Settings of one simulated device (the Node-RED adapter's "simulated fleet" and the CLI's --sim). */
export interface SimDeviceConfig {
  name: string;
  /** Defaults to a stable address derived from the name. */
  address?: string;
  chip: ChipName;
  /** Version string of the factory image the device starts with, e.g. "1.0.0". */
  version: string;
  secureVersion?: number;
  /** 'v2': our firmware; 'legacy': the seed firmware (shared/seed/seed-protocol.md). */
  protocol?: 'v2' | 'legacy';
  confirmPolicy?: 'auto' | 'host';
  /** Outcome of the first-boot diagnostics of a newly flashed image. */
  diagnostics?: 'pass' | 'fail';
  /**
   * 32-byte per-device session key (NVS `device_key`, PROTOCOL.md §7): when set, BEGIN and every tagged
   * command (ABORT, CONFIRM, ROLLBACK, REBOOT) need the HMAC proof.
   */
  deviceKey?: Buffer;
  /** 32-byte legacy shared key (NVS `fleet_key`); the session key when deviceKey is absent. */
  fleetKey?: Buffer;
  /** Release public keys (65-byte uncompressed SEC1 points, index = manifest key_id, at most 4): BEGIN needs a signed manifest. */
  releaseKeys?: Buffer[];
  /**
   * Development build opt-out (Kconfig BLE_OTA_INSECURE_ALLOW_UNAUTHENTICATED): without keys the device
   * takes updates and commands from anyone. Default false: a device without keys refuses (NOT_PROVISIONED).
   */
  allowUnauthenticated?: boolean;
  /** Provisioning window after every boot (ms; the physical action at reset): PROVISION stores a session key. Default 0 (none). */
  provisioningWindowMs?: number;
  /** Secure boot / signed app verification: an image without a signature block is refused at END (caps bit 5). */
  signedImagesRequired?: boolean;
  /** Lowest manifest release the device accepts at power-on (NVS `rel_floor`, default 0). */
  releaseFloor?: number;
  allowDowngrade?: boolean;
  /** Size of each OTA partition in bytes (default 0x1E0000, 1.875 MiB). */
  otaPartitionSize?: number;
  /** Session kept after a disconnect for this long before it is aborted (ms, default 60000). */
  resumeTimeoutMs?: number;
  maxMtu?: number;
  /** Multiplies flash erase/program times (fault injection: slow flash). */
  flashSlowdown?: number;
  /** 'model' (TypeScript model, default) or 'twin' (the C firmware core over stdio). */
  implementation?: 'model' | 'twin';
}
