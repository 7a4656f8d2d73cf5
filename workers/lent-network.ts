/**
 * The worker's side of a lent network (src/hooks/lent-network.ts): sockets the
 * host opens for the library to the endpoints its `allow-connect` policy lists,
 * datagrams relayed over the library's channel, or a TCP stream relayed in
 * chunks, each acknowledged once delivered so the host reads on.
 */
import { LENT_NETWORK_LIMITS, type LentEndpoint, type NetworkToLibrary, type WorkerMessage } from '../src/hooks/protocol.js';
import type { LentSocket } from './hooks-api.js';

class RelayedSocket implements LentSocket {
  private listeners: ((data: Buffer) => void)[] = [];
  closed = false;

  constructor(
    private readonly id: number,
    private readonly owner: LentNetworkClient,
    private readonly stream: boolean,
  ) {}

  send(data: Uint8Array | string): void {
    if (this.closed) throw new Error('the socket is closed');
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (!this.stream && bytes.length > LENT_NETWORK_LIMITS.datagramBytes) throw new RangeError(`a datagram is at most ${LENT_NETWORK_LIMITS.datagramBytes} bytes`);
    // A stream crosses in chunks no larger than a datagram (the host's schema bounds a message).
    for (let o = 0; o === 0 || o < bytes.length; o += LENT_NETWORK_LIMITS.datagramBytes) {
      this.owner.post({ t: 'net-send', id: this.id, data: bytes.subarray(o, o + LENT_NETWORK_LIMITS.datagramBytes).toString('base64') });
    }
  }

  onMessage(listener: (data: Buffer) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.forget(this.id);
    this.owner.post({ t: 'net-close', id: this.id });
  }

  deliver(data: Buffer): void {
    for (const listener of this.listeners) listener(data);
    if (this.stream && !this.closed) this.owner.post({ t: 'net-ack', id: this.id, bytes: data.length });
  }
}

export class LentNetworkClient {
  private nextId = 1;
  private readonly opening = new Map<number, { socket: RelayedSocket; resolve: (s: LentSocket) => void; reject: (e: Error) => void }>();
  private readonly open = new Map<number, RelayedSocket>();

  constructor(readonly post: (message: WorkerMessage) => void) {}

  connect(endpoint: LentEndpoint): Promise<LentSocket> {
    const id = this.nextId++;
    const socket = new RelayedSocket(id, this, endpoint.protocol === 'tcp');
    return new Promise((resolve, reject) => {
      this.opening.set(id, { socket, resolve, reject });
      this.post({ t: 'net-open', id, endpoint: { address: String(endpoint.address), port: Number(endpoint.port), protocol: endpoint.protocol } });
    });
  }

  forget(id: number): void {
    this.open.delete(id);
  }

  onMessage(message: NetworkToLibrary): void {
    switch (message.t) {
      case 'net-opened': {
        const waiting = this.opening.get(message.id);
        if (!waiting) return;
        this.opening.delete(message.id);
        if (message.error !== undefined) {
          waiting.socket.closed = true;
          waiting.reject(new Error(message.error));
          return;
        }
        this.open.set(message.id, waiting.socket);
        waiting.resolve(waiting.socket);
        return;
      }
      case 'net-datagram':
        this.open.get(message.id)?.deliver(Buffer.from(message.data, 'base64'));
        return;
      case 'net-closed': {
        const socket = this.open.get(message.id);
        if (socket) socket.closed = true;
        this.open.delete(message.id);
        return;
      }
    }
  }
}
