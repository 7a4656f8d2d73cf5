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

  private newHttp(config: HttpSocketEntry, process = this.opts.process): HttpCommandSocket {
    return new HttpCommandSocket({ config, process, ...(this.opts.count ? { count: this.opts.count } : {}), ...this.limits() });
  }

  /** Makes the open sockets match `entries`; an error text (nothing changed) when one cannot be opened. */
  async reconfigure(entries: ControlSocketEntry[]): Promise<string | undefined> {
    const prepared = await this.prepare(entries);
    return prepared.ok ? prepared.commit() : prepared.error;
  }

  /**
   * Opens what `entries` add and reads every file they name, changing nothing
   * in force yet: `commit` then switches to them and closes what they drop,
   * `abort` closes what was opened (a configuration refused for another
   * reason leaves no socket behind). An error text when one cannot be opened.
   */
  async prepare(entries: ControlSocketEntry[]): Promise<
    { ok: true; commit: () => Promise<string | undefined>; abort: () => Promise<void> } | { ok: false; error: string }
  > {
    const wantUnix = new Set(entries.flatMap((e) => (e['socket-type'] === 'unix' ? [e['socket-name']] : [])));
    const wantHttp = new Map(entries.flatMap((e) => (e['socket-type'] === 'unix' ? [] : [[endpointOf(e), e] as const])));
    const openedUnix = new Map<string, UnixCommandSocket>();
    const openedHttp = new Map<string, OpenHttp>();
    const updates: (() => void)[] = [];
    const replaced: [string, OpenHttp][] = [];
    // A socket opened here may be reached before the configuration is in force: its commands wait until then.
    let open!: () => void;
    const committed = new Promise<void>((r) => (open = r));
    const process = async (request: unknown) => {
      await committed;
      return this.opts.process(request);
    };
    const abort = async () => {
      open();
      for (const s of openedUnix.values()) await s.close(0);
      for (const h of openedHttp.values()) await h.sock.close(0);
    };
    let at = '';
    try {
      for (const path of wantUnix) {
        if (this.unix.has(path)) continue;
        at = path;
        const sock = new UnixCommandSocket({ path, process, ...this.limits() });
        await sock.open();
        openedUnix.set(path, sock);
      }
      for (const [ep, config] of wantHttp) {
        const current = this.http.get(ep);
        if (!current) {
          const sock = this.newHttp(config, process);
          at = sock.endpoint;
          await sock.open();
          openedHttp.set(ep, { sock, config });
        } else if (JSON.stringify(current.config) !== JSON.stringify(config)) {
          if (httpListenerIdentity(current.config) === httpListenerIdentity(config)) {
            at = current.sock.endpoint;
            // Credentials and certificates are read now; applied at commit.
            const apply = current.sock.prepareUpdate(config);
            updates.push(() => {
              apply();
              current.config = config;
            });
          } else {
            // Same address and port, another type or cert-required: a new listener must wait for the old one's port.
            const sock = this.newHttp(config);
            at = sock.endpoint;
            sock.prepareUpdate(config);
            replaced.push([ep, current]);
          }
        }
      }
    } catch (e) {
      await abort();
      const error = `could not open the control socket ${at}: ${(e as Error).message}`;
      this.log.error('D2BOX_CONTROL_SOCKET_OPEN_FAILED', error);
      return { ok: false, error };
    }
    const commit = async (): Promise<string | undefined> => {
      let error: string | undefined;
      for (const [ep, old] of replaced) {
        const config = wantHttp.get(ep)!;
        // close() lets go of the port at once; a command in progress on it still finishes.
        void old.sock.close();
        this.http.delete(ep);
        const sock = this.newHttp(config);
        try {
          await sock.open();
          openedHttp.set(ep, { sock, config });
        } catch (e) {
          error = `could not open the control socket ${sock.endpoint}: ${(e as Error).message}`;
          this.log.error('D2BOX_CONTROL_SOCKET_OPEN_FAILED', error);
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
      open();
      return error;
    };
    return { ok: true, commit, abort };
  }

  /** Closes every socket (shutdown). */
  async close(): Promise<void> {
    const all = [...[...this.unix.values()].map((s) => s.close()), ...[...this.http.values()].map((h) => h.sock.close())];
    this.unix.clear();
    this.http.clear();
    await Promise.all(all);
  }
}
