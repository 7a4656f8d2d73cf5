/**
 * A small NCR sender over UDP with Kea's framing (what kea-dhcp4/6 do towards D2).
 * Used by tests and the benchmark; D2 itself never replies to an NCR.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { NameChangeRequest, NcrJsonDialect } from './name-change-request.js';
import { encodeNcr } from './wire.js';

export interface NcrSenderOptions {
  /** D2's address and port. */
  serverAddress: string;
  serverPort: number;
  /** JSON dialect written (default kea-2.6, which every Kea D2 since 2.2 accepts). */
  dialect?: NcrJsonDialect;
}

export class NcrSender {
  private socket: dgram.Socket | undefined;
  private readonly family: 4 | 6;

  constructor(private readonly opts: NcrSenderOptions) {
    const f = isIP(opts.serverAddress);
    if (f === 0) throw new TypeError(`NcrSender: ${JSON.stringify(opts.serverAddress)} is not an IP address`);
    this.family = f as 4 | 6;
  }

  private sock(): dgram.Socket {
    if (!this.socket) {
      this.socket = dgram.createSocket(this.family === 6 ? 'udp6' : 'udp4');
      this.socket.on('error', () => {
        /* send errors are reported through the send callbacks */
      });
    }
    return this.socket;
  }

  /** Send one NCR. */
  send(ncr: NameChangeRequest): Promise<void> {
    return this.sendRaw(encodeNcr(ncr, this.opts.dialect));
  }

  /** Send raw bytes as one datagram (tests use it for malformed frames). */
  sendRaw(datagram: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock().send(datagram, this.opts.serverPort, this.opts.serverAddress, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
