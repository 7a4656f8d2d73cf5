/**
 * A small Kea-style logger: severity, a logger name, a message ID and text,
 * e.g. `2026-11-26 14:10:54.123 ERROR [d2box-hooks] HOOKS_CALLOUT_EXCEPTION ...`.
 * The configurable pipeline (Kea's `loggers`) replaces the sink later; every
 * caller already speaks in message IDs.
 */
export type Severity = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL';

const RANK: Record<Severity, number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3, FATAL: 4 };

export interface LogRecord {
  time: Date;
  severity: Severity;
  logger: string;
  id: string;
  text: string;
}

export type LogSink = (record: LogRecord) => void;

export const stderrSink: LogSink = (r) => {
  const ts = r.time.toISOString().replace('T', ' ').replace('Z', '');
  process.stderr.write(`${ts} ${r.severity.padEnd(5)} [${r.logger}/${process.pid}] ${r.id} ${r.text}\n`);
};

export class Logger {
  private static sink: LogSink = stderrSink;
  private static threshold: Severity = 'INFO';

  static setSink(sink: LogSink): void {
    Logger.sink = sink;
  }

  static setSeverity(severity: Severity): void {
    Logger.threshold = severity;
  }

  constructor(readonly name: string) {}

  debug(id: string, text: string): void {
    this.log('DEBUG', id, text);
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

  isEnabled(severity: Severity): boolean {
    return RANK[severity] >= RANK[Logger.threshold];
  }

  log(severity: Severity, id: string, text: string): void {
    if (!this.isEnabled(severity)) return;
    Logger.sink({ time: new Date(), severity, logger: this.name, id, text });
  }
}
