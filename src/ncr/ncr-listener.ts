/**
 * The NCR UDP listener (Kea's NameChangeUDPListener): one socket on the
 * configured address and port; every datagram is decoded and ends either in
 * `onNcr` (valid; counted `ncr-received`) or in `onInvalid` (counted
 * `ncr-invalid`, per reason code too). A socket error is `ncr-error`.
 *
 * Bad input never stops or slows it: decoding never throws, a callback that
 * throws is caught and counted, and each distinct reason (code + field) is
 * logged once; after that it is only counted.
 *
 * A burst must not be lost before it is read: the socket's receive buffer is
 * asked for on purpose (`receiveBufferBytes`), the start-up log says what the
 * kernel granted and when `net.core.rmem_max` capped it, in NCRs; and what the
 * kernel still drops is read from procfs once a second and reported
 * (`onKernelDrops`), so the loss Kea hides is counted.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { NcrReaderMessage, NcrReaderSetup } from '../hooks/protocol.js';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest, NcrError, NcrErrorCode } from './name-change-request.js';
import { describeReceiveBuffer, readRmemMax, readUdpDrops } from './ncr-socket-buffer.js';
import { decodeNcr } from './wire.js';

/** How often the kernel's drop count is read: often enough for an operator, cheap for the loop (one procfs read). */
const KERNEL_DROPS_POLL_MS = 1_000;

export interface NcrListenerOptions {
  /** IPv4 or IPv6 address to bind (Kea's `ip-address`, default 127.0.0.1). */
  ipAddress?: string;
  /** Port (Kea's `port`, default 53001); 0 picks a free one. */
  port?: number;
  onNcr: (ncr: NameChangeRequest, from: dgram.RemoteInfo) => void;
  onInvalid?: (error: NcrError, from: dgram.RemoteInfo) => void;
  /** Socket errors after start (start() itself rejects on a bind error). */
  onError?: (err: Error) => void;
  /** Read the socket in a thread of its own (workers/ncr-socket-reader.ts): a busy main loop then delays NCRs, never loses them. */
  readerThread?: boolean;
  /** SO_RCVBUF to ask for (bytes); unset keeps the system default. */
  receiveBufferBytes?: number;
  /** Datagrams the kernel dropped at this socket since the last call (a buffer that overflowed). */
  onKernelDrops?: (dropped: number) => void;
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
  private dropsTimer: NodeJS.Timeout | undefined;
  /** With `readerThread`: the thread that owns the socket, and the port it bound. */
  private reader: Worker | undefined;
  private readerPort = 0;
  /** The kernel's drop count at this socket when last read. */
  private dropsSeen = 0;

  constructor(private readonly opts: NcrListenerOptions) {
    this.ipAddress = opts.ipAddress ?? '127.0.0.1';
    this.requestedPort = opts.port ?? 53001;
    this.log = opts.logger ?? new Logger('d2box-ncr');
  }

  get listening(): boolean {
    return this.socket !== undefined || this.reader !== undefined;
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    if (this.reader) return this.readerPort;
    return this.socket?.address().port ?? this.requestedPort;
  }

  /** A copy of the counters. */
  stats(): NcrListenerCounters {
    return { ...this.counters, invalidByCode: { ...this.counters.invalidByCode } };
  }

  /** Bind and start receiving. Rejects with an NcrListenerError naming address, port and cause. */
  async start(): Promise<void> {
    if (this.listening) throw new NcrListenerError('NCR listener already started', 'ERR_ALREADY_STARTED');
    const family = isIP(this.ipAddress);
    if (family === 0) throw new NcrListenerError(`NCR listener: ip-address ${JSON.stringify(this.ipAddress)} is not an IPv4 or IPv6 address`, 'EINVAL');
    if (!Number.isInteger(this.requestedPort) || this.requestedPort < 0 || this.requestedPort > 65535) {
      throw new NcrListenerError(`NCR listener: port ${this.requestedPort} is out of range`, 'EINVAL');
    }
    if (this.opts.readerThread) return this.startReader(family as 4 | 6);
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
    this.listened();
  }

  private listened(): void {
    this.log.info('D2BOX_NCR_LISTENING', `listening for NCRs on ${this.where()}${this.reader ? ' (read in a thread of its own)' : ''}`);
    if (this.opts.receiveBufferBytes !== undefined && !this.reader) this.setReceiveBuffer(this.opts.receiveBufferBytes);
    if (this.opts.onKernelDrops) {
      this.dropsTimer = setInterval(() => void this.pollKernelDrops(), KERNEL_DROPS_POLL_MS);
      this.dropsTimer.unref();
    }
  }

