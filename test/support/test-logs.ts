/**
 * Test logs: what the programs a test starts (the daemon, named, kea-dhcp4) and the
 * in-process engine write goes to files, not into vitest's output. The setup file
 * (test-logs-setup.ts) marks where each test begins and, when a test fails, prints
 * what every log got during that test; a passing test prints nothing.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIR = mkdtempSync(join(tmpdir(), 'd2box-test-logs-'));
process.on('exit', () => rmSync(DIR, { recursive: true, force: true }));

/** Enough to see what went wrong; a flood would bury the failure. */
const MAX_SHOWN_BYTES = 64 * 1024;

const logs: TestLog[] = [];
let seq = 0;

export class TestLog {
  readonly file: string;
  private written = 0;
  private testStart = 0;

  constructor(readonly label: string) {
    this.file = join(DIR, `${++seq}-${label.replace(/[^\w.-]+/g, '_').slice(0, 60)}.log`);
    logs.push(this);
  }

  write(chunk: string | Uint8Array): void {
    appendFileSync(this.file, chunk);
    this.written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  }

  /** Everything written so far. */
  text(): string {
    return existsSync(this.file) ? readFileSync(this.file, 'utf8') : '';
  }

  /** What was written since the current test began: its last MAX_SHOWN_BYTES. */
  sinceTestStart(): string {
    if (this.written === this.testStart) return '';
    const bytes = readFileSync(this.file).subarray(this.testStart);
    const cut = bytes.length > MAX_SHOWN_BYTES;
    return (cut ? `[… ${bytes.length - MAX_SHOWN_BYTES} bytes before this left out]\n` : '') + bytes.subarray(Math.max(0, bytes.length - MAX_SHOWN_BYTES)).toString('utf8');
  }

  markTestStart(): void {
    this.testStart = this.written;
  }
}

export function markTestStart(): void {
  for (const log of logs) log.markTestStart();
}

/** What every log got during the current test, one section per log; empty when none got anything. */
export function logsOfThisTest(): string {
  return logs
    .map((log) => [log, log.sinceTestStart()] as const)
    .filter(([, text]) => text !== '')
    .map(([log, text]) => `──── ${log.label} (${log.file}) ────\n${text}${text.endsWith('\n') ? '' : '\n'}`)
    .join('');
}
