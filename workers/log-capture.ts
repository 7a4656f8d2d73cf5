/**
 * Routes a library's console and stdout/stderr writes to the server's log
 * pipeline over the callout port, rate-limited: a library that floods the log
 * costs the main thread one message per turn of the worker's loop, and what it
 * logs past its budget is dropped and counted, never queued.
 */
import { format } from 'node:util';
import type { LogLevel, WorkerMessage } from '../src/hooks/protocol.js';

const MAX_LINE_CHARS = 4096;

export class LogCapture {
  private tokens: number;
  private lastRefill = Date.now();
  private lines: { level: LogLevel; text: string }[] = [];
  private suppressedSinceFlush = 0;
  private flushScheduled = false;
  /** Lines dropped since the worker started; callouts compare it before and after. */
  suppressedTotal = 0;

  constructor(
    private readonly linesPerSecond: number,
    private readonly send: (message: WorkerMessage) => void,
  ) {
    this.tokens = linesPerSecond;
  }

  install(): void {
    const line = (level: LogLevel) => (...args: unknown[]) => this.write(level, format(...args));
    console.log = line('info');
    console.info = line('info');
    console.debug = line('debug');
    console.trace = line('debug');
    console.warn = line('warn');
    console.error = line('error');
    const stream = (level: LogLevel) =>
      ((chunk: unknown, ...rest: unknown[]) => {
        this.write(level, typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString());
        const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        callback?.();
        return true;
      }) as typeof process.stdout.write;
    process.stdout.write = stream('info');
    process.stderr.write = stream('error');
  }

  write(level: LogLevel, text: string): void {
    if (!this.take()) {
      this.suppressedSinceFlush++;
      this.suppressedTotal++;
    } else {
      this.lines.push({ level, text: text.length > MAX_LINE_CHARS ? text.slice(0, MAX_LINE_CHARS) + '…' : text.replace(/\n$/, '') });
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.lines.length === 0 && this.suppressedSinceFlush === 0) return;
    const message: WorkerMessage = { t: 'log', lines: this.lines, suppressed: this.suppressedSinceFlush };
    this.lines = [];
    this.suppressedSinceFlush = 0;
    this.send(message);
  }

  private take(): boolean {
    const now = Date.now();
    if (now !== this.lastRefill) {
      this.tokens = Math.min(this.linesPerSecond, this.tokens + ((now - this.lastRefill) * this.linesPerSecond) / 1000);
      this.lastRefill = now;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