  /** The socket in a thread of its own: bound there, its datagrams handled here as if read here. */
  private async startReader(family: 4 | 6): Promise<void> {
    const here = import.meta.url;
    const ts = here.endsWith('.ts');
    const setup: NcrReaderSetup = { address: this.ipAddress, port: this.requestedPort, family, receiveBufferBytes: this.opts.receiveBufferBytes };
    // A reader holds datagrams only until the next turn of its loop: a small heap is plenty.
    // Run from sources (tests, dev), the thread is the built one: a worker's entry gets no TypeScript loader.
    const file = new URL(ts ? '../../dist/workers/ncr-socket-reader.js' : '../../workers/ncr-socket-reader.js', here);
    const worker = new Worker(file, { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 }, workerData: setup });
    const first = await new Promise<NcrReaderMessage>((resolve) => {
      worker.once('message', (m: NcrReaderMessage) => resolve(m));
      worker.once('error', (e) => resolve({ type: 'bind-error', code: undefined, message: e.message }));
    });
    if (first.type !== 'listening') {
      await worker.terminate();
      const why = first.type === 'bind-error' ? first : { code: undefined, message: 'the reader thread did not start' };
      throw new NcrListenerError(`NCR listener cannot bind ${this.where()}: ${why.code ?? ''} ${why.message}`.trim(), why.code);
    }
    this.reader = worker;
    this.readerPort = first.port;
    worker.on('message', (m: NcrReaderMessage) => {
      if (m.type === 'datagrams') {
        for (let i = 0; i < m.datagrams.length; i++) {
          const [address, port] = m.from[i]!;
          this.handle(m.datagrams[i]!, { address, port, family: family === 6 ? 'IPv6' : 'IPv4', size: m.datagrams[i]!.length });
        }
      } else if (m.type === 'socket-error') {
        this.counters.error++;
        this.log.error('DHCP_DDNS_NCR_UDP_RECV_ERROR', `NCR listener on ${this.where()}: ${m.message}`);
        this.opts.onError?.(new Error(m.message));
      } else if (m.type === 'recv-buffer') {
        this.receiveBufferSet(this.askedBuffer, m.granted, m.error);
      }
    });
    worker.on('error', (e) => {
      this.counters.error++;
      this.log.error('DHCP_DDNS_NCR_UDP_RECV_ERROR', `NCR reader thread on ${this.where()} failed: ${e.message}`);
      this.opts.onError?.(e);
    });
    this.listened();
    // The thread set the buffer before it said it listens: logged now, before start() resolves.
    if (this.opts.receiveBufferBytes !== undefined && first.recvBuffer) {
      this.askedBuffer = this.opts.receiveBufferBytes;
      this.receiveBufferSet(this.askedBuffer, first.recvBuffer.granted, first.recvBuffer.error);
    }
  }

  private askedBuffer = 0;

  /** Asks the kernel for a receive buffer of `bytes` and logs what it granted (a warning when rmem_max capped it). */
  setReceiveBuffer(bytes: number): void {
    this.askedBuffer = bytes;
    if (this.reader) {
      this.reader.postMessage({ type: 'recv-buffer', bytes });
      return;
    }
    const sock = this.socket;
    if (!sock) return;
    try {
      sock.setRecvBufferSize(bytes);
      this.receiveBufferSet(bytes, sock.getRecvBufferSize(), undefined);
    } catch (e) {
      this.receiveBufferSet(bytes, undefined, (e as Error).message);
    }
  }

  private receiveBufferSet(bytes: number, granted: number | undefined, error: string | undefined): void {
    if (error !== undefined) {
      this.log.warn('D2BOX_NCR_RECV_BUFFER_FAILED', `NCR listener on ${this.where()}: cannot set the receive buffer to ${bytes} bytes: ${error}`);
      return;
    }
    const { capped, text } = describeReceiveBuffer(bytes, granted, readRmemMax());
    if (capped) this.log.warn('D2BOX_NCR_RECV_BUFFER_CAPPED', `${this.where()}: ${text}`);
    else this.log.info('D2BOX_NCR_RECV_BUFFER', `${this.where()}: ${text}`);
  }

  /** Reads the kernel's drop count now and reports what is new (also done once a second). */
  async pollKernelDrops(): Promise<void> {
    if (!this.listening || !this.opts.onKernelDrops) return;
    const total = await readUdpDrops(this.ipAddress, this.port);
    if (total === undefined || total <= this.dropsSeen) return;
    const fresh = total - this.dropsSeen;
    this.dropsSeen = total;
    try {
      this.opts.onKernelDrops(fresh);
    } catch (e) {
      this.callbackFailed(e);
    }
  }

  /** Stop receiving and close the socket. Safe to call twice. */
  async stop(): Promise<void> {
    const sock = this.socket;
    if (!sock && !this.reader) return;
    if (this.dropsTimer) clearInterval(this.dropsTimer);
    this.dropsTimer = undefined;
    // What the kernel dropped since the last poll is counted before the socket (and its row in procfs) goes.
    await this.pollKernelDrops();
    const reader = this.reader;
    if (reader) {
      this.reader = undefined;
      const exited = new Promise<void>((resolve) => reader.once('exit', () => resolve()));
      reader.postMessage({ type: 'close' });
      // The thread ends once its socket is closed; terminate() only if it does not within the bound.
      const t = setTimeout(() => void reader.terminate(), 5_000);
      await exited;
      clearTimeout(t);
      return;
    }
    this.socket = undefined;
    await new Promise<void>((resolve) => {
      try {
        sock!.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private where(): string {
    const a = this.ipAddress.includes(':') ? `[${this.ipAddress}]` : this.ipAddress;
    return `${a}:${this.listening ? this.port : this.requestedPort}`;
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
