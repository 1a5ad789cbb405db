/**
 * An aedes MQTT broker on 127.0.0.1 for the plant tests: a random port, or a given one (to restart a broker
 * where clients expect it), and the server-side connection of each client so that a test can cut one as a
 * network loss would (the broker then publishes its will).
 */
import * as net from 'net';
import type { Aedes, AedesOptions } from 'aedes';

export interface TestBroker {
  readonly port: number;
  readonly url: string;
  readonly aedes: Aedes;
  /** Destroys the broker's socket of this client (no DISCONNECT): the broker sees a lost connection. */
  cut(clientId: string): void;
  /** Stops listening, drops every connection, closes aedes. */
  close(): Promise<void>;
}

export async function startAedes(port = 0, options: AedesOptions = {}): Promise<TestBroker> {
  // aedes is an ES module; Node 20 requires it synchronously.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Aedes: AedesClass } = require('aedes') as { Aedes: typeof Aedes };
  const aedes = await AedesClass.createBroker(options);
  const sockets = new Set<net.Socket>();
  const byClient = new Map<string, net.Socket>();
  aedes.on('client', (client) => {
    if (client.conn instanceof net.Socket) byClient.set(client.id, client.conn);
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as net.AddressInfo).port;
  return {
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    aedes,
    cut(clientId) {
      const socket = byClient.get(clientId);
      if (!socket) throw new Error(`no connection of ${clientId} on the test broker`);
      socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => aedes.close(() => resolve()));
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
