/**
 * Sends DNS UPDATEs over UDP to one server at a time and waits for the answer,
 * as Kea's DNSClient: one attempt per call, bounded by `dns-server-timeout`;
 * fail-over across servers is the caller's business.
 *
 * - One socket per address family per client, reused; many updates may be in
 *   flight at once, each with a unique message ID, matched by ID and by the
 *   server's address and port. Datagrams from anywhere else are ignored
 *   (counted in `stats.stray`).
 * - A signed request needs a signed answer that verifies with the request MAC;
 *   an unsigned or badly signed answer is a `tsig-error` (Kea treats it as an
 *   invalid response).
 * - `update()` never rejects: it resolves to an outcome. The receive path never
 *   throws. One timer serves every update in flight, cleared when none is; `close()` settles
 *   whatever is in flight as `stopped` and closes the sockets. Sockets are
 *   unref'd, so an idle client does not keep the process alive.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Rcode, rcodeToText } from './codes.js';
import { DnsError, type DnsErrorKind } from './errors.js';
import { decodeMessage, encodeMessage, scanUpdateResponse, type DecodedMessage, type Message } from './message.js';
import { TsigContext, type TsigKey } from './tsig.js';
import { HeldTsigContext, HeldTsigKey } from './held-tsig-key.js';
import { D2UpdateMessage, validateUpdateResponse } from './update-message.js';

/** Kea's default dns-server-timeout, milliseconds. */
export const DEFAULT_DNS_SERVER_TIMEOUT = 500;
/** Kea's upper bound: the largest int. */
export const MAX_DNS_SERVER_TIMEOUT = 2 ** 31 - 1;

export interface DnsServerAddress {
  address: string;
  port: number;
}

export interface UpdateOptions {
  /** Sign with this key and require a verified signed answer (a held key: its holder makes and checks the MACs). */
  key?: TsigKey | HeldTsigKey | null;
  /** Milliseconds; defaults to the client's timeout. */
  timeoutMs?: number;
}

export type DnsUpdateOutcome =
  | {
      status: 'success';
      /** Header RCODE of the answer (NOERROR, YXDOMAIN, NXRRSET, REFUSED, ...). */
      rcode: number;
      response: DecodedMessage;
      id: number;
      signed: boolean;
    }
  | {
      status: Exclude<DnsErrorKind, 'invalid-argument'> | 'invalid-request';
      error: DnsError;
      id: number;
      /** For `tsig-error`: the TSIG error (BADSIG, BADKEY, BADTIME, BADTRUNC) or FORMERR when unsigned. */
      tsigError?: number;
      /** The decoded answer, when there was one. */
      response?: DecodedMessage;
    };

/** Counters with Kea's meanings (update-sent, -signed, -unsigned, -success, -timeout, -error). */
export interface DnsClientStats {
  sent: number;
  signed: number;
  unsigned: number;
  success: number;
  timeout: number;
  error: number;
  /** Datagrams that matched no request in flight (wrong ID or source): ignored. */
  stray: number;
}

interface Pending {
  id: number;
  family: 4 | 6;
  address: string;
  port: number;
  context: TsigContext | undefined;
  /** Set instead of `context` for a held key: the answer is checked asynchronously, by the key's holder. */
  held?: HeldTsigContext;
  /** performance.now() after which the update has timed out. */
  deadline: number;
  timeoutMs: number;
  resolve: (o: DnsUpdateOutcome) => void;
}

const MAX_IN_FLIGHT = 0x10000;

/**
 * The updates in flight by message ID: one slot per possible ID (allocated on
 * first use and kept), not a Map. A Map's table is replaced as entries come and
 * go, and the table it leaves behind, already in the old generation, still
 * points at the updates that were in flight then: until the next full GC every
 * young object those updates reach (their transaction, its names, messages and
 * answers) is kept by each scavenge and promoted. A slot is overwritten or
 * cleared in place, so nothing stale points at a finished update.
 */
class PendingTable {
  private slots: (Pending | undefined)[] | undefined;
  size = 0;

  get(id: number): Pending | undefined {
    return this.slots?.[id];
  }

  has(id: number): boolean {
    return this.slots?.[id] !== undefined;
  }

