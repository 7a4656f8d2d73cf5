/**
 * LibraryLog: every line the daemon writes because of one hook library, the
 * library's own lines (console, stdout/stderr) and the daemon's lines about it
 * (failures, restarts, floods, unloads). A library can trigger any of them as
 * often as it likes, and put text of its own into each, so here:
 *
 * - its text is escaped and marked as its own (src/log/log-text.ts): its lines
 *   carry its name in brackets, its text inside a daemon message is quoted;
 * - its own lines are held to twice its `log-lines-per-second` (the worker holds
 *   them to the rate itself, but a process-mode library can write to its channel
 *   past the worker's limiter), the daemon's lines about it to
 *   HOST_LINES_PER_SECOND per message id: a library that fails on every callout
 *   cannot make the daemon log thousands of failures a second, nor crowd out the
 *   rarer lines that say it restarted or was quarantined;
 * - what is dropped, by either limit or by the worker's own, is told in one
 *   summary line at most every SUMMARY_INTERVAL_MS, so the warnings about a
 *   flood cannot be a flood themselves.
 */
import { performance } from 'node:perf_hooks';
import { Logger, type Severity } from '../log/logger.js';
import { escapeUntrusted, quoteUntrusted } from '../log/log-text.js';
import type { LogLevel } from './protocol.js';

/** The daemon's lines about one library, per message id, per second at most (a burst of as many). */
export const HOST_LINES_PER_SECOND = 20;
/** At most one summary of dropped lines per library per this interval. */
export const SUMMARY_INTERVAL_MS = 1000;
/** A library's log line as the daemon writes it at most (the worker cuts its lines at the same length). */
export const MAX_LIBRARY_LINE_CHARS = 4096;

const SEVERITY: Record<LogLevel, Severity> = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };

/** A token bucket: `rate` lines per second, bursts of `rate`. */
class LineBudget {
  private tokens: number;
  private refilledAt = performance.now();
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }
  /** `now`: one reading for a whole batch, so that the time spent on the batch itself earns it nothing. */
  take(now = performance.now()): boolean {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

export class LibraryLog {
  private readonly log = new Logger('d2box-hooks');
  /** The library's name as it appears in its lines, escaped once. */
  private readonly tag: string;
  private readonly libraryBudget: LineBudget;
  /** By message id: a fixed set of the daemon's own, so this stays small. */
  private readonly hostBudgets = new Map<string, LineBudget>();
  private droppedByWorker = 0;
  private droppedByHost = 0;
  private droppedAbout = new Map<string, number>();
  private summaryTimer: NodeJS.Timeout | undefined;
  private summarizedAt = -Infinity;

  constructor(
    readonly library: string,
    private readonly linesPerSecond: number,
  ) {
    this.tag = `[${escapeUntrusted(library)}]`;
    this.libraryBudget = new LineBudget(2 * linesPerSecond);
  }

  /** A library's text to put inside one of the daemon's messages. */
  quote(text: unknown, maxChars = 1024): string {
    return quoteUntrusted(text, maxChars);
  }

  /** Lines the library logged, in one message. The number dropped over the limit (counted in the summary too). */
  libraryLines(lines: readonly { level: LogLevel; text: string }[]): number {
    const now = performance.now();
    let dropped = 0;
    for (const { level, text } of lines) {
      if (!this.libraryBudget.take(now)) {
        dropped++;
        continue;
      }
      const cut = text.length > MAX_LIBRARY_LINE_CHARS ? text.slice(0, MAX_LIBRARY_LINE_CHARS) : text;
      this.log.log(SEVERITY[level], 'HOOKS_LIBRARY_LOG', `${this.tag} ${escapeUntrusted(cut)}`);
    }
    if (dropped > 0) {
      this.droppedByHost += dropped;
      this.scheduleSummary();
    }
    return dropped;
  }

  /** Lines the library's worker dropped over its limit (a count the host has already bounded). */
  workerDropped(lines: number): void {
    if (lines <= 0) return;
    this.droppedByWorker += lines;
    this.scheduleSummary();
  }

  info(id: string, text: string): void {
    this.about('INFO', id, text);
  }
  warn(id: string, text: string): void {
    this.about('WARN', id, text);
  }
  error(id: string, text: string): void {
    this.about('ERROR', id, text);
  }

  /** Writes the summary of what was dropped now, and stops its timer (the library is gone). */
  close(): void {
    clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    this.summarize();
  }

  /** A daemon line about the library; library text in it must come through quote(). */
  private about(severity: Severity, id: string, text: string): void {
    let budget = this.hostBudgets.get(id);
    if (!budget) this.hostBudgets.set(id, (budget = new LineBudget(HOST_LINES_PER_SECOND)));
    if (budget.take()) {
      this.log.log(severity, id, text);
      return;
    }
    this.droppedAbout.set(id, (this.droppedAbout.get(id) ?? 0) + 1);
    this.scheduleSummary();
  }

  private scheduleSummary(): void {
    if (this.summaryTimer) return;
    // The first drop is told at the end of this turn, later ones at most once an interval.
    // unref: a summary pending must not hold a stopping process open; close() writes it.
    const due = Math.max(0, this.summarizedAt + SUMMARY_INTERVAL_MS - performance.now());
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = undefined;
      this.summarize();
    }, due).unref();
  }

  private summarize(): void {
    this.summarizedAt = performance.now();
    const own = this.droppedByWorker + this.droppedByHost;
    if (own > 0) {
      const where = this.droppedByWorker > 0 && this.droppedByHost > 0 ? ` (${this.droppedByWorker} by its worker, ${this.droppedByHost} by the host)` : '';
      this.log.warn('HOOKS_LOG_FLOOD', `hook library ${this.tag}: dropped ${own} log lines over its limit of ${this.linesPerSecond}/s${where}`);
    }
    if (this.droppedAbout.size > 0) {
      let total = 0;
      const ids: string[] = [];
      for (const [id, n] of this.droppedAbout) {
        total += n;
        ids.push(`${id} ×${n}`);
      }
      this.log.warn('HOOKS_LOG_SUPPRESSED', `hook library ${this.tag}: ${total} lines about it not logged, over ${HOST_LINES_PER_SECOND}/s each (${ids.join(', ')})`);
    }
    this.droppedByWorker = 0;
    this.droppedByHost = 0;
    this.droppedAbout = new Map();
  }
}
