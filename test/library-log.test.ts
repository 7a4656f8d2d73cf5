/**
 * What a hook library can put into the daemon's log, in isolation: log-text.ts renders
 * every control character visibly, and LibraryLog marks the library's text as its own,
 * holds its lines and the daemon's lines about it to their rates, and tells what it
 * dropped in one line a second at most. (test/hostile-forgery.test.ts shows the same
 * from outside the real daemon.)
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOST_LINES_PER_SECOND, LibraryLog, SUMMARY_INTERVAL_MS } from '../src/hooks/library-log.js';
import { escapeControls, escapeUntrusted, quoteUntrusted } from '../src/log/log-text.js';
import { Logger, stderrSink, type LogRecord } from '../src/log/logger.js';
import { waitFor } from './support/wait.js';

const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('log-text', () => {
  it('renders line breaks, ANSI escapes, C1 controls, separators and bidi overrides visibly', () => {
    const text = 'a\nb\r\tc\x1b[2J\x00\x7f\u009b31m\u2028\u2029\u202e\u2066 ok';
    expect(escapeUntrusted(text)).toBe('a\\nb\\r\\tc\\x1b[2J\\x00\\x7f\\x9b31m\\u{2028}\\u{2029}\\u{202e}\\u{2066} ok');
    expect(RAW_CONTROL.test(escapeUntrusted(text))).toBe(false);
    expect(RAW_CONTROL.test(escapeControls(text))).toBe(false);
  });

  it('a library cannot spell an escape that passes for a rendered one; the daemon\'s own backslashes stay', () => {
    expect(escapeUntrusted('\\n')).toBe('\\\\n');
    expect(escapeControls('C:\\dir\n')).toBe('C:\\dir\\n');
    expect(escapeUntrusted('plain text, unchanged')).toBe('plain text, unchanged');
  });

  it('quoted: escaped, quotes inside escaped, cut to a length with what was cut said', () => {
    expect(quoteUntrusted('say "hi"\n')).toBe('"say \\"hi\\"\\n"');
    expect(quoteUntrusted('x'.repeat(10), 4)).toBe('"xxxx"…(6 more chars)');
    // Not text at all (a forged message's "message"): shown, never thrown over.
    expect(quoteUntrusted({ toString: () => 'a\nb' })).toBe('"a\\nb"');
    expect(quoteUntrusted({ toString: () => { throw new Error('no'); } })).toBe('"(not text)"');
  });

  it('the logger itself never writes a raw control character, whoever composed the text', () => {
    const seen: LogRecord[] = [];
    Logger.setSink((r) => seen.push(r));
    try {
      new Logger('d2box-test').error('TEST_ID', 'one\ntwo\x1b[31m');
    } finally {
      Logger.setSink(stderrSink);
    }
    expect(seen.map((r) => r.text)).toEqual(['one\\ntwo\\x1b[31m']);
  });
});

describe('LibraryLog', () => {
  let seen: LogRecord[];
  beforeEach(() => {
    seen = [];
    Logger.setSink((r) => seen.push(r));
  });
  afterEach(() => Logger.setSink(stderrSink));

  it('marks the library\'s lines with its name and escapes them', () => {
    const log = new LibraryLog('/opt/lib\n.mjs', 100);
    log.libraryLines([{ level: 'warn', text: 'hello\n2026-01-01 00:00:00.000 INFO  [kea-dhcp-ddns/1.1] FAKE line' }]);
    log.close();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ severity: 'WARN', id: 'HOOKS_LIBRARY_LOG', text: '[/opt/lib\\n.mjs] hello\\n2026-01-01 00:00:00.000 INFO  [kea-dhcp-ddns/1.1] FAKE line' });
  });

  it('holds its own lines to twice its rate and the daemon\'s lines about it to their rate per message, then says once what it dropped', async () => {
    const log = new LibraryLog('/opt/lib.mjs', 10);
    let written = 0;
    for (let i = 0; i < 1000; i++) written += 1 - log.libraryLines([{ level: 'info', text: '' }]);
    for (let i = 0; i < 1000; i++) log.error('HOOKS_CALLOUT_FAILED', `failure ${i}`);
    log.warn('HOOKS_LIBRARY_RESTARTING', 'restarting');
    log.workerDropped(500);
    expect(written).toBeLessThanOrEqual(20 + 1);
    const failures = seen.filter((r) => r.id === 'HOOKS_CALLOUT_FAILED').length;
    expect(failures).toBeLessThanOrEqual(HOST_LINES_PER_SECOND + 1);
    // Another message about the library still has its own budget.
    expect(seen.some((r) => r.id === 'HOOKS_LIBRARY_RESTARTING')).toBe(true);
    await waitFor('the summary', () => seen.some((r) => r.id === 'HOOKS_LOG_FLOOD'));
    const flood = seen.filter((r) => r.id === 'HOOKS_LOG_FLOOD');
    expect(flood).toHaveLength(1);
    expect(flood[0]!.text).toContain(`dropped ${500 + 1000 - written} log lines over its limit of 10/s (500 by its worker, ${1000 - written} by the host)`);
    const suppressed = seen.filter((r) => r.id === 'HOOKS_LOG_SUPPRESSED');
    expect(suppressed).toHaveLength(1);
    expect(suppressed[0]!.text).toContain(`${1000 - failures} lines about it not logged`);
    // More drops right away: told at most once per interval, not once per drop.
    for (let i = 0; i < 100; i++) log.workerDropped(1);
    await new Promise((r) => setTimeout(r, SUMMARY_INTERVAL_MS / 4));
    expect(seen.filter((r) => r.id === 'HOOKS_LOG_FLOOD')).toHaveLength(1);
    log.close();
    expect(seen.filter((r) => r.id === 'HOOKS_LOG_FLOOD')).toHaveLength(2);
    expect(seen.filter((r) => r.id === 'HOOKS_LOG_FLOOD')[1]!.text).toContain('dropped 100 log lines');
  });
});
