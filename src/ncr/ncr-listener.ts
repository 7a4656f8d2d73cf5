/**
 * The NCR UDP listener (Kea's NameChangeUDPListener): one socket on the
 * configured address and port; every datagram is decoded and ends either in
 * `onNcr` (valid; counted `ncr-received`) or in `onInvalid` (counted
 * `ncr-invalid`, per reason code too). A socket error is `ncr-error`.
 *
 * Bad input never stops or slows it: decoding never throws, a callback that
 * throws is caught and counted, and each distinct reason (code + field) is
 * logged once; after that it is only counted.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest, NcrError, NcrErrorCode } from './name-change-request.js';
import { decodeNcr } from './wire.js';

export interface NcrListenerOptions {
  /** IPv4 or IPv6 address to bind (Kea's `ip-address`, default 127.0.0.1). */
  ipAddress?: string;
  /** Port (Kea's `port`, default 53001); 0 picks a free one. */
  port?: number;
  onNcr: (ncr: NameChangeRequest, from: dgram.RemoteInfo) => void;
  onInvalid?: (error: NcrError, from: dgram.RemoteInfo) => void;
  /** Socket errors after start (start() itself rejects on a bind error). */
  onError?: (err: Error) => void;
  logger?: Logger;
}

export interface NcrListenerCounters {
  /** Valid NCRs handed to onNcr (Kea's `ncr-received`). */
  received: number;
  /** Invalid datagrams (Kea's `ncr-invalid`). */
  invalid: number;
  /** Socket errors (Kea's `ncr-error`). */
  error: number;
  /** Invalid datagrams per reason code. */
  invalidByCode: Record<NcrErrorCode, number>;
  /** Exceptions thrown by the onNcr/onInvalid callbacks (caught; the listener goes on). */
  callbackErrors: number;
}

function zeroByCode(): Record<NcrErrorCode, number> {
  return {
    'short-frame': 0,
    oversize: 0,
    truncated: 0,
    'not-utf8': 0,
    'bad-json': 0,
    'not-a-map': 0,
    'missing-field': 0,
    'wrong-type': 0,
    'bad-value': 0,
    'no-direction': 0,
  };
}

export class NcrListenerError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'NcrListenerError';
  }
}

export class NcrListener {
  private socket: dgram.Socket | undefined;
  private readonly log: Logger;
  private readonly loggedReasons = new Set<string>();
  private readonly counters: NcrListenerCounters = { received: 0, invalid: 0, error: 0, invalidByCode: zeroByCode(), callbackErrors: 0 };
  private loggedCallbackError = false;
  readonly ipAddress: string;
  private readonly requestedPort: number;

  constructor(private readonly opts: NcrListenerOptions) {
    this.ipAddress = opts.ipAddress ?? '127.0.0.1';
    this.requestedPort = opts.port ?? 53001;
    this.log = opts.logger ?? new Logger('d2box-ncr');
  }

  get listening(): boolean {
    return this.socket !== undefined;
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return this.socket?.address().port ?? this.requestedPort;
  }

  /** A copy of the counters. */
  stats(): NcrListenerCounters {
    return { ...this.counters, invalidByCode: { ...this.counters.invalidByCode } };
  }

  /** Bind and start receiving. Rejects with an NcrListenerError naming address, port and cause. */
  async start(): Promise<void> {
    if (this.socket) throw new NcrListenerError('NCR listener already started', 'ERR_ALREADY_STARTED');
    const family = isIP(this.ipAddress);
    if (family === 0) throw new NcrListenerError(`NCR listener: ip-address ${JSON.stringify(this.ipAddress)} is not an IPv4 or IPv6 address`, 'EINVAL');
    if (!Number.isInteger(this.requestedPort) || this.requestedPort < 0 || this.requestedPort > 65535) {
      throw new NcrListenerError(`NCR listener: port ${this.requestedPort} is out of range`, 'EINVAL');
    }
    const sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 });
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: NodeJS.ErrnoException): void => {
        sock.removeListener('listening', onListening);
        try {
          sock.close();
        } catch {
          /* already closed */
        }
        reject(new NcrListenerError(`NCR listener cannot bind ${this.where()}: ${err.code ?? ''} ${err.message}`.trim(), err.code));
      };
      const onListening = (): void => {
        sock.removeListener('error', onErr);
        resolve();
      };
      sock.once('error', onErr);
      sock.once('listening', onListening);
      sock.bind({ address: this.ipAddress, port: this.requestedPort, exclusive: true });
    });
    sock.on('error', (err) => {
      this.counters.error++;
      this.log.error('DHCP_DDNS_NCR_UDP_RECV_ERROR', `NCR listener on ${this.where()}: ${err.message}`);
      this.opts.onError?.(err);
    });
    sock.on('message', (msg, rinfo) => this.handle(msg, rinfo));
    this.socket = sock;
    this.log.info('D2BOX_NCR_LISTENING', `listening for NCRs on ${this.where()}`);
  }

  /** Stop receiving and close the socket. Safe to call twice. */
  async stop(): Promise<void> {
    const sock = this.socket;
    if (!sock) return;
    this.socket = undefined;
    await new Promise<void>((resolve) => {
      try {
        sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private where(): string {
    const a = this.ipAddress.includes(':') ? `[${this.ipAddress}]` : this.ipAddress;
    return `${a}:${this.socket ? this.port : this.requestedPort}`;
  }

  /** Decode one datagram and account for it. Public for tests and embedding; never throws. */
  handle(msg: Uint8Array, rinfo: dgram.RemoteInfo): void {
    const r = decodeNcr(msg);
    if (r.ok) {
      this.counters.received++;
      try {
        this.opts.onNcr(r.ncr, rinfo);
      } catch (e) {
        this.callbackFailed(e);
      }
      return;
    }
    this.counters.invalid++;
    this.counters.invalidByCode[r.code]++;
    const key = r.field === undefined ? r.code : `${r.code}:${r.field}`;
    if (!this.loggedReasons.has(key)) {
      this.loggedReasons.add(key);
      this.log.error(
        'DHCP_DDNS_INVALID_NCR',
        `invalid NCR from ${rinfo.address}:${rinfo.port}: ${r.reason} (further NCRs invalid for this reason are only counted)`,
      );
    }
    if (this.opts.onInvalid) {
      try {
        this.opts.onInvalid({ code: r.code, ...(r.field ? { field: r.field } : {}), reason: r.reason }, rinfo);
      } catch (e) {
        this.callbackFailed(e);
      }
    }
  }

  private callbackFailed(e: unknown): void {
    this.counters.callbackErrors++;
    if (!this.loggedCallbackError) {
      this.loggedCallbackError = true;
      this.log.error('D2BOX_NCR_HANDLER_FAILED', `NCR handler threw (logged once, then counted): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
