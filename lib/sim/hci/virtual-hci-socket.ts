/**
 * The socket object noble's hci.js talks to, with the API of @abandonware/bluetooth-hci-socket (its
 * lib/native.js surface: bindRaw/bindUser/bindControl/start/stop/write/isDevUp/getDeviceList/setFilter,
 * 'data' and 'error' events), wired to a virtual controller instead of a kernel HCI socket.
 */
import { EventEmitter } from 'events';

/** What a virtual controller offers the socket bound to it. */
export interface HciTransport {
  readonly deviceId: number;
  /** The adapter is up (hci.js polls isDevUp every second, hci.js:169-200). */
  isUp(): boolean;
  /** The socket is started: the controller sends its events and ACL data to it from now. */
  open(socket: VirtualHciSocket): void;
  close(socket: VirtualHciSocket): void;
  /** One HCI packet from the host (command or ACL data, packet indicator first). */
  fromHost(packet: Buffer): void;
}

export class VirtualHciSocket extends EventEmitter {
  private bound: 'raw' | 'user' | null = null;
  private started = false;

  constructor(private readonly resolve: (deviceId: number | undefined) => HciTransport) {
    super();
  }

  private transport: HciTransport | null = null;

  bindRaw(deviceId?: number): number {
    return this.bind('raw', deviceId);
  }

  bindUser(deviceId?: number): number {
    return this.bind('user', deviceId);
  }

  bindControl(): void {
    // The management channel is not modelled; noble's hci-socket bindings never use it.
  }

  isDevUp(): boolean {
    return this.transport?.isUp() ?? false;
  }

  getDeviceList(): Array<{ devId: number; devUp: boolean; idVendor: null; idProduct: null; busNumber: null; deviceAddress: null }> {
    const t = this.transport;
    return t ? [{ devId: t.deviceId, devUp: t.isUp(), idVendor: null, idProduct: null, busNumber: null, deviceAddress: null }] : [];
  }

  setFilter(filter: Buffer): void {
    // The kernel filter would pass exactly what noble's filter names (hci.js:243-263); the controller
    // sends nothing else.
    void filter;
  }

  start(): void {
    if (!this.transport || this.started) return;
    this.started = true;
    this.transport.open(this);
  }

  stop(): void {
    if (!this.transport || !this.started) return;
    this.started = false;
    this.transport.close(this);
  }

  write(packet: Buffer): void {
    if (!this.transport || !this.started) {
      // As the native socket: writing to an unbound or stopped socket fails with an error event.
      this.emit('error', errnoError('Bad file descriptor', 'EBADF'));
      return;
    }
    this.transport.fromHost(packet);
  }

  /** Called by the controller: one HCI packet to the host. */
  deliver(packet: Buffer): void {
    if (this.started) this.emit('data', packet);
  }

  private bind(kind: 'raw' | 'user', deviceId?: number): number {
    this.transport = this.resolve(deviceId);
    this.bound = kind;
    return this.transport.deviceId;
  }

  get channel(): 'raw' | 'user' | null {
    return this.bound;
  }
}

/** An error as the native socket reports a failed system call (errno name in `code`, as hci.js checks it). */
export function errnoError(message: string, errno: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message);
  err.code = errno;
  return err;
}
