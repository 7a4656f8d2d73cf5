/**
 * Kea's `loggers` configuration (src/lib/process/log_parser.cc and
 * src/lib/log/logger_manager_impl.cc in Kea 2.2) mapped onto pino's
 * destinations.
 *
 * - An entry names a logger (`kea-dhcp-ddns` or `kea-dhcp-ddns.<child>`); it
 *   applies to that logger and its children, the most specific entry winning.
 *   Loggers no entry covers use Kea's default: INFO to the console.
 * - `severity` DEBUG..FATAL or NONE; with DEBUG, `debuglevel` 0-99 lets through
 *   debug messages of that level or lower. `-d` forces DEBUG/99 everywhere, as
 *   Kea's verbose mode does.
 * - `output_options`: `stdout`, `stderr`, a file path (`maxsize` bytes and
 *   `maxver` old versions: file → file.1 → ... → file.maxver; 0 in either turns
 *   rotation off), `flush` (false: writes are batched up to 4 KiB), `pattern`
 *   (log4cplus conversions: %d{..} UTC and %D{..} local time with %Y %m %d %H
 *   %M %S %q (ms) %Q (ms.µs), %p, %c, %i, %t, %m, %n, %%, with widths such as
 *   %-5p). `syslog[:name]`: to the syslog socket with NAME's facility
 *   (syslog-output.ts), or, where that socket cannot be written from Node,
 *   to stderr with the syslog pattern and a warning.
 *
 * What pino brings is its destination (SonicBoom): writes go out through
 * libuv asynchronously, so a slow or blocked sink never stalls the main loop;
 * what the sink cannot take is bounded (16 MiB per output, then lines are
 * dropped and counted). The records themselves stay Kea's text lines, not
 * pino's JSON, because Kea's operators and tools read those patterns.
 */
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { LoggerConfig } from '../config/loggers.js';
import { fullLoggerName, Logger, ROOT_LOGGER, type LogRecord, type Severity } from './logger.js';
import { SyslogConnection, syslogFacility, syslogMessage, syslogSocketPath } from './syslog-output.js';

type Dest = ReturnType<typeof pino.destination>;

export const DEFAULT_PATTERN = '%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i.%t] %m\n';
export const SYSLOG_PATTERN = '%-5p [%c.%t] %m\n';
/** Per output, what may wait for a slow sink before lines are dropped. */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** log4cplus's MINIMUM_ROLLING_LOG_SIZE: a smaller non-zero `maxsize` rotates at this size. */
export const MINIMUM_ROLLING_LOG_SIZE = 200 * 1024;

const RANK: Record<Severity | 'NONE', number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3, FATAL: 4, NONE: 5 };

// ---------------------------------------------------------------------------
// Patterns

type Formatter = (r: LogRecord) => string;

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

function formatTime(fmt: string, d: Date, utc: boolean): string {
  const Y = utc ? d.getUTCFullYear() : d.getFullYear();
  const m = (utc ? d.getUTCMonth() : d.getMonth()) + 1;
  const D = utc ? d.getUTCDate() : d.getDate();
  const H = utc ? d.getUTCHours() : d.getHours();
  const M = utc ? d.getUTCMinutes() : d.getMinutes();
  const S = utc ? d.getUTCSeconds() : d.getSeconds();
  const ms = d.getMilliseconds();
  return fmt.replace(/%([YmdHMSqQ%])/g, (_, c: string) => {
    switch (c) {
      case 'Y': return String(Y);
      case 'm': return pad(m);
      case 'd': return pad(D);
      case 'H': return pad(H);
      case 'M': return pad(M);
      case 'S': return pad(S);
      case 'q': return pad(ms, 3);
      case 'Q': return `${pad(ms, 3)}.000`;
      default: return '%';
    }
  });
}

/**
 * A %d / %D conversion: the text is built once per millisecond (records logged
 * in the same millisecond share it), not once per record.
 */
function timeFormatter(fmt: string, utc: boolean): Formatter {
  let lastMs = NaN;
  let lastText = '';
  return (r) => {
    const ms = r.time.getTime();
    if (ms !== lastMs) {
      lastText = formatTime(fmt, r.time, utc);
      lastMs = ms;
    }
    return lastText;
  };
}

const pidText = String(process.pid);

