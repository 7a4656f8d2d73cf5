/**
 * Test support for the control-channel, statistics and logging tests: runs the
 * real daemon (`node dist/src/cli.js -c FILE`) as a child process and talks
 * to it over its real unix socket. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { wrapCommand } from './support/child-process.js';
import { TestLog } from './support/test-logs.js';

export const CLI = resolve('dist/src/cli.js');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeJson(file: string, value: unknown): string {
  writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
}

export interface Answer {
  result: number;
  text?: string;
  arguments?: any;
}

/** Sends raw bytes, half-closes only when asked, and collects everything until the server closes (bounded). */
export function rawRequest(path: string, data: string | Buffer, opts: { end?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const sock = net.connect(path);
    let out = '';
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no complete answer from ${path} within ${opts.timeoutMs ?? 15_000} ms; got ${JSON.stringify(out.slice(0, 200))}`));
    }, opts.timeoutMs ?? 15_000);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (out += d));
    sock.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(t);
      resolvePromise(out);
    });
    sock.on('connect', () => {
      sock.write(data);
      if (opts.end) sock.end();
    });
  });
}

/**
 * One command, sent as the documented client (socat) sends it: the request,
 * then a half-close. Tests that need the write side kept open use rawRequest.
 */
export async function command(path: string, cmd: string, args?: unknown, extra: Record<string, unknown> = {}): Promise<Answer> {
  const text = await rawRequest(path, JSON.stringify({ command: cmd, ...(args === undefined ? {} : { arguments: args }), ...extra }), { end: true });
  return JSON.parse(text) as Answer;
}

/**
 * The request through socat, as the docs show (`echo REQUEST | socat - UNIX-CONNECT:SOCK`):
 * socat half-closes when its stdin ends, then prints what the server sends until it closes.
 */
export function socatRequest(path: string, request: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('socat', ['-', `UNIX-CONNECT:${path}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`socat gave no complete answer within ${timeoutMs} ms; got ${JSON.stringify(out.slice(0, 200))}`));
    }, timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`socat exited with ${code}: ${err}`));
    });
    child.stdin!.end(request + '\n');
  });
}

export class Daemon {
  readonly child: ChildProcess;
  private out = '';
  private err = '';
  /** Its stdout and stderr, printed only if the test fails (support/test-logs.ts). */
  readonly log: TestLog;
  readonly exited: Promise<number | null>;

  constructor(
    readonly configFile: string,
    readonly socketPath: string | undefined,
    /** `wrap`: a command prefix such as `ip netns exec NS` (support/child-process.ts wrapCommand). */
    opts: { env?: Record<string, string>; pauseStdout?: boolean; args?: string[]; wrap?: string[] } = {},
  ) {
    this.child = spawn(...wrapCommand(opts.wrap, process.execPath, [CLI, ...(opts.args ?? []), '-c', configFile]), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    this.log = new TestLog(`d2box -c ${configFile} (pid ${this.child.pid})`);
    if (!opts.pauseStdout) this.resumeStdout();
    this.child.stderr!.on('data', (d) => {
      this.err += d;
      this.log.write(d);
    });
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  stdout(): string {
    return this.out;
  }

  stderr(): string {
    return this.err;
  }

  resumeStdout(): void {
    this.child.stdout!.on('data', (d) => {
      this.out += d;
      this.log.write(d);
    });
  }

  /** Waits (bounded) until stderr+stdout match. */
  async waitLog(re: RegExp, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 2000 && !re.test(this.err + this.out) && Date.now() < deadline && this.child.exitCode === null; i++) await sleep(20);
    if (!re.test(this.err + this.out)) throw new Error(`log never matched ${re}; stderr:\n${this.err}\nstdout:\n${this.out}`);
  }

  /** Waits until the control socket answers (bounded). */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 2000 && Date.now() < deadline; i++) {
      if (this.child.exitCode !== null) throw new Error(`daemon exited with ${this.child.exitCode}:\n${this.err}`);
      try {
        const a = await command(this.socketPath!, 'status-get');
        if (a.result === 0) return;
      } catch {
        // not yet
      }
      await sleep(50);
    }
    throw new Error(`control socket ${this.socketPath} never answered:\n${this.err}`);
  }

  command(cmd: string, args?: unknown, extra?: Record<string, unknown>): Promise<Answer> {
    return command(this.socketPath!, cmd, args, extra);
  }

  async stat(name: string): Promise<number> {
    const a = await this.command('statistic-get', { name });
    return a.arguments?.[name]?.[0]?.[0] ?? NaN;
  }

  /** Every statistic's latest value (statistic-get-all). */
  async stats(): Promise<Record<string, number>> {
    const a = await this.command('statistic-get-all');
    if (a.result !== 0) throw new Error(`statistic-get-all: ${JSON.stringify(a)}`);
    const s: Record<string, number> = {};
    for (const [k, v] of Object.entries(a.arguments as Record<string, [number, string][]>)) s[k] = v[0]![0];
    return s;
  }

  /** SIGTERM, then SIGKILL if it does not exit within the bound; the exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}
