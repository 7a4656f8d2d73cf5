/**
 * The control channel on a unix stream socket, as Kea's CommandMgr
 * (src/lib/config/command_mgr.cc): one command per connection — the client
 * writes a JSON map, the server answers with one JSON map and closes.
 *
 * - The request ends when its outermost JSON value is complete (Kea's JSONFeed),
 *   then it is parsed and handed to the command manager. Invalid JSON, a
 *   request larger than `maxRequestBytes`, or a request not finished within
 *   `timeoutMs` of the last byte (Kea: 10 s) gets a result-1 answer and the
 *   connection closes; the timer is off while the command runs.
 * - At most `maxConnections` at once; more are refused at accept.
 * - A client that half-closes after its request (socat does) still gets the
 *   answer: only a half-close before the JSON ends is an incomplete command.
 * - A client that goes away before or during the reply costs nothing: the
 *   command still completes, the reply is dropped.
 * - The socket file is created owner-only (0600): the process umask is
 *   narrowed while the socket is bound, then the mode is set again. A file
 *   left by a killed run is detected (nobody accepts on it) and replaced; a
 *   live server on the path, or a path that is not a socket, is an error.
 *   The file is removed on close.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { Logger } from '../log/logger.js';
import { CONTROL_RESULT_ERROR, createAnswer, type Answer } from './answer.js';
import { keaElementText } from './kea-element-text.js';
import { rememberWireText } from './wire-text.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 128;

export interface UnixCommandSocketOptions {
  path: string;
  process: (request: unknown) => Promise<Answer>;
  timeoutMs?: number;
  maxRequestBytes?: number;
  maxConnections?: number;
}

/** Kea's JSONFeed, reduced to what is needed: where the first complete JSON value ends. */
export class JsonFeed {
  private depth = 0;
  private started = false;
  private inString = false;
  private escape = false;
  private scanned = 0;
  text = '';

  /** Appends data; returns the end offset of the complete value, -1 when more is needed; throws on a non-JSON start. */
  push(chunk: string): number {
    this.text += chunk;
    const t = this.text;
    for (let i = this.scanned; i < t.length; i++) {
      const c = t[i]!;
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === '\\') this.escape = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (!this.started) {
        if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
        if (c !== '{' && c !== '[') {
          this.scanned = i + 1;
          throw new Error(`invalid first character ${JSON.stringify(c)}`);
        }
        this.started = true;
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          this.scanned = i + 1;
          return i + 1;
        }
      }
    }
    this.scanned = t.length;
    return -1;
  }
}

export class UnixCommandSocket {
  readonly path: string;
  private server: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  private readonly log = new Logger('commands');
  private readonly timeoutMs: number;
  private readonly maxRequestBytes: number;
  private readonly maxConnections: number;

  constructor(private readonly opts: UnixCommandSocketOptions) {
    this.path = opts.path;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    this.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  }

  async open(): Promise<void> {
    await this.clearStale();
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    server.maxConnections = this.maxConnections;
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
    chmodSync(this.path, 0o600);
    server.on('error', (e) => this.log.error('D2BOX_COMMAND_SOCKET_ERROR', `control socket ${this.path}: ${e.message}`));
    this.server = server;
    this.log.info('COMMAND_ACCEPTOR_START', `Starting to accept connections via unix domain socket bound to ${this.path}`);
  }

