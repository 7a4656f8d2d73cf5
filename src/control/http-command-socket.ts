/**
 * The control channel over HTTP or HTTPS, as Kea 3.x's servers listen
 * themselves (src/lib/config/http_command_mgr.cc, cmd_response_creator.cc):
 * `POST /` with the JSON command as the body; the answer is the command's
 * answer in a one-element JSON list, as the Control Agent answered
 * (EMULATE_AGENT_RESPONSE).
 *
 * - `authentication` (basic-auth.ts): checked before the body is read, so a
 *   client without credentials cannot make the daemon buffer anything; a
 *   missing or wrong one gets 401 with `WWW-Authenticate: Basic realm=...`.
 * - https: `trust-anchor` (a CA file or a directory of them), `cert-file`,
 *   `key-file`; with `cert-required` (Kea's default) a client must present a
 *   certificate the trust anchor signed, or the handshake fails.
 * - Every body is written as Kea's HttpResponseJson::setBodyAsJson writes it,
 *   Element::str() (kea-element-text.ts): `[ { "arguments": { … }, "result": 0 } ]`.
 * - Bad input gets a status and a JSON body `{ "result": <status>, "text": ... }`
 *   like Kea's stock HTTP answers: 404 other paths, 405 other methods, 400 a
 *   body that is not JSON, 413 a body over the bound, 408 headers or a body
 *   that do not arrive within the timeout, 431 headers too large. Failed
 *   authentications, failed TLS handshakes and bad requests are logged and
 *   counted (`count`); none of it blocks the main loop, so NCRs keep flowing.
 * - `http-headers` are added to every answer, errors included.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http, { STATUS_CODES } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { join } from 'node:path';
import type { HttpSocketEntry } from '../config/control-sockets.js';
import { Logger } from '../log/logger.js';
import { createAnswer, CONTROL_RESULT_ERROR, type Answer } from './answer.js';
import { loadBasicAuth, type BasicAuth } from './basic-auth.js';
import { keaElementText } from './kea-element-text.js';
import { rememberWireText } from './wire-text.js';

export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
export const DEFAULT_HTTP_MAX_REQUEST_BYTES = 16 * 1024 * 1024;
export const DEFAULT_HTTP_MAX_CONNECTIONS = 1024;

export type HttpControlEvent = 'auth-failed' | 'tls-handshake-failed' | 'bad-request';

export interface HttpCommandSocketOptions {
  config: HttpSocketEntry;
  process: (request: unknown) => Promise<Answer>;
  timeoutMs?: number;
  maxRequestBytes?: number;
  maxConnections?: number;
  count?: (event: HttpControlEvent) => void;
}

interface Settings {
  auth: BasicAuth | undefined;
  headers: [string, string][];
}

/** A CA file, or every file of a CA directory. */
function readTrustAnchor(path: string): Buffer[] {
  if (!statSync(path).isDirectory()) return [readFileSync(path)];
  return readdirSync(path)
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => readFileSync(f));
}

function tlsMaterial(c: HttpSocketEntry): { ca: Buffer[]; cert: Buffer; key: Buffer } | undefined {
  if (!('trust-anchor' in c) || c['trust-anchor'] === undefined) return undefined;
  return { ca: readTrustAnchor(c['trust-anchor']), cert: readFileSync(c['cert-file']!), key: readFileSync(c['key-file']!) };
}

/** What must stay the same for a new configuration to be applied to the open listener. */
export function httpListenerIdentity(c: HttpSocketEntry): string {
  return JSON.stringify([c['socket-type'], c['socket-address'], c['socket-port'], 'cert-required' in c ? c['cert-required'] : undefined]);
}

export class HttpCommandSocket {
  readonly endpoint: string;
  private server: http.Server | undefined;
  private settings: Settings;
  private config: HttpSocketEntry;
  private readonly log = new Logger('commands');
  private readonly timeoutMs: number;
  private readonly maxRequestBytes: number;
  private readonly maxConnections: number;

  constructor(private readonly opts: HttpCommandSocketOptions) {
    this.config = opts.config;
    this.endpoint = `${opts.config['socket-type']}://${opts.config['socket-address'].includes(':') ? `[${opts.config['socket-address']}]` : opts.config['socket-address']}:${opts.config['socket-port']}`;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    this.maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_HTTP_MAX_REQUEST_BYTES;
    this.maxConnections = opts.maxConnections ?? DEFAULT_HTTP_MAX_CONNECTIONS;
    this.settings = HttpCommandSocket.settingsOf(opts.config);
  }

  /** Reads credentials; throws (naming the file) when one cannot be read. */
  private static settingsOf(c: HttpSocketEntry): Settings {
    return {
      auth: 'authentication' in c && c.authentication ? loadBasicAuth(c.authentication) : undefined,
      headers: ('http-headers' in c ? c['http-headers'] ?? [] : []).map((h) => [h.name, h.value]),
    };
  }

  get port(): number | undefined {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : undefined;
  }

