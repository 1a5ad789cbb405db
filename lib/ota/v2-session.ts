/** ProtocolSession on lib/protocol's V2Client: Status for the facts, BEGIN (resume) / data / END. */
import type { BleConnection } from '../ble/central';
import { prepareTransferPayload } from '../protocol/payload';
import { V2Client } from '../protocol/v2-client';
import { OtaError } from '../errors';
import type { DeviceFacts, ProtocolSession, TransferOutcome, TransferRequest } from './protocol-session';
import type { SessionContext } from './protocols';

export class V2Session implements ProtocolSession {
  readonly protocol = 'v2' as const;
  private readonly client: V2Client;
  private progress: ((imageBytes: number) => void) | null = null;

  constructor(link: BleConnection, ctx: SessionContext) {
    this.client = new V2Client(link, {
      clock: ctx.clock,
      fleetKey: ctx.fleetKey,
      signal: ctx.signal,
      beforeBurst: ctx.beforeBurst,
      onProgress: (p) => this.progress?.(p.bytesDone),
    });
  }

  open(): Promise<void> {
    return this.client.open();
  }

  async deviceFacts(): Promise<DeviceFacts> {
    const s = await this.client.readStatus();
    return {
      chip: s.chip,
      version: s.appVersion || null,
      secureVersion: s.secureVersion,
      state: s.otaStateName,
      runningSha256: s.runningSha256,
      projectName: s.projectName || null,
      deflate: s.capabilities.deflate,
      delta: s.capabilities.delta,
      resume: s.capabilities.resume,
      fleetKeyRequired: s.capabilities.fleetKeyRequired,
      security: {
        caps: s.caps,
        chipId: s.chipId,
        updatePartitionSize: s.updatePartitionSize,
        releaseFloor: s.releaseFloor,
        deviceId: s.deviceId ?? null,
        releaseKeyIds: s.releaseKeyIds,
      },
      raw: s as unknown as Record<string, unknown>,
    };
  }

  setSessionKey(key: Buffer | undefined): void {
    this.client.setSessionKey(key);
  }

  stageManifest(manifest: Buffer): Promise<boolean> {
    return this.client.sendManifest(manifest);
  }

  async transfer(request: TransferRequest): Promise<TransferOutcome> {
    // Deflate output is cached per image by lib/protocol, so every attempt sends the same stream.
    const payload = request.payload ?? prepareTransferPayload(request.image, request.encoding === 'delta' ? 'deflate' : request.encoding, this.client.deviceCaps ?? 0xffff);
    if (request.encoding === 'delta' && payload.encoding !== 'delta') throw new OtaError('INTERNAL', 'a delta transfer was asked for without its prepared payload');
    this.progress = request.onProgress;
    try {
      const info = await this.client.begin({ image: request.image, payload, resume: request.resume, ...(request.manifest ? { manifest: request.manifest } : {}) });
      const resumedFrom = Math.round((info.resumeOffset * info.imageSize) / info.transferSize);
      request.onTransferStart?.(resumedFrom);
      await this.client.transfer();
      await this.client.end({ reboot: request.reboot });
      return { resumedFrom };
    } finally {
      this.progress = null;
      this.client.close();
    }
  }

  confirm(): Promise<void> {
    return this.client.confirm();
  }

  rollback(): Promise<void> {
    return this.client.rollback();
  }
}