  /**
   * Stops accepting and removes the socket file at once; replies being
   * written (a command that is being answered, the one that asked for this
   * included) get `graceMs` to finish, then their connections are cut.
   */
  async close(graceMs = 2000): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // libuv removed it with the listening handle
    }
    this.log.info('D2BOX_CONTROL_SOCKET_CLOSED', `control socket ${this.path} closed`);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([closed, grace]);
    clearTimeout(timer);
    for (const s of this.connections) s.destroy();
    this.connections.clear();
    await closed;
  }

  /** A socket file from a run that was killed: nobody accepts on it. */
  private async clearStale(): Promise<void> {
    let st;
    try {
      st = lstatSync(this.path);
    } catch {
      return;
    }
    if (!st.isSocket()) throw new Error(`${this.path} exists and is not a socket`);
    const alive = await new Promise<boolean>((resolve) => {
      const probe = net.connect(this.path);
      const t = setTimeout(() => {
        probe.destroy();
        resolve(true);
      }, 1000);
      probe.once('connect', () => {
        clearTimeout(t);
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => {
        clearTimeout(t);
        resolve(false);
      });
    });
    if (alive) throw new Error(`another server is accepting on the control socket ${this.path}`);
    this.log.warn('D2BOX_CONTROL_SOCKET_STALE', `removing stale control socket file ${this.path} left by an earlier run`);
    unlinkSync(this.path);
  }

  private accept(sock: net.Socket): void {
    this.connections.add(sock);
    this.log.debug('COMMAND_SOCKET_CONNECTION_OPENED', 'Opened socket for incoming command connection', 10);
    sock.setEncoding('utf8');
    const feed = new JsonFeed();
    let bytes = 0;
    let done = false;
    // Set once the request is complete: a half-close after it (socat, `nc -N`)
    // only says nothing more follows, and the answer still goes out.
    let running = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const partial = feed.text.length > 0 ? `, discarded partial command of ${Buffer.byteLength(feed.text)} bytes` : '';
        this.log.info('COMMAND_SOCKET_CONNECTION_TIMEOUT', `Timeout occurred for connection over the control channel${partial}`);
        finish(createAnswer(CONTROL_RESULT_ERROR, `Connection over control channel timed out${partial}`));
      }, this.timeoutMs);
    };
    const finish = (answer: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeAllListeners('data');
      if (sock.destroyed || !sock.writable) {
        sock.destroy();
        return;
      }
      // The reply must not wait forever on a client that never reads.
      const guard = setTimeout(() => sock.destroy(), this.timeoutMs);
      // Kea's own layout (Element::str()): scripts grep for `"result": 0`.
      sock.end(keaElementText(answer), () => clearTimeout(guard));
      sock.once('close', () => clearTimeout(guard));
    };
    sock.on('error', () => {
      // A client that went away: nothing to answer.
      clearTimeout(timer);
      sock.destroy();
    });
    sock.on('close', () => {
      clearTimeout(timer);
      this.connections.delete(sock);
    });
    sock.on('end', () => {
      if (done || running) return;
      // Half-closed before a complete command: nothing will follow.
      const text = feed.text.trim();
      if (text.length === 0) {
        done = true;
        clearTimeout(timer);
        sock.end();
        return;
      }
      finish(createAnswer(CONTROL_RESULT_ERROR, `incomplete command of ${Buffer.byteLength(feed.text)} bytes: the connection was closed before the JSON ended`));
    });
    sock.on('data', (chunk: string) => {
      if (done) return;
      bytes += Buffer.byteLength(chunk);
      if (bytes > this.maxRequestBytes) {
        this.log.warn('D2BOX_COMMAND_REQUEST_TOO_LARGE', `control channel request over ${this.maxRequestBytes} bytes refused`);
        finish(createAnswer(CONTROL_RESULT_ERROR, `command too large: over the ${this.maxRequestBytes}-byte limit`));
        return;
      }
      let end: number;
      try {
        end = feed.push(chunk);
      } catch (e) {
        finish(createAnswer(CONTROL_RESULT_ERROR, `invalid JSON command: ${(e as Error).message}`));
        return;
      }
      if (end < 0) {
        arm();
        return;
      }
      clearTimeout(timer);
      sock.removeAllListeners('data');
      running = true;
      let request: unknown;
      try {
        request = JSON.parse(feed.text.slice(0, end));
        rememberWireText(request, feed.text.slice(0, end));
      } catch (e) {
        finish(createAnswer(CONTROL_RESULT_ERROR, `invalid JSON command: ${(e as Error).message}`));
        return;
      }
      this.opts.process(request).then(finish, (e: unknown) =>
        finish(createAnswer(CONTROL_RESULT_ERROR, `internal server error: ${(e as Error)?.message ?? String(e)}`)),
      );
    });
    arm();
  }
}