  async open(): Promise<void> {
    const c = this.config;
    const common = {
      requestTimeout: this.timeoutMs,
      headersTimeout: this.timeoutMs,
      keepAliveTimeout: 5_000,
      // Node checks the two timeouts above at this interval (30 s by default).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(this.timeoutMs / 4))),
      maxHeaderSize: 16 * 1024,
    };
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    let server: http.Server;
    if (c['socket-type'] === 'https') {
      const tls = tlsMaterial(c)!;
      const certRequired = 'cert-required' in c ? c['cert-required'] !== false : true;
      server = https.createServer({ ...common, ...tls, requestCert: certRequired, rejectUnauthorized: certRequired, handshakeTimeout: this.timeoutMs }, handler);
      server.on('tlsClientError', (err: Error & { code?: string }, socket: net.Socket) => {
        this.opts.count?.('tls-handshake-failed');
        this.log.warn('D2BOX_COMMAND_HTTPS_HANDSHAKE_FAILED', `TLS handshake with ${socket.remoteAddress ?? 'a client'} on ${this.endpoint} failed: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
        socket.destroy();
      });
    } else {
      server = http.createServer(common, handler);
    }
    server.maxConnections = this.maxConnections;
    server.on('clientError', (err: Error & { code?: string }, socket: net.Socket) => this.clientError(err, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: c['socket-address'], port: c['socket-port'], exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error('D2BOX_COMMAND_SOCKET_ERROR', `control socket ${this.endpoint}: ${e.message}`));
    this.server = server;
    if ('authentication' in c && c.authentication?.clients.some((cl) => cl.password !== undefined)) {
      this.log.info('HTTP_CLIENT_PASSWORD_SECURITY_WARNING', `control socket ${this.endpoint}: a client's password is written in clear text in the configuration; 'password-file' keeps it out of config-get`);
    }
    this.log.info('COMMAND_HTTP_LISTENER_STARTED', `Command ${c['socket-type'].toUpperCase()} listener started on ${this.endpoint}${this.settings.auth ? ' with basic authentication' : ''}`);
  }

  /**
   * A new configuration for the same address, port, type and cert-required:
   * credentials, headers and TLS material change without closing the listener.
   * Reads every file now and throws, changing nothing, when one cannot be
   * read; the returned function applies the change.
   */
  prepareUpdate(c: HttpSocketEntry): () => void {
    const settings = HttpCommandSocket.settingsOf(c);
    const tls = c['socket-type'] === 'https' ? tlsMaterial(c) : undefined;
    return () => {
      if (tls) (this.server as https.Server | undefined)?.setSecureContext(tls);
      this.settings = settings;
      this.config = c;
    };
  }

  /** Stops accepting; requests being answered get `graceMs` to finish, then their connections are cut. */
  async close(graceMs = 10_000): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([closed, grace]);
    clearTimeout(timer);
    server.closeAllConnections();
    await closed;
    this.log.info('COMMAND_HTTP_LISTENER_STOPPED', `Command listener on ${this.endpoint} stopped`);
  }

  private send(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}, close = false): void {
    if (res.headersSent || res.destroyed) return;
    const text = keaElementText(body);
    for (const [name, value] of this.settings.headers) res.setHeader(name, value);
    res.writeHead(status, { ...extra, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...(close ? { Connection: 'close' } : {}) });
    res.end(text);
  }

  private refuse(req: http.IncomingMessage, res: http.ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
    this.opts.count?.(status === 401 ? 'auth-failed' : 'bad-request');
    const who = req.socket.remoteAddress ?? 'a client';
    if (status === 401) this.log.warn('D2BOX_COMMAND_HTTP_AUTH_FAILED', `HTTP authentication of ${who} on ${this.endpoint} failed: ${text}`);
    else this.log.info('D2BOX_COMMAND_HTTP_BAD_REQUEST', `HTTP request from ${who} on ${this.endpoint} refused with ${status}: ${text}`);
    // The body, if any, is not read: the connection closes after the answer.
    this.send(res, status, { result: status, text }, extra, true);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/' && path !== '') return this.refuse(req, res, 404, `Not Found: commands are sent to /, not ${req.url}`);
    if (req.method !== 'POST') return this.refuse(req, res, 405, `Method Not Allowed: send the command with POST, not ${req.method}`, { Allow: 'POST' });
    const auth = this.settings.auth;
    if (auth && !auth.check(req.headers.authorization)) {
      return this.refuse(req, res, 401, req.headers.authorization ? 'Unauthorized: wrong credentials' : 'Unauthorized: credentials required', {
        'WWW-Authenticate': `Basic realm="${auth.realm.replace(/["\\]/g, '\\$&')}"`,
      });
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxRequestBytes) {
      return this.refuse(req, res, 413, `Payload Too Large: the command is over the ${this.maxRequestBytes}-byte limit`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > this.maxRequestBytes) {
        refused = true;
        this.refuse(req, res, 413, `Payload Too Large: the command is over the ${this.maxRequestBytes}-byte limit`);
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (refused) return;
      let command: unknown;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        command = JSON.parse(text);
        rememberWireText(command, text);
      } catch (e) {
        return this.refuse(req, res, 400, `Bad Request: the body is not a JSON command: ${(e as Error).message}`);
      }
      this.opts.process(command).then(
        (answer) => this.send(res, 200, [answer]),
        (e: unknown) => this.send(res, 200, [createAnswer(CONTROL_RESULT_ERROR, `internal server error: ${(e as Error)?.message ?? String(e)}`)]),
      );
    });
  }

  private clientError(err: Error & { code?: string }, socket: net.Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const text =
      status === 408 ? `Request Timeout: the request did not arrive whole within ${this.timeoutMs} ms`
      : status === 431 ? 'Request Header Fields Too Large'
      : `Bad Request: ${err.message}`;
    this.opts.count?.('bad-request');
    this.log.info('D2BOX_COMMAND_HTTP_BAD_REQUEST', `HTTP request from ${socket.remoteAddress ?? 'a client'} on ${this.endpoint} refused with ${status}: ${text}`);
    const body = keaElementText({ result: status, text });
    const headers = this.settings.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('');
    // A client that never reads the answer does not keep the connection.
    const guard = setTimeout(() => socket.destroy(), this.timeoutMs);
    socket.once('close', () => clearTimeout(guard));
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${headers}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
}