  set(id: number, p: Pending): void {
    const slots = (this.slots ??= new Array<Pending | undefined>(MAX_IN_FLIGHT).fill(undefined));
    if (slots[id] === undefined) this.size++;
    slots[id] = p;
  }

  delete(id: number): void {
    const slots = this.slots;
    if (slots?.[id] === undefined) return;
    slots[id] = undefined;
    this.size--;
  }

  /** The updates in flight, in ID order (a copy: callers may settle them while going through it). */
  values(): Pending[] {
    const out: Pending[] = [];
    const slots = this.slots;
    if (!slots || this.size === 0) return out;
    for (let i = 0; i < slots.length && out.length < this.size; i++) {
      const p = slots[i];
      if (p !== undefined) out.push(p);
    }
    return out;
  }
}

/** A success whose answer is decoded (as decodeMessage does) on first access to `response`. */
class ScannedSuccess {
  readonly status = 'success' as const;
  private decoded: DecodedMessage | undefined;
  constructor(
    readonly rcode: number,
    private readonly wire: Buffer,
    readonly id: number,
    readonly signed: boolean,
  ) {}

  get response(): DecodedMessage {
    if (!this.decoded) {
      const d = decodeMessage(this.wire);
      if (!d.ok) throw d.error; // unreachable: the scan accepts only what the decoder accepts
      this.decoded = d.value;
    }
    return this.decoded;
  }

  toJSON(): object {
    return { status: this.status, rcode: this.rcode, response: this.response, id: this.id, signed: this.signed };
  }
}

function invalidOutcome(text: string, kind: 'invalid-request' | 'stopped' = 'invalid-request'): Promise<DnsUpdateOutcome> {
  return Promise.resolve({ status: kind, error: new DnsError(kind === 'invalid-request' ? 'invalid-argument' : kind, text), id: -1 });
}

/** Compare IPv4 addresses also when a dual-stack socket reports them mapped. */
function sameAddress(a: string, b: string): boolean {
  const strip = (s: string) => (s.toLowerCase().startsWith('::ffff:') && isIP(s.slice(7)) === 4 ? s.slice(7) : s.toLowerCase());
  return strip(a) === strip(b);
}

export class DnsClient {
  readonly timeoutMs: number;
  readonly stats: DnsClientStats = { sent: 0, signed: 0, unsigned: 0, success: 0, timeout: 0, error: 0, stray: 0 };
  private readonly pending = new PendingTable();
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private closed = false;
  /**
   * One timer for every update in flight (not one per update): armed for the
   * earliest deadline; when it fires, what is past its deadline times out and
   * it is armed again for the earliest left. Cleared when nothing is in flight.
   */
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;

  constructor(opts: { timeoutMs?: number } = {}) {
    const t = opts.timeoutMs ?? DEFAULT_DNS_SERVER_TIMEOUT;
    if (!Number.isInteger(t) || t <= 0 || t > MAX_DNS_SERVER_TIMEOUT) {
      throw new DnsError('invalid-argument', `dns-server-timeout must be an integer in [1, ${MAX_DNS_SERVER_TIMEOUT}], got ${t}`);
    }
    this.timeoutMs = t;
  }

  /** Number of updates awaiting an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Local port of the socket of a family, once it exists (for tests and logs). */
  localPort(family: 4 | 6 = 4): number | undefined {
    const s = this.sockets.get(family);
    try {
      return s?.address().port;
    } catch {
      return undefined;
    }
  }

  /**
   * Sends one update to one server and resolves with its outcome. The message
   * gets a fresh ID unique among this client's requests in flight.
   */
  update(server: DnsServerAddress, message: D2UpdateMessage | Message, opts: UpdateOptions = {}): Promise<DnsUpdateOutcome> {
    const invalid = invalidOutcome;
    if (this.closed) return invalid('the DNS client is closed', 'stopped');
    const family = isIP(server.address);
    if (family !== 4 && family !== 6) return invalid(`not an IP address: ${server.address}`);
    if (!Number.isInteger(server.port) || server.port < 1 || server.port > 0xffff) return invalid(`bad port: ${server.port}`);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_DNS_SERVER_TIMEOUT) return invalid(`bad timeout: ${timeoutMs}`);
    if (this.pending.size + this.signing.size >= MAX_IN_FLIGHT) return invalid('too many updates in flight');