/** Compiles a log4cplus-style pattern into a formatter. */
export function compilePattern(pattern: string): Formatter {
  const parts: Formatter[] = [];
  const re = /%(-?\d+)?([a-zA-Z%])(\{[^}]*\})?/g;
  let last = 0;
  for (let m = re.exec(pattern); m; m = re.exec(pattern)) {
    const literal = pattern.slice(last, m.index);
    if (literal) parts.push(() => literal);
    last = re.lastIndex;
    const width = m[1] ? Number(m[1]) : 0;
    const conv = m[2]!;
    const arg = m[3]?.slice(1, -1);
    let f: Formatter;
    switch (conv) {
      case 'd': f = timeFormatter(arg ?? '%Y-%m-%d %H:%M:%S', true); break;
      case 'D': f = timeFormatter(arg ?? '%Y-%m-%d %H:%M:%S', false); break;
      case 'p': f = (r) => r.severity; break;
      case 'c': f = (r) => r.logger; break;
      case 'i': f = () => pidText; break;
      case 't': f = () => pidText; break;
      case 'm': f = (r) => `${r.id} ${r.text}`; break;
      case 'n': f = () => '\n'; break;
      case '%': f = () => '%'; break;
      default: {
        const lit = m[0];
        f = () => lit;
      }
    }
    if (width !== 0) {
      const inner = f;
      f = width < 0 ? (r) => inner(r).padEnd(-width) : (r) => inner(r).padStart(width);
    }
    parts.push(f);
  }
  const tail = pattern.slice(last);
  if (tail) parts.push(() => tail);
  return (r) => {
    let s = '';
    for (const p of parts) s += p(r);
    return s;
  };
}

// ---------------------------------------------------------------------------
// Outputs

interface Output {
  readonly key: string;
  /** `record`: what the line was made of, for outputs that need more than the text (syslog's priority). */
  write(line: string, record?: LogRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

let dropped = 0;
/** Lines dropped because an output's sink could not keep up. */
export function droppedLogLines(): number {
  return dropped;
}

function makeDest(dest: number | string, flush: boolean): Dest {
  const d = pino.destination({ dest, sync: false, minLength: flush ? 0 : 4096, maxLength: MAX_BUFFERED_BYTES, mkdir: true, append: true });
  d.on('drop', () => {
    dropped++;
  });
  d.on('error', () => {
    dropped++;
  });
  if (!flush) {
    // Batched output still reaches its sink within a second.
    const timer = setInterval(() => {
      try {
        d.flush();
      } catch {
        // closed or nothing to write
      }
    }, 1000).unref();
    d.on('close', () => clearInterval(timer));
  }
  return d;
}

function flushDest(d: Dest): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000);
    try {
      d.flush(() => {
        clearTimeout(t);
        resolve();
      });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

/**
 * Lines logged in one turn of the event loop go to the destination together,
 * in one write (so one fs.write on libuv's thread pool, not one per line: at
 * thousands of NCRs a second, a write and a thread wake-up per line compete with
 * the main loop for the CPU). A turn that logs more than BATCH_BYTES hands its
 * lines over as it goes. flush() and close() hand over what is pending first,
 * so nothing logged before them is left behind; the order of lines is kept.
 */
const BATCH_BYTES = 64 * 1024;

/**
 * Outputs open now: at exit, the lines they hold are handed over and written
 * synchronously (pino.destination's own exit hook writes what its buffer holds,
 * but the lines of the last turn are not in it yet).
 */
const openOutputs = new Set<BatchedOutput>();
let exitHookInstalled = false;
function flushAllAtExit(): void {
  for (const o of openOutputs) o.flushAtExit();
}

abstract class BatchedOutput implements Output {
  private pending = '';
  private scheduled = false;
  private readonly drainPending = (): void => {
    this.scheduled = false;
    this.handOver();
  };
  protected abstract dest: Dest;
  abstract readonly key: string;

  constructor() {
    openOutputs.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', flushAllAtExit);
    }
  }

  /** The process is exiting: pending lines and the destination's buffer, written now. */
  flushAtExit(): void {
    this.handOver();
    try {
      this.dest.flushSync();
    } catch {
      // destroyed, not open yet, or nothing can be written: nothing more to do at exit
    }
  }

  protected closed(): void {
    openOutputs.delete(this);
  }

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= BATCH_BYTES) this.handOver();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drainPending);
    }
  }

  /** What is pending, to the destination now. */
  protected handOver(): void {
    if (this.pending.length === 0) return;
    const text = this.pending;
    this.pending = '';
    try {
      this.dest.write(text);
    } catch {
      dropped++; // destroyed destination
    }
  }

  flush(): Promise<void> {
    this.handOver();
    return flushDest(this.dest);
  }

  abstract close(): Promise<void>;
}

