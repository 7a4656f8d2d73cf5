/**
 * Every control socket the configuration names (`control-socket` and Kea
 * 3.x's `control-sockets`), all routed to the one command manager, as Kea's
 * reconfigureCommandChannel after a configuration is committed:
 *
 * - a socket that stays the same stays open (an http/https one whose
 *   credentials, headers or certificates changed is updated in place);
 * - new sockets are opened before anything is closed, so a configuration
 *   whose socket cannot be opened (port taken, certificate unreadable) fails
 *   with the sockets in force still serving;
 * - sockets no longer wanted stop accepting at once, but a command they are
 *   answering (the config-set that removed them included) finishes first.
 */
import type { ControlSocketEntry, HttpSocketEntry } from '../config/control-sockets.js';
import { Logger } from '../log/logger.js';
import type { Answer } from './answer.js';
import { HttpCommandSocket, httpListenerIdentity, type HttpControlEvent } from './http-command-socket.js';
import { UnixCommandSocket } from './unix-command-socket.js';

export interface ControlChannelOptions {
  process: (request: unknown) => Promise<Answer>;
  count?: (event: HttpControlEvent) => void;
  /** Per connection: a request must arrive whole within this (Kea: 10 s). */
  timeoutMs?: number;
  maxRequestBytes?: number;
}

interface OpenHttp {
  sock: HttpCommandSocket;
  config: HttpSocketEntry;
}

const endpointOf = (c: HttpSocketEntry) => `${c['socket-address']}|${c['socket-port']}`;

export class ControlChannel {
  private readonly unix = new Map<string, UnixCommandSocket>();
  private readonly http = new Map<string, OpenHttp>();
  private readonly log = new Logger('commands');

  constructor(private readonly opts: ControlChannelOptions) {}

  /** Where the channel listens now: unix paths and http(s) endpoints. */
  endpoints(): string[] {
    return [...this.unix.keys(), ...[...this.http.values()].map((h) => h.sock.endpoint)];
  }

  private limits() {
    return {
      ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
      ...(this.opts.maxRequestBytes ? { maxRequestBytes: this.opts.maxRequestBytes } : {}),
    };
  }

  private newHttp(config: HttpSocketEntry): HttpCommandSocket {
    return new HttpCommandSocket({ config, process: this.opts.process, ...(this.opts.count ? { count: this.opts.count } : {}), ...this.limits() });
  }

  /** Makes the open sockets match `entries`; an error text (nothing changed) when one cannot be opened. */
  async reconfigure(entries: ControlSocketEntry[]): Promise<string | undefined> {
    const wantUnix = new Set(entries.flatMap((e) => (e['socket-type'] === 'unix' ? [e['socket-name']] : [])));
    const wantHttp = new Map(entries.flatMap((e) => (e['socket-type'] === 'unix' ? [] : [[endpointOf(e), e] as const])));
    const openedUnix = new Map<string, UnixCommandSocket>();
    const openedHttp = new Map<string, OpenHttp>();
    const updates: (() => void)[] = [];
    const replaced: [string, OpenHttp][] = [];
    const undo = async () => {
      for (const s of openedUnix.values()) await s.close(0);
      for (const h of openedHttp.values()) await h.sock.close(0);
    };
    let at = '';
    try {
      for (const path of wantUnix) {
        if (this.unix.has(path)) continue;
        at = path;
        const sock = new UnixCommandSocket({ path, process: this.opts.process, ...this.limits() });
        await sock.open();
        openedUnix.set(path, sock);
      }
      for (const [ep, config] of wantHttp) {
        const current = this.http.get(ep);
        if (!current) {
          const sock = this.newHttp(config);
          at = sock.endpoint;
          await sock.open();
          openedHttp.set(ep, { sock, config });
        } else if (JSON.stringify(current.config) !== JSON.stringify(config)) {
          if (httpListenerIdentity(current.config) === httpListenerIdentity(config)) {
            at = current.sock.endpoint;
            // Credentials and certificates are read now; applied only when everything else opened.
            const apply = current.sock.prepareUpdate(config);
            updates.push(() => {
              apply();
              current.config = config;
            });
          } else {
            replaced.push([ep, current]);
          }
        }
      }
    } catch (e) {
      await undo();
      const error = `could not open the control socket ${at}: ${(e as Error).message}`;
      this.log.error('DCTL_CONTROL_SOCKET_OPEN_FAILED', error);
      return error;
    }
    // Same address and port, another type or cert-required: the old listener must let go of the port first.
    for (const [ep, old] of replaced) {
      const config = wantHttp.get(ep)!;
      void old.sock.close();
      const sock = this.newHttp(config);
      try {
        await sock.open();
        openedHttp.set(ep, { sock, config });
      } catch (e) {
        const back = this.newHttp(old.config);
        try {
          await back.open();
          this.http.set(ep, { sock: back, config: old.config });
        } catch (again) {
          this.http.delete(ep);
          this.log.error('DCTL_CONTROL_SOCKET_OPEN_FAILED', `could not reopen the control socket ${old.sock.endpoint}: ${(again as Error).message}`);
        }
        await undo();
        const error = `could not open the control socket ${sock.endpoint}: ${(e as Error).message}`;
        this.log.error('DCTL_CONTROL_SOCKET_OPEN_FAILED', error);
        return error;
      }
    }
    for (const apply of updates) apply();
    // Not awaited: the command that closed them is answered on them.
    for (const [path, sock] of this.unix) {
      if (!wantUnix.has(path)) {
        void sock.close();
        this.unix.delete(path);
      }
    }
    for (const [ep, h] of this.http) {
      if (!wantHttp.has(ep)) {
        void h.sock.close();
        this.http.delete(ep);
      }
    }
    for (const [path, sock] of openedUnix) this.unix.set(path, sock);
    for (const [ep, h] of openedHttp) this.http.set(ep, h);
    return undefined;
  }

  /** Closes every socket (shutdown). */
  async close(): Promise<void> {
    const all = [...[...this.unix.values()].map((s) => s.close()), ...[...this.http.values()].map((h) => h.sock.close())];
    this.unix.clear();
    this.http.clear();
    await Promise.all(all);
  }
}
