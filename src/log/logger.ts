/**
 * A small Kea-style logger: severity, a logger name, a message ID and text,
 * e.g. `2026-11-26 14:10:54.123 ERROR [kea-dhcp-ddns.d2box-hooks/4242.4242] HOOKS_CALLOUT_EXCEPTION ...`.
 *
 * Every caller speaks in message IDs through `new Logger(name)`. Where the
 * records go is the sink: by default and once Kea's `loggers` configuration is
 * applied, the pipeline in log-pipeline.ts (pino destinations, never blocking
 * the main loop); tests may install their own with Logger.setSink.
 *
 * Names: `kea-dhcp-ddns` is Kea's root logger; every other name is its child,
 * `kea-dhcp-ddns.<name>` (Kea's own: dctl, dhcpddns, dhcp-to-d2, d2-to-dns,
 * hooks, commands), which is what a `loggers` entry names.
 */
import { escapeControls } from './log-text.js';

export type Severity = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL';

export const ROOT_LOGGER = 'kea-dhcp-ddns';

export interface LogRecord {
  time: Date;
  severity: Severity;
  /** The full Kea name: `kea-dhcp-ddns` or `kea-dhcp-ddns.<child>`. */
  logger: string;
  id: string;
  text: string;
  /** For DEBUG: Kea's debug level of the message (0-99); shown when the logger's debuglevel is at least this. */
  debugLevel: number;
}

export type LogSink = (record: LogRecord) => void;

/** Decides, per full logger name, whether a record is wanted; the pipeline installs one. */
export type LogFilter = (logger: string, severity: Severity, debugLevel: number) => boolean;

const RANK: Record<Severity, number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3, FATAL: 4 };

/** One record as a line, in the form stderrSink writes. */
export function formatRecord(r: LogRecord): string {
  const ts = r.time.toISOString().replace('T', ' ').replace('Z', '');
  return `${ts} ${r.severity.padEnd(5)} [${r.logger}/${process.pid}] ${r.id} ${r.text}\n`;
}

/** Writes straight to stderr (synchronous on a pipe): for tests and emergencies only. */
export const stderrSink: LogSink = (r) => {
  process.stderr.write(formatRecord(r));
};

export function fullLoggerName(name: string): string {
  return name === ROOT_LOGGER || name.startsWith(ROOT_LOGGER + '.') ? name : `${ROOT_LOGGER}.${name}`;
}

export class Logger {
  private static sink: LogSink = stderrSink;
  private static threshold: Severity = 'INFO';
  private static filter: LogFilter | undefined;

  static setSink(sink: LogSink): void {
    Logger.sink = sink;
  }

  /** The sink in use (tests put theirs back when something restored stderrSink). */
  static getSink(): LogSink {
    return Logger.sink;
  }

  /** One threshold for every logger (used until a pipeline filter is installed, and by -d). */
  static setSeverity(severity: Severity): void {
    Logger.threshold = severity;
  }

  /** Per-logger decisions (Kea's `loggers`); undefined goes back to the single threshold. */
  static setFilter(filter: LogFilter | undefined): void {
    Logger.filter = filter;
  }

  readonly fullName: string;

  constructor(readonly name: string) {
    this.fullName = fullLoggerName(name);
  }

  debug(id: string, text: string, debugLevel = 0): void {
    this.log('DEBUG', id, text, debugLevel);
  }
  info(id: string, text: string): void {
    this.log('INFO', id, text);
  }
  warn(id: string, text: string): void {
    this.log('WARN', id, text);
  }
  error(id: string, text: string): void {
    this.log('ERROR', id, text);
  }
  fatal(id: string, text: string): void {
    this.log('FATAL', id, text);
  }

  isEnabled(severity: Severity, debugLevel = 0): boolean {
    const f = Logger.filter;
    if (f) return f(this.fullName, severity, debugLevel);
    return RANK[severity] >= RANK[Logger.threshold];
  }

  log(severity: Severity, id: string, text: string, debugLevel = 0): void {
    if (!this.isEnabled(severity, debugLevel)) return;
    // One record is one line, whoever composed the text (log-text.ts).
    Logger.sink({ time: new Date(), severity, logger: this.fullName, id, text: escapeControls(text), debugLevel });
  }
}