class ConsoleOutput extends BatchedOutput {
  protected readonly dest: Dest;
  constructor(readonly key: string, fd: 1 | 2, flush: boolean) {
    super();
    this.dest = makeDest(fd, flush);
  }
  async close(): Promise<void> {
    await this.flush();
    this.closed();
  }
}

/**
 * `syslog[:NAME]`: each line, with its priority and stamp, to the syslog socket
 * (syslog-output.ts); once that socket proves unusable, the lines (those not sent
 * included) go to stderr, after one warning naming the reason.
 */
class SyslogOutput implements Output {
  private readonly connection: SyslogConnection;
  private readonly facility: number;
  private fallback: Output | undefined;

  constructor(readonly key: string, output: string, private readonly flushEach: boolean) {
    this.facility = syslogFacility(output);
    this.connection = new SyslogConnection(syslogSocketPath(), (reason, unsent) => {
      const stderr = new ConsoleOutput(`${key}:fallback`, 2, this.flushEach);
      const warning: LogRecord = { time: new Date(), severity: 'WARN', logger: ROOT_LOGGER, id: 'D2BOX_SYSLOG_UNAVAILABLE', text: `syslog output ${output} unavailable (${reason}); its lines go to stderr`, debugLevel: 0 };
      stderr.write(compilePattern(SYSLOG_PATTERN)(warning));
      for (const m of unsent) stderr.write(m);
      this.fallback = stderr;
    });
  }

  write(line: string, record?: LogRecord): void {
    if (this.fallback === undefined && record !== undefined && this.connection.send(syslogMessage(this.facility, record, line))) return;
    // Not sent (the socket failed or is closing): the line still goes somewhere.
    this.fallback ??= new ConsoleOutput(`${this.key}:fallback`, 2, this.flushEach);
    this.fallback.write(line);
  }

  async flush(): Promise<void> {
    await this.fallback?.flush();
  }

  async close(): Promise<void> {
    await this.connection.close();
    await this.fallback?.close();
  }
}

class FileOutput extends BatchedOutput {
  protected dest: Dest;
  private size: number;
  private readonly maxsize: number;
  private readonly maxver: number;
  constructor(readonly key: string, private readonly path: string, flush: boolean, maxsize: number, maxver: number) {
    super();
    // Kea's (log4cplus's RollingFileAppender): 0 turns rotation off; any other size below
    // 200 KiB is raised to it; at least one old version is kept.
    this.maxsize = maxsize <= 0 ? 0 : Math.max(maxsize, MINIMUM_ROLLING_LOG_SIZE);
    this.maxver = Math.max(maxver, 1);
    // The file exists once it is configured, as Kea's: a rotation before the destination's
    // own (asynchronous) open has something to rename.
    try {
      mkdirSync(dirname(path), { recursive: true });
      closeSync(openSync(path, 'a', 0o640));
    } catch {
      // The destination reports it (and counts what it drops).
    }
    this.dest = makeDest(path, flush);
    this.size = existsSync(path) ? statSync(path).size : 0;
  }
  override write(line: string): void {
    super.write(line);
    this.size += Buffer.byteLength(line);
    // log4cplus rolls over once the file has grown past the size, after the line that did it.
    if (this.maxsize > 0 && this.size > this.maxsize) this.rotate();
  }
  /** file.(n-1) → file.n ... file → file.1; then the destination reopens `file` (bytes still buffered go there). */
  private rotate(): void {
    this.handOver();
    try {
      rmSync(`${this.path}.${this.maxver}`, { force: true });
      for (let i = this.maxver - 1; i >= 1; i--) {
        if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      }
      renameSync(this.path, `${this.path}.1`);
      // The current file exists from this moment, whatever is written to it later:
      // a daemon that stops right after a rotation still leaves it behind, as Kea does.
      closeSync(openSync(this.path, 'a', 0o640));
      this.dest.reopen();
    } catch {
      // The file went away or cannot be renamed: keep writing where we are.
    }
    this.size = 0;
  }
  async close(): Promise<void> {
    await this.flush();
    this.closed();
    // Closed means on disk: a shutdown that ends here leaves the file complete (bounded: 2 s).
    const dest = this.dest;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      dest.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      try {
        dest.end();
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }
}

// ---------------------------------------------------------------------------
// The pipeline

interface Route {
  name: string;
  rank: number;
  debuglevel: number;
  targets: { output: Output; format: Formatter }[];
}

export interface PipelineOptions {
  verbose?: boolean;
}

export class LogPipeline {
  private routes: Route[] = [];
  private readonly cache = new Map<string, Route>();
  private outputs = new Map<string, Output>();
  private verbose = false;

