/**
 * Kea's `syslog` / `syslog:NAME` output: what log4cplus's SysLogAppender sends
 * through glibc's syslog(3), measured on Kea 2.2 (a socket bound at /dev/log):
 *
 *   <159>Dec  3 19:57:57 kea-dhcp-ddns: DEBUG [kea-dhcp-ddns.dctl.1402…] DCTL_… text\n
 *
 * the priority is NAME's facility (`syslog` alone: local0) times 8 plus the
 * severity's level (FATAL crit, ERROR err, WARN warning, INFO info, DEBUG
 * debug), the time is local in RFC 3164's `Mmm dd hh:mm:ss`, the tag is the
 * program's name without a PID, and the rest is the output's pattern.
 *
 * The transport. /dev/log is a datagram socket on most Linux systems, and Node
 * has no unix datagram sockets in core (dgram is UDP only; libuv will not even
 * wrap such a descriptor). Without a native package (none may be added now) and
 * without a helper process (`logger`, `systemd-cat`: another program to ship,
 * supervise and trust on every line), d2box speaks to the syslog socket with
 * `net` when it is a stream socket, as syslog(3) itself falls back to doing,
 * each message ended by a NUL byte as glibc ends it there (syslog-ng and
 * rsyslog's stream inputs take that framing). When the socket is a datagram
 * socket or missing, the lines go to stderr with the same pattern and one
 * warning says so (`D2BOX_SYSLOG_UNAVAILABLE`); `-t` gives that warning before
 * the daemon ever starts. The socket is D2BOX_SYSLOG_SOCKET, else /dev/log.
 */
import net from 'node:net';
import type { LogRecord, Severity } from './logger.js';

export const DEFAULT_SYSLOG_SOCKET = '/dev/log';
/** Kea's default facility for a bare `syslog` (OutputOption's "LOCAL0"). */
export const DEFAULT_FACILITY = 'local0';
/** syslog(3)'s tag: Kea's program name, which operators' filters match. */
export const SYSLOG_TAG = 'kea-dhcp-ddns';

/** log4cplus's facility names (syslogappender.cxx parseFacility); an unknown name is `user`, as there. */
const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, security: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** log4cplus's SysLogAppender::getSysLogLevel. */
const LEVELS: Record<Severity, number> = { FATAL: 2, ERROR: 3, WARN: 4, INFO: 6, DEBUG: 7 };

export function syslogSocketPath(): string {
  const v = process.env['D2BOX_SYSLOG_SOCKET'];
  return v !== undefined && v.trim() !== '' ? v.trim() : DEFAULT_SYSLOG_SOCKET;
}

/** The facility `syslog` or `syslog:NAME` means. */
export function syslogFacility(output: string): number {
  const name = output.startsWith('syslog:') ? output.slice('syslog:'.length).toLowerCase() : DEFAULT_FACILITY;
  return FACILITIES[name] ?? FACILITIES['user']!;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** One message as syslog(3) writes it: `<PRI>Mmm dd hh:mm:ss TAG: text`. */
export function syslogMessage(facility: number, record: Pick<LogRecord, 'severity' | 'time'>, text: string): string {
  const t = record.time;
  const stamp = `${MONTHS[t.getMonth()]} ${String(t.getDate()).padStart(2, ' ')} ${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
  return `<${facility * 8 + LEVELS[record.severity]}>${stamp} ${SYSLOG_TAG}: ${text}`;
}

/**
 * Whether the syslog socket takes a stream connection; the reason when not.
 * Bounded: a socket that neither accepts nor refuses within `timeoutMs` counts as unavailable.
 */
export function probeSyslogSocket(path = syslogSocketPath(), timeoutMs = 1000): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const sock = net.connect(path);
    const done = (r: { ok: true } | { ok: false; reason: string }) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, reason: `${path} did not accept a connection within ${timeoutMs} ms` }), timeoutMs);
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (err) => done({ ok: false, reason: unavailableReason(path, err as NodeJS.ErrnoException) }));
  });
}

export function unavailableReason(path: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'EPROTOTYPE') return `${path} is a datagram socket, which Node cannot write to`;
  if (err.code === 'ENOENT') return `${path} does not exist`;
  return `${path}: ${err.message}`;
}

/** A stream connection to the syslog socket; what it cannot deliver, it hands to `fallback`. */
export class SyslogConnection {
  private sock: net.Socket | undefined;
  private state: 'connecting' | 'open' | 'failed' | 'closed' = 'connecting';
  private readonly queue: string[] = [];

  constructor(
    readonly path: string,
    /** Called once when the socket cannot be used, with the reason and the messages not sent. */
    private readonly onUnavailable: (reason: string, unsent: string[]) => void,
  ) {
    const sock = net.connect(path);
    this.sock = sock;
    sock.once('connect', () => {
      if (this.state !== 'connecting') return;
      this.state = 'open';
      if (this.queue.length > 0) sock.write(this.queue.splice(0).join(''));
    });
    sock.on('error', (err) => this.fail(unavailableReason(path, err as NodeJS.ErrnoException)));
    // The syslog daemon restarting closes the stream; what follows goes to the fallback, as syslog(3) drops it.
    sock.on('close', () => this.fail(`${path} closed the connection`));
  }

  private fail(reason: string): void {
    if (this.state === 'failed' || this.state === 'closed') return;
    this.state = 'failed';
    this.sock?.destroy();
    this.onUnavailable(reason, this.queue.splice(0).map((m) => m.slice(0, -1)));
  }

  /** Sends one message (ended by NUL, glibc's framing on a stream socket); false when the socket is unusable. */
  send(message: string): boolean {
    if (this.state === 'failed' || this.state === 'closed') return false;
    if (this.state === 'connecting') this.queue.push(message + '\0');
    else this.sock!.write(message + '\0');
    return true;
  }

  /** Waits (bounded) until what was written has left, then closes. */
  close(timeoutMs = 2000): Promise<void> {
    const sock = this.sock;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    if (!sock || !wasOpen) {
      sock?.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        sock.destroy();
        resolve();
      }, timeoutMs);
      sock.end(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