    const id = this.freshId();
    let wire: Buffer;
    let context: TsigContext | undefined;
    try {
      const m = message instanceof D2UpdateMessage ? message.toMessage() : message;
      if (m.qr) return invalid('cannot send a message with the QR flag set');
      wire = encodeMessage(m);
      wire.writeUInt16BE(id, 0); // the fresh ID, without copying the message to set it
      if (opts.key instanceof HeldTsigKey) {
        const held = new HeldTsigContext(opts.key);
        // The ID is kept from other updates while the holder signs (it is in the signed bytes).
        this.signing.add(id);
        return held.sign(wire).then(
          (signed) => {
            this.signing.delete(id);
            if (this.closed) return invalidOutcome('the DNS client is closed', 'stopped');
            return this.transmit(id, family, server, signed, undefined, held, timeoutMs);
          },
          (e: unknown) => {
            this.signing.delete(id);
            return invalidOutcome(`the key's holder did not sign: ${e instanceof Error ? e.message : String(e)}`);
          },
        );
      }
      if (opts.key) {
        context = new TsigContext(opts.key);
        wire = context.sign(wire);
      }
    } catch (e) {
      return invalid(e instanceof Error ? e.message : String(e));
    }

    return this.transmit(id, family, server, wire, context, undefined, timeoutMs);
  }

  private transmit(id: number, family: 4 | 6, server: DnsServerAddress, wire: Buffer, context: TsigContext | undefined, held: HeldTsigContext | undefined, timeoutMs: number): Promise<DnsUpdateOutcome> {
    const socket = this.socketFor(family);
    this.stats.sent++;
    if (context || held) this.stats.signed++;
    else this.stats.unsigned++;
    return new Promise<DnsUpdateOutcome>((resolve) => {
      const deadline = performance.now() + timeoutMs;
      const p: Pending = { id, family, address: server.address, port: server.port, context, deadline, timeoutMs, resolve };
      if (held) p.held = held;
      this.pending.set(id, p);
      if (deadline < this.timerDue) this.armTimer(deadline);
      socket.send(wire, server.port, server.address, (e) => {
        if (e) this.finish(p, { status: 'io-error', error: new DnsError('io-error', `send to ${server.address} port ${server.port} failed: ${e.message}`), id });
      });
    });
  }

  private armTimer(due: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(due - performance.now())));
  }

  private disarmTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /** The timer fired: every update past its deadline times out; the timer is armed for the earliest one left. */
  private expire(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    const now = performance.now();
    const expired: Pending[] = [];
    let next = Infinity;
    for (const p of this.pending.values()) {
      if (p.deadline <= now) expired.push(p);
      else if (p.deadline < next) next = p.deadline;
    }
    for (const p of expired) {
      this.finish(p, { status: 'timeout', error: new DnsError('timeout', `no answer from ${p.address} port ${p.port} within ${p.timeoutMs} ms`), id: p.id });
    }
    if (next < Infinity && next < this.timerDue) this.armTimer(next);
  }

  /** Settles everything in flight as `stopped` and closes the sockets. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) {
      this.finish(p, { status: 'stopped', error: new DnsError('stopped', 'the DNS client was closed'), id: p.id });
    }
    const closing = [...this.sockets.values()].map((s) => new Promise<void>((res) => {
      try {
        s.close(() => res());
      } catch {
        res();
      }
    }));
    this.sockets.clear();
    await Promise.all(closing);
  }

  /** IDs of updates whose held key's holder is signing them: not in flight yet, but taken. */
  private readonly signing = new Set<number>();

  private freshId(): number {
    for (let i = 0; i < 64; i++) {
      const id = randomInt(0, 0x10000);
      if (!this.pending.has(id) && !this.signing.has(id)) return id;
    }
    const start = randomInt(0, 0x10000);
    for (let i = 0; i < 0x10000; i++) {
      const id = (start + i) & 0xffff;
      if (!this.pending.has(id) && !this.signing.has(id)) return id;
    }
    throw new DnsError('invalid-argument', 'no free message id'); // unreachable: guarded by MAX_IN_FLIGHT
  }

  private socketFor(family: 4 | 6): dgram.Socket {
    const existing = this.sockets.get(family);
    if (existing) return existing;
    const s = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    s.on('error', (e) => this.onSocketError(family, s, e));
    s.unref();
    this.sockets.set(family, s);
    return s;
  }

  private onSocketError(family: 4 | 6, s: dgram.Socket, e: Error): void {
    if (this.sockets.get(family) === s) this.sockets.delete(family);
    for (const p of this.pending.values()) {
      if (p.family === family) this.finish(p, { status: 'io-error', error: new DnsError('io-error', `socket error: ${e.message}`), id: p.id });
    }
    try {
      s.close();
    } catch {
      // already closed
    }
  }

  private finish(p: Pending, outcome: DnsUpdateOutcome): void {
    if (this.pending.get(p.id) !== p) return; // already settled
    this.pending.delete(p.id);
    if (this.pending.size === 0) this.disarmTimer();
    if (outcome.status === 'success') this.stats.success++;
    else if (outcome.status === 'timeout') this.stats.timeout++;
    else if (outcome.status !== 'stopped') this.stats.error++;
    p.resolve(outcome);
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      if (msg.length < 2) {
        this.stats.stray++;
        return;
      }
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p || rinfo.port !== p.port || !sameAddress(rinfo.address, p.address)) {
        this.stats.stray++;
        return;
      }
      if (p.held) {
        void this.evaluateHeld(p, p.held, msg).then((outcome) => this.finish(p, outcome));
        return;
      }
      this.finish(p, this.evaluate(p, msg));
    } catch (e) {
      // Never let a received datagram throw out of the event loop.
      this.stats.stray++;
    }
  }

  /** An answer to an update signed with a held key: decoded in full, its TSIG checked by the key's holder. Never rejects. */
  private async evaluateHeld(p: Pending, held: HeldTsigContext, msg: Buffer): Promise<DnsUpdateOutcome> {
    const id = p.id;
    const decoded = decodeMessage(msg);
    if (!decoded.ok) return { status: 'malformed', error: decoded.error, id };
    const valid = validateUpdateResponse(decoded.value);
    if (!valid.ok) return { status: 'malformed', error: valid.error, id, response: decoded.value };
    const response = valid.value;
    let v;
    try {
      v = await held.verifyResponse(msg, response);
    } catch (e) {
      return { status: 'tsig-error', error: new DnsError('tsig-error', `the key's holder did not verify the answer: ${e instanceof Error ? e.message : String(e)}`), id, tsigError: Rcode.BADSIG, response };
    }
    if (!v.ok) {
      return { status: 'tsig-error', error: new DnsError('tsig-error', `TSIG verification failed: ${rcodeToText(v.error)}: ${v.reason} (rcode ${rcodeToText(response.rcode)})`), id, tsigError: v.error, response };
    }
    return { status: 'success', rcode: response.rcode, response, id, signed: true };
  }

  private evaluate(p: Pending, msg: Buffer): DnsUpdateOutcome {
    const id = p.id;
    // The usual answer (zone echoed, TSIG that verifies) is judged from its bytes; the
    // decoded message is built only if someone asks for it. Anything else: the full decoder.
    const scanned = scanUpdateResponse(msg);
    if (scanned !== undefined && (p.context ? scanned !== null && p.context.verifiesResponseWire(msg, scanned) : true)) {
      return new ScannedSuccess(msg[3]! & 0x0f, msg, id, p.context !== undefined);
    }
    const decoded = decodeMessage(msg);
    if (!decoded.ok) return { status: 'malformed', error: decoded.error, id };
    const valid = validateUpdateResponse(decoded.value);
    if (!valid.ok) return { status: 'malformed', error: valid.error, id, response: decoded.value };
    const response = valid.value;
    if (p.context) {
      const v = p.context.verifyResponse(msg, response);
      if (!v.ok) {
        return {
          status: 'tsig-error',
          error: new DnsError('tsig-error', `TSIG verification failed: ${rcodeToText(v.error)}: ${v.reason} (rcode ${rcodeToText(response.rcode)})`),
          id,
          tsigError: v.error,
          response,
        };
      }
    }
    return { status: 'success', rcode: response.rcode, response, id, signed: p.context !== undefined };
  }
}