  /** Kea's default: the root logger at INFO (DEBUG/99 with -d) to stderr. */
  constructor(opts: PipelineOptions = {}) {
    this.configure([], opts);
  }

  /** Installs the pipeline as the logger's sink and filter. */
  install(): this {
    Logger.setFilter((logger, severity, level) => this.enabled(logger, severity, level));
    Logger.setSink((r) => this.write(r));
    return this;
  }

  /**
   * Applies a `loggers` list (an empty list gives the default). Returns
   * warnings (unsupported outputs). Outputs no longer used are flushed and
   * closed; outputs still used are kept open.
   */
  configure(loggers: readonly LoggerConfig[], opts: PipelineOptions = {}): string[] {
    if (opts.verbose !== undefined) this.verbose = opts.verbose;
    const warnings: string[] = [];
    const old = this.outputs;
    const next = new Map<string, Output>();
    const getOutput = (key: string, make: () => Output): Output => {
      const existing = next.get(key) ?? old.get(key);
      const o = existing ?? make();
      next.set(key, o);
      return o;
    };
    const entries: readonly LoggerConfig[] = loggers.length > 0 ? loggers : [{ name: ROOT_LOGGER, severity: 'INFO', debuglevel: 0 } as LoggerConfig];
    const routes: Route[] = [];
    for (const l of entries) {
      const options = l.output_options ?? [{ output: 'stderr', flush: true, maxsize: 10240000, maxver: 1 }];
      const targets: Route['targets'] = [];
      for (const o of options) {
        let output: Output;
        let pattern = o.pattern;
        if (o.output === 'stdout' || o.output === 'stderr') {
          const fd = o.output === 'stdout' ? 1 : 2;
          output = getOutput(`${o.output}:${o.flush}`, () => new ConsoleOutput(`${o.output}:${o.flush}`, fd, o.flush));
        } else if (o.output === 'syslog' || o.output.startsWith('syslog:')) {
          output = getOutput(`${o.output}:${o.flush}`, () => new SyslogOutput(`${o.output}:${o.flush}`, o.output, o.flush));
          pattern ??= SYSLOG_PATTERN;
        } else {
          const key = `file:${o.output}`;
          output = getOutput(key, () => new FileOutput(key, o.output, o.flush, o.maxsize, o.maxver));
        }
        targets.push({ output, format: compilePattern(pattern ?? DEFAULT_PATTERN) });
      }
      const severity = this.verbose ? 'DEBUG' : l.severity;
      routes.push({ name: fullLoggerName(l.name), rank: RANK[severity], debuglevel: this.verbose ? 99 : l.debuglevel, targets });
    }
    this.routes = routes;
    this.cache.clear();
    this.outputs = next;
    for (const [key, o] of old) if (!next.has(key)) void o.close();
    return warnings;
  }

  private route(logger: string): Route | undefined {
    let r = this.cache.get(logger);
    if (r) return r;
    let best: Route | undefined;
    for (const candidate of this.routes) {
      if (logger === candidate.name || logger.startsWith(candidate.name + '.')) {
        if (!best || candidate.name.length > best.name.length) best = candidate;
      }
    }
    // Kea's root logger stands behind every child with no entry of its own.
    best ??= this.routes.find((c) => c.name === ROOT_LOGGER);
    if (best) this.cache.set(logger, best);
    r = best;
    return r;
  }

  enabled(logger: string, severity: Severity, debugLevel: number): boolean {
    const r = this.route(logger);
    if (!r) return false;
    const rank = RANK[severity];
    if (rank < r.rank) return false;
    return severity !== 'DEBUG' || debugLevel <= r.debuglevel;
  }

  write(record: LogRecord): void {
    const r = this.route(record.logger);
    if (!r) return;
    for (const t of r.targets) t.output.write(t.format(record), record);
  }

  async flush(): Promise<void> {
    await Promise.all([...this.outputs.values()].map((o) => o.flush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.outputs.values()].map((o) => o.close()));
    this.outputs.clear();
  }
}
