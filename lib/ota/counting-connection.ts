/**
 * A BleConnection wrapper that counts the ATT value bytes written through it: FlashResult.bytesOnAir
 * (chunk headers and commands included), whatever protocol client does the writing.
 */
import { EventEmitter } from 'events';
import type { BleConnection, GattServiceInfo } from '../ble/central';

export class CountingConnection extends EventEmitter implements BleConnection {
  bytesWritten = 0;
  writes = 0;

  constructor(readonly inner: BleConnection) {
    super();
    inner.on('disconnect', (reason?: string) => this.emit('disconnect', reason));
  }

  get deviceId(): string {
    return this.inner.deviceId;
  }

  get mtu(): number {
    return this.inner.mtu;
  }

  get connected(): boolean {
    return this.inner.connected;
  }

  discover(): Promise<GattServiceInfo[]> {
    return this.inner.discover();
  }

  read(service: string, characteristic: string): Promise<Buffer> {
    return this.inner.read(service, characteristic);
  }

  write(service: string, characteristic: string, data: Buffer, withoutResponse: boolean): Promise<void> {
    this.bytesWritten += data.length;
    this.writes++;
    return this.inner.write(service, characteristic, data, withoutResponse);
  }

  subscribe(service: string, characteristic: string, onValue: (data: Buffer) => void): Promise<void> {
    return this.inner.subscribe(service, characteristic, onValue);
  }

  disconnect(): Promise<void> {
    return this.inner.disconnect();
  }
}
