/**
 * ProtocolSession for devices running the seed firmware, on lib/protocol's LegacyClient. The seed has
 * no status, no resume and no deflate: every attempt sends the image from 0; the device's facts are
 * what its Device Information service says (the seed reports "ESP32" whatever the chip, so the chip
 * stays unknown and the chip check is left to esp_ota_end).
 */
import type { BleConnection } from '../ble/central';
import { LegacyClient } from '../protocol/legacy-client';
import type { DeviceFacts, ProtocolSession, TransferOutcome, TransferRequest } from './protocol-session';
import type { SessionContext } from './protocols';
import { readDeviceInfo } from './protocols';

export class LegacySession implements ProtocolSession {
  readonly protocol = 'legacy' as const;
  private readonly client: LegacyClient;
  private progress: ((imageBytes: number) => void) | null = null;

  constructor(private readonly link: BleConnection, ctx: SessionContext, serviceUuid: string) {
    this.client = new LegacyClient(link, {
      clock: ctx.clock,
      signal: ctx.signal,
      serviceUuid,
      partitionSize: ctx.legacyPartitionSize,
      onProgress: (p) => this.progress?.(p.bytesDone),
    });
  }

  open(): Promise<void> {
    return this.client.open();
  }

  async deviceFacts(): Promise<DeviceFacts> {
    const { info } = await readDeviceInfo(this.link);
    return {
      chip: null,
      version: null,
      secureVersion: null,
      state: 'undefined',
      runningSha256: null,
      projectName: null,
      deflate: false,
      delta: false,
      resume: false,
      fleetKeyRequired: false,
      security: null,
      raw: { ...info },
    };
  }

  async transfer(request: TransferRequest): Promise<TransferOutcome> {
    this.progress = request.onProgress;
    try {
      request.onTransferStart?.(0);
      await this.client.update(request.image);
      return { resumedFrom: 0 };
    } finally {
      this.progress = null;
      this.client.close();
    }
  }
}
